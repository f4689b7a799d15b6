"""Crash safety: SIGKILL a writer at random moments; nothing acknowledged is ever lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.messages import Role
from app.store.sessions import DB_NAME, INTERRUPTED, SessionStore
from tests.helpers.store_acks import Acknowledged, check_database, count_messages

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("store_crash_child.py")
SEED = 20_240_611  # fixed: a failure reproduces with the same kill schedule
ITERATIONS = 60
#: Every few runs the kill may land while the child is still opening (migrating, recovering).
EARLY_KILL_EVERY = 5

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _run_child(data_dir: Path, seed: int, rng: random.Random, early: bool) -> str:
    """Start a writer, SIGKILL it after a random delay, and return what it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(seed)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = ""
    if early:
        time.sleep(rng.uniform(0.0, 0.15))
    else:
        first = child.stdout.readline()
        if not first.startswith("READY"):
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"the child failed to open the store: {first!r} {err[-2000:]}")
        time.sleep(rng.uniform(0.0, 0.25))
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=30)
    assert child.returncode in (-signal.SIGKILL, 0) or not err, err[-2000:]
    return first + rest


def test_sigkill_at_random_moments_never_loses_an_acknowledged_write(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(SEED)
    acked = Acknowledged()
    for run in range(ITERATIONS):
        output = _run_child(data_dir, SEED + run, rng, early=run % EARLY_KILL_EVERY == 1)
        acked.read(output)
        if not (data_dir / DB_NAME).exists():
            continue  # killed before it created anything
        check_database(data_dir, acked)
        # It opens cleanly, finalising the answer the kill cut short (its text was checked above).
        SessionStore.open(data_dir).close()
        assert count_messages(data_dir, "role = 'assistant' AND stop_reason IS NULL") == 0

    # The schedule really exercised the store: many acknowledged writes, answers cut mid-stream.
    assert len(acked.user) > ITERATIONS
    assert len(acked.finished) > ITERATIONS
    assert count_messages(data_dir, "error = ?", (INTERRUPTED,)) > 0
    check_database(data_dir, acked)
    with SessionStore.open(data_dir) as store:
        sessions = store.list_sessions()
        assert sum(s.message_count for s in sessions) == count_messages(data_dir, "1")
        assert all(
            m.stop_reason is not None
            for s in sessions
            for m in store.messages(s.id)
            if m.role is Role.ASSISTANT
        )
