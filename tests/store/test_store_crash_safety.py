"""Crash safety: SIGKILL a writer at random moments; nothing acknowledged is ever lost."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.core.messages import Role, StopReason
from app.store.sessions import DB_NAME, INTERRUPTED, SessionStore

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("store_crash_child.py")
SEED = 20_240_611  # fixed: a failure reproduces with the same kill schedule
ITERATIONS = 60
#: Every few runs the kill may land while the child is still opening (migrating, recovering).
EARLY_KILL_EVERY = 5

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Acknowledged:
    """What the children reported as committed, across every run."""

    user: dict[str, str] = field(default_factory=dict)  # message id -> text digest
    blobs: set[str] = field(default_factory=set)
    checkpoint: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (len, digest)
    finished: dict[str, str] = field(default_factory=dict)  # id -> text digest

    def read(self, output: str) -> int:
        """Record every complete line (a line cut by the kill has no newline); return how many."""
        lines = output.split("\n")[:-1]
        for line in lines:
            kind, *rest = line.split(" ")
            if kind == "U":
                self.user[rest[0]] = rest[1]
                self.blobs.update(rest[2:])
            elif kind == "C":
                self.checkpoint[rest[0]] = (int(rest[1]), rest[2])
            elif kind == "F":
                self.finished[rest[0]] = rest[1]
            else:
                assert kind == "READY", f"unexpected line from the child: {line!r}"
        return len(lines)


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


def _check_database(data_dir: Path, acked: Acknowledged) -> None:
    """Integrity first (raw SQLite, before any recovery), then every acknowledged write."""
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        rows = {
            mid: (text, stop)
            for mid, text, stop in conn.execute("SELECT id, text, stop_reason FROM messages")
        }
    finally:
        conn.close()
    for mid, digest in acked.user.items():
        assert mid in rows, f"acknowledged user message {mid} is missing"
        assert _digest(rows[mid][0]) == digest
    for mid, (length, digest) in acked.checkpoint.items():
        text, _ = rows[mid]
        # A later checkpoint may have committed just before the kill, unacknowledged: it only
        # ever extends the text.
        assert len(text) >= length and _digest(text[:length]) == digest, mid
    for mid, digest in acked.finished.items():
        assert rows[mid] == (rows[mid][0], StopReason.EOS.value)
        assert _digest(rows[mid][0]) == digest
    for sha in acked.blobs:
        blob = data_dir / "blobs" / sha[:2] / sha
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha


def _count(data_dir: Path, where: str, params: tuple[object, ...] = ()) -> int:
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        return conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0]
    finally:
        conn.close()


def test_sigkill_at_random_moments_never_loses_an_acknowledged_write(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(SEED)
    acked = Acknowledged()
    for run in range(ITERATIONS):
        output = _run_child(data_dir, SEED + run, rng, early=run % EARLY_KILL_EVERY == 1)
        acked.read(output)
        if not (data_dir / DB_NAME).exists():
            continue  # killed before it created anything
        _check_database(data_dir, acked)
        # It opens cleanly, finalising the answer the kill cut short (its text was checked above).
        SessionStore.open(data_dir).close()
        assert _count(data_dir, "role = 'assistant' AND stop_reason IS NULL") == 0

    # The schedule really exercised the store: many acknowledged writes, answers cut mid-stream.
    assert len(acked.user) > ITERATIONS
    assert len(acked.finished) > ITERATIONS
    assert _count(data_dir, "error = ?", (INTERRUPTED,)) > 0
    _check_database(data_dir, acked)
    with SessionStore.open(data_dir) as store:
        sessions = store.list_sessions()
        assert sum(s.message_count for s in sessions) == _count(data_dir, "1")
        assert all(
            m.stop_reason is not None
            for s in sessions
            for m in store.messages(s.id)
            if m.role is Role.ASSISTANT
        )
