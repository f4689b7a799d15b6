"""Sessions and messages: ordering, titles, streaming answers, supersede, trash, bad rows."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Role,
    StopReason,
    Timings,
)
from app.store.blobs import GC_GRACE_S
from app.store.db import StoreError
from app.store.sessions import (
    DB_NAME,
    DEFAULT_TITLE,
    AnswerClosedError,
    NotFoundError,
    SessionStore,
)


def _image(store: SessionStore, data: bytes, name: str = "red.png") -> Attachment:
    sha = store.blobs.put_bytes(data)
    return Attachment(
        name=name,
        kind=AttachmentKind.IMAGE,
        status=AttachmentStatus.READY,
        sha256=sha,
        mime="image/png",
        size=len(data),
        width=8,
        height=6,
        source_path="/home/me/red.png",
    )


def _raw(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / DB_NAME, isolation_level=None)


def test_ids_are_uuid4_hex_and_sessions_list_newest_activity_first(store: SessionStore) -> None:
    first = store.create_session()
    second = store.create_session()
    assert len(first.id) == 32 and int(first.id, 16) >= 0
    assert [s.id for s in store.list_sessions()] == [second.id, first.id]
    time.sleep(0.01)  # distinct timestamps, so the order below is due to the bump
    store.add_user_message(first.id, "bump me")
    listed = store.list_sessions()
    assert [s.id for s in listed] == [first.id, second.id]
    assert listed[0].updated_at > first.updated_at
    assert listed[0].message_count == 1


def test_the_first_message_titles_an_untitled_session(store: SessionStore) -> None:
    session = store.create_session()
    assert session.title == DEFAULT_TITLE
    store.add_user_message(session.id, "\n   What   breed is\tthis dog?  \nmore lines")
    store.add_user_message(session.id, "second message does not retitle")
    assert store.get_session(session.id).title == "What breed is this dog?"
    named = store.create_session("Trip photos")
    store.add_user_message(named.id, "hello")
    assert store.get_session(named.id).title == "Trip photos"


def test_a_long_first_line_is_shortened_and_an_empty_one_uses_the_attachment(
    store: SessionStore, png_bytes: bytes
) -> None:
    long = store.create_session()
    store.add_user_message(long.id, "word " * 40)
    assert len(store.get_session(long.id).title) == 60
    assert store.get_session(long.id).title.endswith("…")
    pictured = store.create_session()
    store.add_user_message(pictured.id, "", [_image(store, png_bytes, "dog.png")])
    assert store.get_session(pictured.id).title == "dog.png"


def test_rename_sticks(store: SessionStore) -> None:
    session = store.create_session()
    store.rename_session(session.id, "  My name  ")
    store.add_user_message(session.id, "not a title")
    assert store.get_session(session.id).title == "My name"


def test_user_message_with_attachments_round_trips_and_is_durable(
    data_dir: Path, png_bytes: bytes
) -> None:
    store = SessionStore.open(data_dir)
    session = store.create_session()
    image = _image(store, png_bytes)
    sent = store.add_user_message(session.id, "what is this?", [image])
    store.close()  # committed on return: a new connection sees everything

    reopened = SessionStore.open(data_dir)
    try:
        (message,) = reopened.messages(session.id)
        assert message == sent
        assert message.role is Role.USER
        assert message.attachments == (image,)
        assert reopened.blobs.read(image.sha256) == png_bytes
    finally:
        reopened.close()


def test_an_attachment_whose_blob_is_missing_is_refused(store: SessionStore) -> None:
    session = store.create_session()
    ghost = Attachment("ghost.png", AttachmentKind.IMAGE, AttachmentStatus.READY, sha256="cd" * 32)
    with pytest.raises(StoreError, match=r"ghost\.png"):
        store.add_user_message(session.id, "look", [ghost])
    assert store.messages(session.id) == []


def test_an_answer_streams_through_checkpoints_to_its_final_form(store: SessionStore) -> None:
    session = store.create_session()
    store.add_user_message(session.id, "count to three")
    answer = store.begin_assistant_message(session.id)
    assert answer.stop_reason is None and answer.text == ""
    store.checkpoint_message(answer.id, "one")
    assert store.messages(session.id)[1].text == "one"
    timings = Timings(load_s=1.5, ttft_s=0.2, decode_tokens_per_s=31.0, completion_tokens=3)
    store.finish_message(answer.id, "one two three", StopReason.LENGTH, timings, error="")
    # After finish a checkpoint is refused loudly: a silent no-op once hid lost answers.
    with pytest.raises(AnswerClosedError, match="already finished"):
        store.checkpoint_message(answer.id, "late checkpoint")
    final = store.messages(session.id)[1]
    assert (final.text, final.stop_reason, final.timings) == (
        "one two three",
        StopReason.LENGTH,
        timings,
    )


def test_update_attachments_replaces_statuses(store: SessionStore, png_bytes: bytes) -> None:
    session = store.create_session()
    image = _image(store, png_bytes)
    message = store.add_user_message(session.id, "q", [image])
    used = replace(image, status=AttachmentStatus.USED, tokens=144)
    store.update_attachments(message.id, [used])
    assert store.messages(session.id)[0].attachments == (used,)


def test_unknown_ids_raise_not_found(store: SessionStore) -> None:
    with pytest.raises(NotFoundError):
        store.add_user_message("nope", "x")
    with pytest.raises(NotFoundError):
        store.checkpoint_message("nope", "x")
    with pytest.raises(NotFoundError):
        store.finish_message("nope", "x", StopReason.EOS)
    with pytest.raises(NotFoundError):
        store.trash_session("nope")
    with pytest.raises(NotFoundError):
        store.supersede_from("nope")
    assert store.get_session("nope") is None
    assert store.messages("nope") == []


def test_supersede_hides_from_there_on_but_keeps_the_rows(
    store: SessionStore, data_dir: Path
) -> None:
    session = store.create_session()
    q1 = store.add_user_message(session.id, "first question")
    a1 = store.begin_assistant_message(session.id)
    store.finish_message(a1.id, "first answer", StopReason.EOS)
    q2 = store.add_user_message(session.id, "second question")
    a2 = store.begin_assistant_message(session.id)
    store.finish_message(a2.id, "second answer", StopReason.EOS)

    assert store.supersede_from(q2.id) == 2  # edit & resend the second question
    assert [m.id for m in store.messages(session.id)] == [q1.id, a1.id]
    assert store.get_session(session.id).message_count == 2
    q2b = store.add_user_message(session.id, "second question, reworded")
    assert [m.id for m in store.messages(session.id)] == [q1.id, a1.id, q2b.id]

    conn = _raw(data_dir)
    kept = conn.execute("SELECT text FROM messages ORDER BY seq").fetchall()
    conn.close()
    assert [t for (t,) in kept] == [
        "first question",
        "first answer",
        "second question",
        "second answer",
        "second question, reworded",
    ]


def test_trash_restore_and_empty_trash(store: SessionStore, png_bytes: bytes) -> None:
    keep = store.create_session("keep")
    doomed = store.create_session("doomed")
    shared = _image(store, png_bytes, "shared.png")
    only_doomed = _image(store, b"\x89PNG only in the doomed chat", "own.png")
    store.add_user_message(keep.id, "mine", [shared])
    store.add_user_message(doomed.id, "theirs", [shared, only_doomed])
    old = time.time() - GC_GRACE_S - 60
    for sha in (shared.sha256, only_doomed.sha256):
        os.utime(store.blobs.path(sha), (old, old))

    store.trash_session(doomed.id)
    assert [s.id for s in store.list_sessions()] == [keep.id]
    (trashed,) = store.list_sessions(trashed=True)
    assert trashed.id == doomed.id and trashed.trashed_at is not None
    store.restore_session(doomed.id)  # undo
    assert {s.id for s in store.list_sessions()} == {keep.id, doomed.id}

    store.trash_session(doomed.id)
    assert store.empty_trash() == 1
    assert store.list_sessions(trashed=True) == []
    assert store.get_session(doomed.id) is None
    assert store.blobs.has(shared.sha256)  # still used by "keep"
    assert not store.blobs.has(only_doomed.sha256)
    assert store.messages(keep.id)[0].attachments == (shared,)
    assert store.empty_trash() == 0


def test_one_unreadable_message_row_never_hides_the_others(
    store: SessionStore, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = store.create_session()
    ids = [store.add_user_message(session.id, f"secret {i}").id for i in range(4)]
    conn = _raw(data_dir)
    conn.execute("UPDATE messages SET role = 'robot' WHERE id = ?", (ids[1],))
    conn.execute("UPDATE messages SET timings = '{broken' WHERE id = ?", (ids[2],))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="app.store"):
        visible = store.messages(session.id)
    assert [m.id for m in visible] == [ids[0], ids[3]]
    assert ids[1] in caplog.text and ids[2] in caplog.text
    assert "secret" not in caplog.text  # message text is private: never logged


def test_one_unreadable_attachment_row_never_hides_its_message(
    store: SessionStore, data_dir: Path, png_bytes: bytes
) -> None:
    session = store.create_session()
    good = _image(store, png_bytes, "good.png")
    bad = _image(store, b"other", "bad.png")
    message = store.add_user_message(session.id, "two files", [good, bad])
    conn = _raw(data_dir)
    conn.execute("UPDATE message_attachments SET kind = 'hologram' WHERE name = 'bad.png'")
    conn.close()
    (read,) = store.messages(session.id)
    assert read.id == message.id and read.attachments == (good,)


def test_one_unreadable_session_row_never_hides_the_others(
    store: SessionStore, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = [store.create_session(f"chat {i}") for i in range(3)]
    conn = _raw(data_dir)
    conn.execute("UPDATE sessions SET created_at = 'yesterday' WHERE id = ?", (sessions[1].id,))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="app.store"):
        listed = store.list_sessions()
    assert {s.id for s in listed} == {sessions[0].id, sessions[2].id}
    assert sessions[1].id in caplog.text
    assert store.get_session(sessions[1].id) is None
