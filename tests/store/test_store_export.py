"""Export to Markdown, HTML and JSON; import JSON back as a new chat; refuse bad files."""

from __future__ import annotations

import base64
import html.parser
import json
import logging
import math
import sqlite3
from pathlib import Path

import pytest

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, StopReason, Timings
from app.store.db import StoreError
from app.store.export import VERSION, ImportRefusedError, export_session, import_session
from app.store.rows import EARLIEST_TIME, LATEST_TIME
from app.store.sessions import DB_NAME, SessionStore

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & </div>'


@pytest.fixture
def chat(store: SessionStore, png_bytes: bytes) -> str:
    """A chat with an image, a text file, a hostile answer and a cancelled one."""
    session = store.create_session("Look <here>")
    image = Attachment(
        name="red.png",
        kind=AttachmentKind.IMAGE,
        status=AttachmentStatus.USED,
        sha256=store.blobs.put_bytes(png_bytes),
        mime="image/png",
        size=len(png_bytes),
        width=8,
        height=6,
        source_path="/home/someone/private/red.png",
        tokens=144,
    )
    notes = Attachment(
        name="notes.txt",
        kind=AttachmentKind.TEXT,
        status=AttachmentStatus.USED,
        sha256=store.blobs.put_bytes("café notes\n".encode()),
        mime="text/plain",
        size=12,
    )
    store.add_user_message(session.id, "What is this? ünïcödé", [image, notes])
    answer = store.begin_assistant_message(session.id)
    store.finish_message(answer.id, HOSTILE, StopReason.EOS, Timings(1.0, 0.5, 20.0, 300, 12))
    store.add_user_message(session.id, "and now?")
    cut = store.begin_assistant_message(session.id)
    store.finish_message(cut.id, "partial", StopReason.CANCELLED, error="stopped by you")
    return session.id


class _Scripts(html.parser.HTMLParser):
    """Collects every tag and attribute a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text += data


def test_html_is_standalone_escaped_and_embeds_images(
    store: SessionStore, chat: str, tmp_path: Path, png_bytes: bytes
) -> None:
    dest = tmp_path / "chat.html"
    export_session(store, chat, "html", dest)
    page = dest.read_text("utf-8")
    assert "<script" not in page and "<img src=x" not in page
    parsed = _Scripts()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name.startswith("on")]
    assert HOSTILE in parsed.text  # shown to the reader as text
    assert "Look <here>" in parsed.text
    sources = [v for name, v in parsed.attributes if name == "src"]
    assert sources == ["data:image/png;base64," + base64.b64encode(png_bytes).decode()]
    assert "/home/someone" not in page
    assert "stopped early: stopped by you" in parsed.text


def test_markdown_lists_attachments_and_embeds_images(
    store: SessionStore, chat: str, tmp_path: Path
) -> None:
    dest = tmp_path / "chat.md"
    export_session(store, chat, "md", dest)
    text = dest.read_text("utf-8")
    assert text.startswith("# Look <here>\n")
    assert "What is this? ünïcödé" in text
    assert "![red.png](data:image/png;base64," in text
    assert "notes.txt (text, used)" in text
    assert "/home/someone" not in text


def test_json_round_trips_into_a_new_session_each_time(
    store: SessionStore, chat: str, tmp_path: Path
) -> None:
    dest = tmp_path / "chat.json"
    export_session(store, chat, "json", dest)
    document = json.loads(dest.read_text("utf-8"))
    assert document["format"] == "scout-desk-session" and document["version"] == VERSION
    assert "/home/someone" not in dest.read_text("utf-8")

    original = store.messages(chat)
    first = import_session(store, dest)
    second = import_session(store, dest)
    assert len({chat, first.id, second.id}) == 3
    assert first.title == "Look <here>" and first.message_count == 4
    for imported in (first, second):
        copies = store.messages(imported.id)
        assert not {m.id for m in copies} & {m.id for m in original}
        assert [(m.role, m.text, m.stop_reason, m.timings, m.error) for m in copies] == [
            (m.role, m.text, m.stop_reason, m.timings, m.error) for m in original
        ]
        for copy, source in zip(copies, original, strict=True):
            assert [a.sha256 for a in copy.attachments] == [a.sha256 for a in source.attachments]
            assert all(a.source_path == "" for a in copy.attachments)
    # The original is untouched by either import.
    assert store.messages(chat) == original


def test_import_restores_missing_blobs(data_dir: Path, chat: str, tmp_path: Path) -> None:
    with SessionStore.open(data_dir) as store:
        dest = tmp_path / "chat.json"
        export_session(store, chat, "json", dest)
    other = SessionStore.open(tmp_path / "elsewhere")
    try:
        info = import_session(other, dest)
        image = other.messages(info.id)[0].attachments[0]
        assert other.blobs.read(image.sha256)[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        other.close()


def _exported(store: SessionStore, chat: str, tmp_path: Path) -> dict:
    dest = tmp_path / "good.json"
    export_session(store, chat, "json", dest)
    return json.loads(dest.read_text("utf-8"))


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda d: b"\x00\x01 not json", "not a Scout Desk session export"),
        (lambda d: [1, 2, 3], "not a Scout Desk session export"),
        (lambda d: {**d, "format": "someone-else"}, "not a Scout Desk session export"),
        (lambda d: {**d, "version": 99}, "newer Scout Desk (export version 99"),
        (lambda d: {**d, "messages": "nope"}, "messages should be a list, not text ('nope')"),
        (
            lambda d: {**d, "messages": [{**d["messages"][0], "role": "robot"}]},
            "messages[0].role should be 'user' or 'assistant' ('robot')",
        ),
        (
            lambda d: {
                **d,
                "blobs": {k: base64.b64encode(b"tampered").decode() for k in d["blobs"]},
            },
            "does not match its checksum",
        ),
        (lambda d: {**d, "blobs": {k: "***" for k in d["blobs"]}}, "not valid base64"),
        (lambda d: {**d, "blobs": {}}, "is missing"),
    ],
)
def test_bad_or_foreign_files_are_refused_naming_the_file(
    store: SessionStore, chat: str, tmp_path: Path, mangle, expected: str
) -> None:
    mangled = mangle(_exported(store, chat, tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_bytes(mangled if isinstance(mangled, bytes) else json.dumps(mangled).encode())
    before = len(store.list_sessions())
    with pytest.raises(StoreError) as caught:
        import_session(store, bad)
    assert str(bad) in caught.value.message
    assert expected in caught.value.message
    assert len(store.list_sessions()) == before  # nothing half-imported


def test_a_missing_import_file_is_named(store: SessionStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nothing\.json"):
        import_session(store, tmp_path / "nothing.json")


def test_export_errors_are_sentences(store: SessionStore, chat: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="Unknown export format 'pdf'"):
        export_session(store, chat, "pdf", tmp_path / "x.pdf")
    with pytest.raises(StoreError, match="no session"):
        export_session(store, "missing", "md", tmp_path / "x.md")
    with pytest.raises(StoreError, match="no-such-folder"):
        export_session(store, chat, "md", tmp_path / "no-such-folder" / "x.md")


def test_export_replaces_an_existing_file_atomically(
    store: SessionStore, chat: str, tmp_path: Path
) -> None:
    dest = tmp_path / "chat.md"
    dest.write_text("old export")
    export_session(store, chat, "md", dest)
    assert dest.read_text("utf-8").startswith("# Look <here>")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "data") == ["chat.md"]


# Rows an older version let in (out-of-range times, non-finite timings, absurd sizes) are read
# back clamped or as unknown, so the chat still lists, exports, and re-imports.


def _damage_rows(data_dir: Path, when: float) -> None:
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        conn.execute("UPDATE sessions SET created_at = ?, updated_at = ?", (-when, when))
        conn.execute("UPDATE messages SET created_at = ?", (when,))
        conn.execute(
            "UPDATE messages SET timings = ? WHERE timings IS NOT NULL",
            ('{"load_s": Infinity, "ttft_s": NaN, "decode_tokens_per_s": -1, '
             '"prompt_tokens": -3, "completion_tokens": 12}',),
        )  # fmt: skip
        conn.execute("UPDATE message_attachments SET width = -1, height = ?, tokens = -2", (2**40,))
    finally:
        conn.close()


@pytest.mark.parametrize("when", [1e300, -1e18, math.inf, -math.inf])
def test_out_of_range_rows_read_back_clamped_and_round_trip(
    data_dir: Path, chat: str, tmp_path: Path, when: float, caplog
) -> None:
    _damage_rows(data_dir, when)
    with SessionStore.open(data_dir) as store, caplog.at_level(logging.WARNING):
        (info,) = store.list_sessions()
        assert EARLIEST_TIME <= info.created_at <= LATEST_TIME
        assert info.updated_at == (LATEST_TIME if when > 0 else EARLIEST_TIME)
        assert store.get_session(chat) == info
        messages = store.messages(chat)
        assert len(messages) == 4  # none hidden
        assert {m.created_at for m in messages} == {info.updated_at}
        timed = next(m for m in messages if m.timings is not None)
        assert timed.timings == Timings(0.0, 0.0, 0.0, 0, 12)
        image = messages[0].attachments[0]
        assert (image.width, image.height, image.tokens) == (None, None, 0)
        assert "updated_at is out of range" in caplog.text and chat in caplog.text
        for fmt in ("md", "html", "json"):
            export_session(store, chat, fmt, tmp_path / f"chat.{fmt}")
        document = json.loads(
            (tmp_path / "chat.json").read_text("utf-8"), parse_constant=_no_constant
        )
        assert document["session"]["updated_at"] == info.updated_at
        again = import_session(store, tmp_path / "chat.json")
        assert again.updated_at == info.updated_at


def _no_constant(name: str) -> None:
    raise AssertionError(f"the export holds {name}, which is not JSON")


def test_a_box_beyond_any_image_is_skipped_not_fatal(
    data_dir: Path, chat: str, tmp_path: Path
) -> None:
    huge = json.dumps([{"label": "x", "image": 0, "x1": 0, "y1": 0, "x2": 2**40, "y2": 5}])
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        conn.execute("UPDATE messages SET boxes = ? WHERE role = 'assistant'", (huge,))
    finally:
        conn.close()
    with SessionStore.open(data_dir) as store:
        assert all(m.boxes == () for m in store.messages(chat))
        export_session(store, chat, "json", tmp_path / "chat.json")
        import_session(store, tmp_path / "chat.json")


def test_a_refusal_is_an_import_refused_error(store: SessionStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "scout-desk-session", "version": 2, "session": NaN}', "utf-8")
    with pytest.raises(ImportRefusedError, match=r"bad\.json.*: session should be an object"):
        import_session(store, bad)
