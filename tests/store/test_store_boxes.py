"""Boxes persisted with their answer: schema v2, migration from v1, damage, export and import."""

from __future__ import annotations

import html.parser
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Box, StopReason
from app.store.db import backup_path
from app.store.export import export_session, import_session
from app.store.schema import MIGRATIONS
from app.store.sessions import DB_NAME, SessionStore

BOXES = (Box("ruler", 0, 1, 1, 5, 4), Box("<b>cup</b> & saucer", 0, 0, 0, 8, 6))


def _image(store: SessionStore, png_bytes: bytes) -> Attachment:
    return Attachment(
        name="red.png",
        kind=AttachmentKind.IMAGE,
        status=AttachmentStatus.USED,
        sha256=store.blobs.put_bytes(png_bytes),
        mime="image/png",
        size=len(png_bytes),
        width=8,
        height=6,
    )


def _answered(store: SessionStore, png_bytes: bytes, boxes=BOXES) -> tuple[str, str]:
    session = store.create_session()
    store.add_user_message(session.id, "where is the ruler?", [_image(store, png_bytes)])
    answer = store.begin_assistant_message(session.id)
    store.finish_message(answer.id, "**Ruler** <BBOX>…</BBOX>", StopReason.EOS, boxes=boxes)
    return session.id, answer.id


def test_boxes_are_saved_with_the_answer_and_survive_reopening(
    store: SessionStore, data_dir: Path, png_bytes: bytes
) -> None:
    session_id, answer_id = _answered(store, png_bytes)
    store.close()
    with SessionStore.open(data_dir) as reopened:
        question, answer = reopened.messages(session_id)
    assert question.boxes == ()
    assert answer.id == answer_id and answer.boxes == BOXES


def test_set_boxes_replaces_and_clears(store: SessionStore, png_bytes: bytes) -> None:
    session_id, answer_id = _answered(store, png_bytes)
    store.set_boxes(answer_id, [Box("pen", 0, 2, 2, 3, 3)])
    assert store.messages(session_id)[1].boxes == (Box("pen", 0, 2, 2, 3, 3),)
    store.set_boxes(answer_id, [])
    assert store.messages(session_id)[1].boxes == ()


@pytest.mark.parametrize(
    "bad",
    [Box("x", 0, 5, 1, 5, 4), Box("x", 0, -1, 1, 5, 4), Box("x", -1, 1, 1, 5, 4),
     Box("x", 0, 1.5, 1, 5, 4), Box(None, 0, 1, 1, 5, 4)],  # type: ignore[arg-type]
)  # fmt: skip
def test_boxes_that_are_not_regions_are_refused_before_writing(
    store: SessionStore, png_bytes: bytes, bad: Box
) -> None:
    session_id, answer_id = _answered(store, png_bytes)
    with pytest.raises(ValueError, match="box"):
        store.set_boxes(answer_id, [bad])
    assert store.messages(session_id)[1].boxes == BOXES  # unchanged


def test_a_malformed_stored_box_never_hides_the_others_or_the_message(
    store: SessionStore, data_dir: Path, png_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    session_id, answer_id = _answered(store, png_bytes)
    stored = [
        {"label": "good", "image": 0, "x1": 1, "y1": 1, "x2": 2, "y2": 2},
        {"label": "secret label", "image": 0, "x1": 5, "y1": 1, "x2": 2, "y2": 2},
        {"label": "no numbers"},
        "not an object",
        {"label": "also good", "image": 0, "x1": 0, "y1": 0, "x2": 3, "y2": 3},
    ]
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute("UPDATE messages SET boxes = ? WHERE id = ?", (json.dumps(stored), answer_id))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="app.store"):
        answer = store.messages(session_id)[1]
    assert [b.label for b in answer.boxes] == ["good", "also good"]
    assert answer_id in caplog.text and "secret label" not in caplog.text


@pytest.mark.parametrize("raw", ["{broken", '{"not": "a list"}', "7", b"\x00\x01"])
def test_an_unreadable_boxes_column_leaves_the_message_readable(
    store: SessionStore, data_dir: Path, png_bytes: bytes, raw
) -> None:
    session_id, answer_id = _answered(store, png_bytes)
    conn = sqlite3.connect(data_dir / DB_NAME)
    conn.execute("UPDATE messages SET boxes = ? WHERE id = ?", (raw, answer_id))
    conn.commit()
    conn.close()
    answer = store.messages(session_id)[1]
    assert answer.id == answer_id and answer.boxes == () and answer.text.startswith("**Ruler**")


def _v1_database(path: Path) -> None:
    """A schema-1 database exactly as the code before boxes wrote it (raw SQL, no app code)."""
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO sessions VALUES ('s1', 'Old chat', 0, 1.0, 2.0, NULL)")
    conn.execute(
        "INSERT INTO messages (id, session_id, role, text, created_at, stop_reason, timings, "
        "error) VALUES ('m1', 's1', 'user', 'where is it?', 1.0, NULL, NULL, '')"
    )
    conn.execute(
        "INSERT INTO messages (id, session_id, role, text, created_at, stop_reason, timings, "
        "error) VALUES ('m2', 's1', 'assistant', 'over there', 2.0, 'eos', NULL, '')"
    )
    conn.commit()
    conn.close()


def test_a_v1_database_migrates_after_a_backup_and_keeps_every_message(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700)
    path = data_dir / DB_NAME
    _v1_database(path)
    with SessionStore.open(data_dir) as store:
        assert [(m.id, m.text, m.boxes) for m in store.messages("s1")] == [
            ("m1", "where is it?", ()),
            ("m2", "over there", ()),
        ]
        store.set_boxes("m2", [Box("it", 0, 0, 0, 1, 1)])
        assert store.messages("s1")[1].boxes == (Box("it", 0, 0, 0, 1, 1),)
        assert store.search("there")[0].message_id == "m2"  # FTS still in step
    backup = sqlite3.connect(backup_path(path, 1))
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = [row[1] for row in backup.execute("PRAGMA table_info(messages)")]
    assert "boxes" not in columns and backup.execute(
        "SELECT count(*) FROM messages"
    ).fetchone() == (2,)
    backup.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
    conn.close()


def test_json_export_and_import_round_trip_the_boxes(
    store: SessionStore, png_bytes: bytes, tmp_path: Path
) -> None:
    session_id, _ = _answered(store, png_bytes)
    dest = tmp_path / "chat.json"
    export_session(store, session_id, "json", dest)
    document = json.loads(dest.read_text(encoding="utf-8"))
    assert document["version"] == 2
    assert document["messages"][1]["boxes"][0] == {
        "label": "ruler", "image": 0, "x1": 1, "y1": 1, "x2": 5, "y2": 4,
    }  # fmt: skip
    imported = import_session(store, dest)
    assert store.messages(imported.id)[1].boxes == BOXES


def test_a_version_1_export_without_boxes_still_imports(
    store: SessionStore, png_bytes: bytes, tmp_path: Path
) -> None:
    session_id, _ = _answered(store, png_bytes)
    dest = tmp_path / "chat.json"
    export_session(store, session_id, "json", dest)
    document = json.loads(dest.read_text(encoding="utf-8"))
    document["version"] = 1
    for message in document["messages"]:
        del message["boxes"]
    dest.write_text(json.dumps(document), encoding="utf-8")
    imported = import_session(store, dest)
    assert [m.boxes for m in store.messages(imported.id)] == [(), ()]


def test_an_export_with_a_bad_box_is_refused_naming_the_place(
    store: SessionStore, png_bytes: bytes, tmp_path: Path
) -> None:
    session_id, _ = _answered(store, png_bytes)
    dest = tmp_path / "chat.json"
    export_session(store, session_id, "json", dest)
    document = json.loads(dest.read_text(encoding="utf-8"))
    document["messages"][1]["boxes"][1]["x2"] = "wide"
    dest.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        Exception, match=r"chat\.json.*messages\[1\]\.boxes\[1\]\.x2 should be an int"
    ):
        import_session(store, dest)


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def test_html_export_draws_the_boxes_over_the_image_and_escapes_labels(
    store: SessionStore, png_bytes: bytes, tmp_path: Path
) -> None:
    session_id, _ = _answered(store, png_bytes)
    dest = tmp_path / "chat.html"
    export_session(store, session_id, "html", dest)
    page = _Page()
    page.feed(dest.read_text(encoding="utf-8"))
    names = [tag for tag, _ in page.tags]
    assert "b" not in names and "script" not in names  # the label stayed text
    [svg] = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert svg["viewbox"] == "0 0 8 6"
    rects = [attrs for tag, attrs in page.tags if tag == "rect"]
    assert [(r["x"], r["y"], r["width"], r["height"]) for r in rects] == [
        ("1", "1", "4", "3"),
        ("0", "0", "8", "6"),
    ]
    assert "<b>cup</b> & saucer: (0, 0)–(8, 6) px" in page.text


def test_markdown_export_lists_the_boxes(
    store: SessionStore, png_bytes: bytes, tmp_path: Path
) -> None:
    session_id, _ = _answered(store, png_bytes)
    dest = tmp_path / "chat.md"
    export_session(store, session_id, "md", dest)
    text = dest.read_text(encoding="utf-8")
    assert "Located regions:\n\n- ruler: (1, 1)–(5, 4) px\n" in text
