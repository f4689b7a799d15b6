"""What store-writing child processes acknowledged, and the check that all of it is on disk."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from app.core.messages import StopReason
from app.store.sessions import DB_NAME


def digest(text: str) -> str:
    """The SHA-256 of `text` as UTF-8, in hex (what the children print)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Acknowledged:
    """What the children reported as committed (see `tests/store/store_crash_child.py`)."""

    user: dict[str, str] = field(default_factory=dict)  # message id -> text digest
    blobs: set[str] = field(default_factory=set)
    checkpoint: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (len, digest)
    finished: dict[str, str] = field(default_factory=dict)  # id -> text digest
    imported: set[str] = field(default_factory=set)  # session ids

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
            elif kind == "I":
                self.imported.add(rest[0])
            else:
                assert kind == "READY", f"unexpected line from a child: {line!r}"
        return len(lines)


def check_database(data_dir: Path, acked: Acknowledged) -> None:
    """Integrity first (raw SQLite, before any recovery), then every acknowledged write."""
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        rows = {
            mid: (text, stop)
            for mid, text, stop in conn.execute("SELECT id, text, stop_reason FROM messages")
        }
        sessions = {sid for (sid,) in conn.execute("SELECT id FROM sessions")}
    finally:
        conn.close()
    for mid, text_digest in acked.user.items():
        assert mid in rows, f"acknowledged user message {mid} is missing"
        assert digest(rows[mid][0]) == text_digest
    for mid, (length, text_digest) in acked.checkpoint.items():
        text, _ = rows[mid]
        # A later checkpoint may have committed just before the kill, unacknowledged: it only
        # ever extends the text.
        assert len(text) >= length and digest(text[:length]) == text_digest, mid
    for mid, text_digest in acked.finished.items():
        assert rows[mid] == (rows[mid][0], StopReason.EOS.value)
        assert digest(rows[mid][0]) == text_digest
    for sid in acked.imported:
        assert sid in sessions, f"acknowledged import {sid} is missing"
    for sha in acked.blobs:
        blob = data_dir / "blobs" / sha[:2] / sha
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha


def count_messages(data_dir: Path, where: str, params: tuple[object, ...] = ()) -> int:
    """How many message rows match `where` (raw SQLite)."""
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        return conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0]
    finally:
        conn.close()
