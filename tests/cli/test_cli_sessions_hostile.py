"""Hostile input through the real `scout-desk sessions` command: refused imports, damaged rows,
and titles or file names that would drive the terminal."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.commands.terminal import json_text, printable
from app.store.export import export_session
from app.store.sessions import DB_NAME, SessionStore
from tests.helpers.sample_chats import save_full_chat

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(data_dir), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        cwd=REPO,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
    )


def _no_constants(text: str) -> Any:
    """Parse strict JSON: NaN and Infinity are not JSON and fail the test."""

    def refuse(name: str) -> None:
        raise AssertionError(f"the output holds the non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def chat(data_dir: Path) -> str:
    """A chat with an attachment, an answer with timings and a box: every part of the format."""
    with SessionStore.open(data_dir) as store:
        return save_full_chat(store)


@pytest.fixture
def exported(data_dir: Path, chat: str, tmp_path: Path) -> dict[str, Any]:
    dest = tmp_path / "good.json"
    with SessionStore.open(data_dir) as store:
        export_session(store, chat, "json", dest)
    return json.loads(dest.read_text("utf-8"))


def _snapshot(data_dir: Path) -> tuple[Any, ...]:
    """Everything an import could leave behind: rows of every table and the blob files."""
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        tables = tuple(
            conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("sessions", "messages", "message_attachments")
        )
    finally:
        conn.close()
    blobs = sorted(
        str(p.relative_to(data_dir)) for p in (data_dir / "blobs").rglob("*") if p.is_file()
    )
    return (*tables, blobs)


class Raw:
    """A literal written into the JSON file as is (NaN, 1e999: what json.dumps cannot write)."""

    def __init__(self, text: str) -> None:
        self.text = text


DELETE = object()


def _mangled(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> bytes:
    """The document with the value at `path` replaced (or deleted), as the bytes of a file."""
    document = json.loads(json.dumps(document))
    *parents, last = path
    target: Any = document
    for key in parents:
        target = target[key]
    raw: dict[str, str] = {}
    if value is DELETE:
        del target[last]
    elif isinstance(value, Raw):
        marker = f"@@raw{len(raw)}@@"
        raw[json.dumps(marker)] = value.text
        target[last] = marker
    else:
        target[last] = value
    # ensure_ascii writes a lone surrogate as the escape "\ud800": valid UTF-8, hostile JSON.
    text = json.dumps(document, ensure_ascii=True)
    for marker, literal in raw.items():
        text = text.replace(marker, literal)
    return text.encode("utf-8")


ATTACHMENT = ("messages", 0, "attachments", 0)
TIMINGS = ("messages", 1, "timings")
BOX = ("messages", 1, "boxes", 0)

HOSTILE = [
    # Times that are not finite or are outside 1970..9999.
    (("session", "updated_at"), Raw("1e999"), "session.updated_at"),
    (("session", "updated_at"), Raw("-1e999"), "session.updated_at"),
    (("session", "updated_at"), 1e300, "session.updated_at"),
    (("session", "created_at"), -1e18, "session.created_at"),
    (("messages", 0, "created_at"), Raw("NaN"), "messages[0].created_at"),
    (("messages", 1, "created_at"), Raw("Infinity"), "messages[1].created_at"),
    (("exported_at",), Raw("-Infinity"), "exported_at"),
    ((*TIMINGS, "ttft_s"), Raw("1e999"), "messages[1].timings.ttft_s"),
    ((*TIMINGS, "load_s"), Raw("NaN"), "messages[1].timings.load_s"),
    # Integers beyond SQLite's 64 bits or any sane size.
    ((*ATTACHMENT, "size"), 2**70, "messages[0].attachments[0].size"),
    ((*ATTACHMENT, "width"), -(2**70), "messages[0].attachments[0].width"),
    ((*ATTACHMENT, "height"), 2**40, "messages[0].attachments[0].height"),
    ((*ATTACHMENT, "tokens"), 2**70, "messages[0].attachments[0].tokens"),
    ((*TIMINGS, "prompt_tokens"), -(2**70), "messages[1].timings.prompt_tokens"),
    ((*BOX, "x2"), 2**70, "messages[1].boxes[0].x2"),
    ((*BOX, "image"), -1, "messages[1].boxes[0].image"),
    (("version",), 2**70, "newer Scout Desk"),
    # Text that cannot be stored as UTF-8.
    (("session", "title"), "\ud800", "session.title"),
    (("messages", 0, "text"), "a\udc00b", "messages[0].text"),
    ((*ATTACHMENT, "name"), "\ud800.png", "messages[0].attachments[0].name"),
    ((*BOX, "label"), "\udfff", "messages[1].boxes[0].label"),
    (("messages", 1, "error"), "\udbff", "messages[1].error"),
    # Wrong types.
    (("session", "title"), 5, "session.title"),
    (("messages", 0, "created_at"), "yesterday", "messages[0].created_at"),
    (("messages", 0, "created_at"), True, "messages[0].created_at"),
    ((*ATTACHMENT, "width"), 1.5, "messages[0].attachments[0].width"),
    ((*TIMINGS, "completion_tokens"), 12.0, "messages[1].timings.completion_tokens"),
    (("messages",), {"a": 1}, "messages"),
    (("session",), [], "session"),
    (TIMINGS, "fast", "messages[1].timings"),
    # Values outside their enumeration or form.
    (("messages", 0, "role"), "robot", "messages[0].role"),
    ((*ATTACHMENT, "kind"), "virus", "messages[0].attachments[0].kind"),
    ((*ATTACHMENT, "status"), "fine", "messages[0].attachments[0].status"),
    (("messages", 1, "stop_reason"), "exploded", "messages[1].stop_reason"),
    ((*ATTACHMENT, "sha256"), "../../etc/passwd", "messages[0].attachments[0].sha256"),
    ((*BOX, "x2"), 0, "messages[1].boxes[0]"),
    # Missing or unknown fields.
    (("messages", 0, "text"), DELETE, "messages[0].text"),
    (("session", "title"), DELETE, "session.title"),
    (("messages",), DELETE, "messages"),
    (("messages", 0, "surprise"), 1, "messages[0].surprise"),
    ((*TIMINGS, "warp_s"), 1.0, "messages[1].timings.warp_s"),
]


@pytest.mark.parametrize(
    ("path", "value", "named"), HOSTILE, ids=[f"{p[-1]}={v!r:.20}" for p, v, _ in HOSTILE]
)
def test_a_hostile_field_is_refused_with_one_sentence_and_nothing_stored(
    data_dir: Path, exported: dict[str, Any], tmp_path: Path, path, value, named: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(_mangled(exported, path, value))
    before = _snapshot(data_dir)
    result = _cli("sessions", "import", bad, data_dir=data_dir)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert str(bad) in result.stderr and named in result.stderr
    assert result.stdout == ""
    assert _snapshot(data_dir) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_literal_anywhere_is_refused(
    data_dir: Path, exported: dict[str, Any], tmp_path: Path, literal: str
) -> None:
    # Even in a field whose value is text, a list, or in a field the format does not have.
    for path in [("app_version",), ("messages", 0, "attachments"), ("session", "extra")]:
        bad = tmp_path / "bad.json"
        bad.write_bytes(_mangled(exported, path, Raw(literal)))
        before = _snapshot(data_dir)
        result = _cli("sessions", "import", bad, data_dir=data_dir)
        assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
        assert _snapshot(data_dir) == before


def test_a_huge_blob_that_does_not_match_its_checksum_is_refused(
    data_dir: Path, exported: dict[str, Any], tmp_path: Path
) -> None:
    (sha,) = exported["blobs"]
    forged = base64.b64encode(os.urandom(3_000_000)).decode("ascii")
    bad = tmp_path / "bad.json"
    bad.write_bytes(_mangled(exported, ("blobs", sha), forged))
    before = _snapshot(data_dir)
    result = _cli("sessions", "import", bad, data_dir=data_dir)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "checksum" in result.stderr and result.stderr.count("\n") == 1
    assert _snapshot(data_dir) == before


@pytest.mark.parametrize(
    ("blobs", "named"),
    [
        ({"0" * 64: base64.b64encode(b"x").decode()}, "checksum"),
        ({"not-a-sha": "eA=="}, "not-a-sha"),
        ("blobs", "blobs"),
        ({"ab" * 32: "***"}, "base64"),
        ({"ab" * 32: 7}, "base64"),
    ],
)
def test_bad_blobs_are_refused(
    data_dir: Path, exported: dict[str, Any], tmp_path: Path, blobs: Any, named: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(_mangled(exported, ("blobs",), blobs))
    before = _snapshot(data_dir)
    result = _cli("sessions", "import", bad, data_dir=data_dir)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert named in result.stderr and result.stderr.count("\n") == 1
    assert _snapshot(data_dir) == before


def test_the_good_export_imports(data_dir: Path, exported: dict[str, Any], tmp_path: Path) -> None:
    good = tmp_path / "again.json"
    good.write_bytes(_mangled(exported, ("session", "title"), "Ruler photo"))
    result = _cli("sessions", "import", good, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    listed = _no_constants(_cli("sessions", "list", "--json", data_dir=data_dir).stdout)
    assert [r["title"] for r in listed] == ["Ruler photo", "Ruler photo"]


# Damaged rows: values the old import let in, written straight into a real store.

BAD_TIMES = [1e300, -1e18, float("inf"), float("-inf"), 2.0**62]


def _damage(data_dir: Path, chat: str, when: float) -> None:
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        conn.execute("UPDATE sessions SET updated_at = ?, created_at = ?", (when, -when))
        conn.execute("UPDATE messages SET created_at = ?", (when,))
        conn.execute(
            "UPDATE messages SET timings = ? WHERE role = 'assistant'",
            ('{"load_s": Infinity, "ttft_s": NaN, "decode_tokens_per_s": -1e999}',),
        )
        conn.execute("UPDATE message_attachments SET width = -5, height = ?, tokens = -1", (2**62,))
        # A second chat, untouched: one bad row never hides the rest.
        conn.execute(
            "INSERT INTO sessions (id, title, created_at, updated_at) VALUES ('ok', 'Fine', 1, 2)"
        )
    finally:
        conn.close()


@pytest.mark.parametrize("when", BAD_TIMES)
def test_damaged_times_never_break_listing_or_export(
    data_dir: Path, chat: str, tmp_path: Path, when: float
) -> None:
    _damage(data_dir, chat, when)

    listing = _cli("sessions", "list", data_dir=data_dir)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert chat in listing.stdout and "Fine" in listing.stdout

    as_json = _cli("sessions", "list", "--json", data_dir=data_dir)
    assert as_json.returncode == 0, as_json.stderr
    rows = _no_constants(as_json.stdout)
    assert {r["id"] for r in rows} == {chat, "ok"}

    for fmt in ("md", "html", "json"):
        dest = tmp_path / f"chat.{fmt}"
        result = _cli("sessions", "export", chat, "--format", fmt, "-o", dest, data_dir=data_dir)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "Where is the ruler?" in dest.read_text("utf-8")
    _no_constants((tmp_path / "chat.json").read_text("utf-8"))
    # What the store holds, it can export; what it exports, it can import.
    imported = _cli("sessions", "import", tmp_path / "chat.json", data_dir=data_dir)
    assert imported.returncode == 0, imported.stderr


# Titles and file names that would drive the terminal.

TERMINAL_TRICKS = ["\x1b]0;pwned\x07", "\x1b[31mred", "a\nb", "a\x00b", "\u202egnp.exe", "a\rb"]
RAW_CONTROLS = ["\x1b", "\x07", "\x00", "\r", "\u202e", "\x9b"]


def test_titles_never_reach_the_terminal_raw(data_dir: Path) -> None:
    with SessionStore.open(data_dir) as store:
        ids = [store.create_session(title).id for title in [*TERMINAL_TRICKS, "\x9b2J"]]
    result = _cli("sessions", "list", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert not [c for c in RAW_CONTROLS if c in result.stdout]
    lines = result.stdout.splitlines()
    assert len(lines) == len(ids)  # every chat stays on its own line
    for session_id in ids:
        assert sum(session_id in line for line in lines) == 1
    assert r"\x1b]0;pwned\x07" in result.stdout and r"\u202egnp.exe" in result.stdout
    assert r"a\nb" in result.stdout and r"a\x00b" in result.stdout

    as_json = _cli("sessions", "list", "--json", data_dir=data_dir)
    assert as_json.returncode == 0
    assert "\x1b" not in as_json.stdout and "\x00" not in as_json.stdout
    assert {r["title"] for r in _no_constants(as_json.stdout)} >= set(TERMINAL_TRICKS)


def test_import_messages_escape_the_file_name_and_title(
    data_dir: Path, exported: dict[str, Any], tmp_path: Path
) -> None:
    trick = tmp_path / "\x1b]0;pwned\x07.json"
    trick.write_bytes(_mangled(exported, ("session", "title"), "\x1b[2J\u202eevil\nline"))
    result = _cli("sessions", "import", trick, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert not [c for c in RAW_CONTROLS if c in result.stdout]
    assert r"\x1b]0;pwned\x07.json" in result.stdout and r"\u202eevil\nline" in result.stdout

    broken = tmp_path / "\x1b[31mbad\n.json"
    broken.write_bytes(b"{not json")
    refused = _cli("sessions", "import", broken, data_dir=data_dir)
    assert refused.returncode == 3
    assert refused.stderr.count("\n") == 1 and "\x1b" not in refused.stderr
    assert r"\x1b[31mbad\n.json" in refused.stderr


def test_export_message_escapes_the_destination(data_dir: Path, chat: str, tmp_path: Path) -> None:
    dest = tmp_path / "\x1b[31mout\n.md"
    result = _cli("sessions", "export", chat, "--format", "md", "-o", dest, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and result.stdout.count("\n") == 1
    assert dest.is_file()


# The helpers themselves.


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain café 日本", "plain café 日本"),
        ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),
        ("a\nb\tc\rd\x00e\x7f", r"a\nb\tc\rd\x00e\x7f"),
        ("\x9b2J", r"\x9b2J"),
        ("\u202egnp.exe\u2066x\u2069", r"\u202egnp.exe\u2066x\u2069"),
        ("line\u2028sep", r"line\u2028sep"),
        ("lone \ud800", r"lone \ud800"),
        ("👩\u200d💻", "👩\u200d💻"),  # a joiner inside an emoji is not a control
    ],
)
def test_printable_escapes_controls_visibly(text: str, shown: str) -> None:
    assert printable(text, encoding="utf-8") == shown


def test_printable_escapes_what_the_terminal_cannot_show() -> None:
    assert printable("café\u202e", encoding="ascii") == r"caf\xe9\u202e"


@given(st.text())
def test_printable_is_always_one_safe_encodable_line(text: str) -> None:
    shown = printable(text, encoding="utf-8")
    shown.encode("utf-8")  # never a lone surrogate
    assert len(shown.splitlines()) <= 1
    assert not [c for c in shown if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]
    assert not set(shown) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_json_text_is_strict_json_even_with_lone_surrogates() -> None:
    text = json_text([{"title": "a\ud800b", "t": 1.5}], encoding="utf-8")
    text.encode("utf-8")
    assert _no_constants(text) == [{"title": "a\ud800b", "t": 1.5}]
    assert json_text({"t": "日本"}, encoding="utf-8") == '{\n  "t": "日本"\n}'
    with pytest.raises(ValueError):
        json_text({"t": float("nan")}, encoding="utf-8")


def test_a_title_that_is_not_utf8_is_listed_with_replacements(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with SessionStore.open(data_dir) as store:
        session = store.create_session("fine")
    conn = sqlite3.connect(data_dir / DB_NAME)
    # Written by another tool: bytes that are not UTF-8, stored as TEXT.
    conn.execute("UPDATE sessions SET title = CAST(X'66ff6f' AS TEXT) WHERE id = ?", (session.id,))
    conn.commit()
    conn.close()
    listed = subprocess.run(
        [sys.executable, "-m", "app.cli", "--data-dir", str(data_dir), "sessions", "list"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert "f\ufffdo" in listed.stdout
