"""Concurrency soak: writers, readers and importers in parallel processes, killed at random.

For a bounded time, several real processes share one data folder: writers stream answers
(`store_crash_child.py`), listers open and read it over and over (every open finalises the
answers of writers that are gone, which once included live ones), and an importer round-trips
chats through JSON. Every child is SIGKILLed at a random moment and replaced. At the end the
database must be intact and every acknowledged character in it, and no child may have died of
anything but the kill. `SCOUT_DESK_SOAK_S` lengthens the run (default 20 s).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.messages import Role
from app.store.sessions import SessionStore
from tests.helpers.store_acks import Acknowledged, check_database, count_messages

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("store_crash_child.py")
OTHER = Path(__file__).with_name("store_soak_child.py")
SEED = 20_261_203
SOAK_S = float(os.environ.get("SCOUT_DESK_SOAK_S", "20"))
#: Children alive at once, by role.
ROLES = {"writer": 3, "list": 2, "import": 1}
#: How long a child lives before its SIGKILL (uniform, seconds).
LIFETIME_S = (0.3, 2.0)
#: Writers space their checkpoints up to this far apart, so listers open mid-answer.
WRITER_PACE_S = "0.15"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


@dataclass
class Child:
    role: str
    process: subprocess.Popen[str]
    dies_at: float


def _spawn(role: str, data_dir: Path, seed: int, rng: random.Random) -> Child:
    if role == "writer":
        command = [str(WRITER), str(data_dir), str(seed), WRITER_PACE_S]
    else:
        command = [str(OTHER), role, str(data_dir), str(seed)]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Child(role, process, time.monotonic() + rng.uniform(*LIFETIME_S))


def _reap(child: Child, acked: Acknowledged) -> None:
    """Kill the child, record what it acknowledged, and fail if it had died of an error."""
    child.process.send_signal(signal.SIGKILL)
    out, err = child.process.communicate(timeout=60)
    acked.read(out)
    assert child.process.returncode == -signal.SIGKILL, (
        f"a {child.role} child died of an error before its kill:\n{err[-3000:]}"
    )


def test_parallel_writers_readers_and_importers_lose_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    SessionStore.open(data_dir).close()  # created once, so every child races on a real store
    rng = random.Random(SEED)
    acked = Acknowledged()
    seed = SEED
    children: list[Child] = []
    kills = {role: 0 for role in ROLES}
    end = time.monotonic() + SOAK_S
    try:
        while time.monotonic() < end:
            for role, wanted in ROLES.items():
                while sum(c.role == role for c in children) < wanted:
                    seed += 1
                    children.append(_spawn(role, data_dir, seed, rng))
            now = time.monotonic()
            for child in [c for c in children if c.dies_at <= now]:
                children.remove(child)
                _reap(child, acked)
                kills[child.role] += 1
            time.sleep(0.02)
    finally:
        for child in children:
            _reap(child, acked)

    check_database(data_dir, acked)
    # Opened once more, the answers every killed writer left are closed, their text as acked.
    with SessionStore.open(data_dir) as store:
        sessions = store.list_sessions()
        assert all(
            m.stop_reason is not None
            for s in sessions
            for m in store.messages(s.id)
            if m.role is Role.ASSISTANT
        )
    check_database(data_dir, acked)
    # The run really exercised every role.
    assert kills["writer"] >= 5 and kills["list"] >= 5 and kills["import"] >= 2, kills
    assert len(acked.checkpoint) > 20 and len(acked.finished) > 5, acked
    assert acked.imported, "no import was acknowledged"
    assert count_messages(data_dir, "role = 'assistant' AND stop_reason IS NULL") == 0
