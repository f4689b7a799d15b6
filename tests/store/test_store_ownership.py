"""Who may finalise an unfinished answer: only its writer's death, never another process's open.

The attack (issue 10, item 1): opening the store, even for `scout-desk sessions list`, used to
finalise every unfinished answer as "interrupted", including one a live process was streaming;
that process's later checkpoints then silently changed nothing. These tests stream with a real
child process and open the store beside it with real `scout-desk` processes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.messages import Role, StopReason
from app.store.sessions import DB_NAME, INTERRUPTED, AnswerClosedError, SessionStore

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("store_stream_child.py")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


class StreamingChild:
    """A real process streaming one answer into the store, one checkpoint at a time."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir)],
            cwd=REPO,
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self.process.stdout.readline().split()
        assert ready[:1] == ["READY"], self.process.stderr.read()
        self.session_id, self.answer_id = ready[1], ready[2]

    def send(self, command: str, text: str) -> str:
        """Checkpoint (C) or finish (F) the answer with `text`; return the child's reply."""
        self.process.stdin.write(f"{command} {text}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def child(data_dir: Path) -> Iterator[StreamingChild]:
    streaming = StreamingChild(data_dir)
    yield streaming
    streaming.close()


def _answer_row(data_dir: Path, answer_id: str) -> tuple[str, str | None, str]:
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        return conn.execute(
            "SELECT text, stop_reason, error FROM messages WHERE id = ?", (answer_id,)
        ).fetchone()
    finally:
        conn.close()


def _cli(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--data-dir", str(data_dir), *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_listing_in_another_process_leaves_a_live_answer_streaming(
    data_dir: Path, child: StreamingChild
) -> None:
    assert child.send("C", "Once upon") == "OK"
    listing = _cli(data_dir, "sessions", "list", "--json")
    _, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    assert _answer_row(data_dir, child.answer_id) == ("Once upon", None, "")

    # Everything streamed after the other process opened the store is still saved.
    assert child.send("C", "Once upon a time") == "OK"
    assert _answer_row(data_dir, child.answer_id)[0] == "Once upon a time"
    assert child.send("F", "Once upon a time, the end.") == "OK"
    assert _answer_row(data_dir, child.answer_id) == (
        "Once upon a time, the end.",
        StopReason.EOS.value,
        "",
    )


def test_ten_parallel_cli_runs_never_interrupt_a_live_answer(
    data_dir: Path, child: StreamingChild
) -> None:
    streamed = "word"
    assert child.send("C", streamed) == "OK"
    runs = [_cli(data_dir, "sessions", "list") for _ in range(10)]
    for n in range(len(runs)):
        streamed += f" {n}"
        assert child.send("C", streamed) == "OK"
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert "interrupted" not in err.lower()
    assert _answer_row(data_dir, child.answer_id) == (streamed, None, "")
    assert child.send("F", streamed + ".") == "OK"


def test_a_killed_writer_s_answer_is_finalised_with_its_last_checkpoint(
    data_dir: Path, child: StreamingChild
) -> None:
    assert child.send("C", "The picture shows") == "OK"
    child.kill()
    with SessionStore.open(data_dir) as store:
        answer = store.messages(child.session_id)[1]
    assert (answer.text, answer.stop_reason, answer.error) == (
        "The picture shows",
        StopReason.CANCELLED,
        INTERRUPTED,
    )
    # Its lock file went with it: nothing accumulates in the data folder.
    assert list((data_dir / "leases").glob("*.lock")) == []


def test_a_checkpoint_that_saves_nothing_is_an_error_not_a_no_op(
    data_dir: Path, child: StreamingChild
) -> None:
    assert child.send("C", "first") == "OK"
    # A Scout Desk without leases finalised it behind the writer's back.
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute(
        "UPDATE messages SET stop_reason = 'cancelled' WHERE id = ?", (child.answer_id,)
    ).connection.commit()
    conn.close()
    reply = child.send("C", "first and second")
    assert reply.startswith("ERR AnswerClosedError"), reply
    assert "not saved" in reply


def test_a_second_store_in_the_same_process_leaves_the_first_one_s_answer(data_dir: Path) -> None:
    with SessionStore.open(data_dir) as writer:
        session = writer.create_session()
        writer.add_user_message(session.id, "q")
        answer = writer.begin_assistant_message(session.id)
        writer.checkpoint_message(answer.id, "part")
        SessionStore.open(data_dir).close()
        writer.checkpoint_message(answer.id, "part two")
        assert writer.messages(session.id)[1].stop_reason is None
    # Closed without finishing: now it is anybody's to finalise.
    with SessionStore.open(data_dir) as reader:
        answer_row = reader.messages(session.id)[1]
    assert (answer_row.text, answer_row.error) == ("part two", INTERRUPTED)


def test_answers_left_by_a_version_without_leases_are_finalised(data_dir: Path) -> None:
    with SessionStore.open(data_dir) as store:
        session = store.create_session()
        answer = store.begin_assistant_message(session.id)
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute(
        "UPDATE messages SET writer = NULL, stop_reason = NULL, text = 'old' WHERE id = ?",
        (answer.id,),
    ).connection.commit()
    conn.close()
    with SessionStore.open(data_dir) as store:
        (old,) = [m for m in store.messages(session.id) if m.role is Role.ASSISTANT]
        assert (old.text, old.stop_reason) == ("old", StopReason.CANCELLED)
        with pytest.raises(AnswerClosedError):
            store.checkpoint_message(answer.id, "too late")
