"""The import schema: every field of a JSON export checked for type, range and encoding."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.messages import (
    Timings,
)
from app.store.db import StoreError
from app.store.export import ImportRefusedError, export_session, import_session
from app.store.rows import LATEST_TIME, MAX_COUNT
from app.store.sessions import SessionStore
from tests.helpers.sample_chats import save_full_chat


@pytest.fixture
def document(store: SessionStore, tmp_path: Path) -> dict[str, Any]:
    """A good export of a chat that uses every field of the format."""
    session_id = save_full_chat(store)
    dest = tmp_path / "good.json"
    export_session(store, session_id, "json", dest)
    return json.loads(dest.read_text("utf-8"))


def _write(tmp_path: Path, text: str, name: str = "chat.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(store: SessionStore, path: Path) -> str:
    before = store.list_sessions()
    with pytest.raises(ImportRefusedError) as caught:
        import_session(store, path)
    assert store.list_sessions() == before
    assert isinstance(caught.value, StoreError)
    return caught.value.message


def _with(document: dict[str, Any], text: str, replacement: str) -> str:
    """The document as JSON with one value's JSON text replaced (to write NaN, 1e999, ...)."""
    dumped = json.dumps(document, ensure_ascii=True)
    assert dumped.count(text) == 1, text
    return dumped.replace(text, replacement)


def test_a_non_finite_time_is_named_with_its_path_and_literal(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    document["messages"][1]["created_at"] = 123.25
    path = _write(tmp_path, _with(document, '"created_at": 123.25', '"created_at": 1e999'))
    message = _refusal(store, path)
    assert message == (
        f"{path} is not a valid Scout Desk session export: "
        "messages[1].created_at is not a finite time (1e999)."
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NaN", "is not a finite time (NaN)"),
        ("-Infinity", "is not a finite time (-Infinity)"),
        ("-1e18", "is not a time between 1970 and 9999 (-1e+18)"),
        ("1e300", "is not a time between 1970 and 9999 (1e+300)"),
        ('"soon"', "should be a number, not text ('soon')"),
        ("true", "should be a number, not a boolean (true)"),
    ],
)
def test_session_times_are_checked(
    store: SessionStore, document: dict[str, Any], tmp_path: Path, value: str, problem: str
) -> None:
    document["session"]["updated_at"] = 123.25
    path = _write(tmp_path, _with(document, '"updated_at": 123.25', f'"updated_at": {value}'))
    assert _refusal(store, path).endswith(f": session.updated_at {problem}.")


def test_times_from_1970_to_9999_are_accepted(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    document["session"]["created_at"] = 0
    document["session"]["updated_at"] = LATEST_TIME
    info = import_session(store, _write(tmp_path, json.dumps(document)))
    assert (info.created_at, info.updated_at) == (0.0, LATEST_TIME)
    document["session"]["updated_at"] = math.nextafter(LATEST_TIME, math.inf)
    message = _refusal(store, _write(tmp_path, json.dumps(document)))
    assert "session.updated_at is not a time between 1970 and 9999" in message


@pytest.mark.parametrize(
    ("where", "value", "problem"),
    [
        (
            ("session", "title"),
            "\ud800",
            "session.title holds a lone surrogate, which is not valid Unicode",
        ),
        (
            ("messages", 0, "attachments", 0, "size"),
            2**70,
            "messages[0].attachments[0].size should be at most 9223372036854775807",
        ),
        (
            ("messages", 0, "attachments", 0, "width"),
            MAX_COUNT + 1,
            f"messages[0].attachments[0].width should be at most {MAX_COUNT}",
        ),
        (
            ("messages", 1, "timings", "prompt_tokens"),
            -1,
            "messages[1].timings.prompt_tokens should be at least 0 (-1)",
        ),
        (
            ("messages", 0, "role"),
            "robot",
            "messages[0].role should be 'user' or 'assistant' ('robot')",
        ),
        (
            ("messages", 0, "attachments", 0, "sha256"),
            "ABC",
            "messages[0].attachments[0].sha256 is not a SHA-256 hex digest ('ABC')",
        ),
        (("messages", 0, "surprise"), 1, "messages[0].surprise is not part of the format"),
        (("messages", 1, "boxes", 0, "x2"), 1, "messages[1].boxes[0] is not a region"),
        (("messages",), "nope", "messages should be a list, not text ('nope')"),
        (("session",), None, "session should be an object, not null"),
    ],
)
def test_each_problem_is_one_sentence_with_its_path(
    store: SessionStore, document: dict[str, Any], tmp_path: Path, where, value, problem: str
) -> None:
    *parents, last = where
    target: Any = document
    for key in parents:
        target = target[key]
    target[last] = value
    path = _write(tmp_path, json.dumps(document, ensure_ascii=True))
    message = _refusal(store, path)
    assert message.startswith(f"{path} is not a valid Scout Desk session export: ")
    assert problem in message
    assert message.endswith(".") and "\n" not in message


def test_a_missing_field_is_named(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    del document["messages"][0]["attachments"][0]["kind"]
    message = _refusal(store, _write(tmp_path, json.dumps(document)))
    assert message.endswith("messages[0].attachments[0].kind is missing.")


def test_a_long_text_value_is_cut_in_the_sentence(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    document["messages"][0]["created_at"] = "x" * 10_000
    message = _refusal(store, _write(tmp_path, json.dumps(document)))
    assert len(message) < 300 and "xxx…" in message


def test_blob_problems_name_the_blob(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    (sha,) = document["blobs"]
    document["blobs"] = {sha: "dGFtcGVyZWQ="}
    message = _refusal(store, _write(tmp_path, json.dumps(document)))
    assert f"blobs['{sha[:12]}…'] does not match its checksum" in message
    document["blobs"] = {}
    message = _refusal(store, _write(tmp_path, json.dumps(document)))
    assert f"the content of messages[0].attachments[0] (blob {sha[:12]}…) is missing" in message


def test_nulls_and_version_1_files_still_import(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    document["version"] = 1
    for message in document["messages"]:
        del message["boxes"]
        message["error"] = None
        for attachment in message["attachments"]:
            attachment.update(detail=None, mime=None, size=None, tokens=None)
    document["session"].update(created_at=None, updated_at=None)
    info = import_session(store, _write(tmp_path, json.dumps(document)))
    (question, answer) = store.messages(info.id)
    assert question.attachments[0].mime == "application/octet-stream"
    assert answer.boxes == () and answer.timings == Timings(1.0, 0.5, 20.0, 300, 12)
    assert info.updated_at >= answer.created_at  # unknown times: the import's


def test_nul_and_controls_in_text_round_trip(
    store: SessionStore, document: dict[str, Any], tmp_path: Path
) -> None:
    # The app stores whatever the user typed, NUL included: its own export must import. It is
    # the terminal output that escapes them.
    document["session"]["title"] = "a\x00b\x1b[31m"
    document["messages"][0]["text"] = "line\x00\nnext"
    info = import_session(store, _write(tmp_path, json.dumps(document)))
    assert info.title == "a\x00b\x1b[31m"
    assert store.messages(info.id)[0].text == "line\x00\nnext"


def test_not_json_or_not_an_export_keeps_its_sentences(store: SessionStore, tmp_path: Path):
    assert "(not JSON:" in _refusal(store, _write(tmp_path, "{nope"))
    assert "not a Scout Desk session export." in _refusal(store, _write(tmp_path, "[1]"))
    deep = "[" * 100_000 + "]" * 100_000
    assert "not a Scout Desk session export" in _refusal(store, _write(tmp_path, deep))
    digits = '{"format": "scout-desk-session", "version": 1' + "0" * 5000 + "}"
    assert "not a Scout Desk session export" in _refusal(store, _write(tmp_path, digits))


# Any damage to a good file is either imported or refused with a StoreError, never a crash.

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "user", "eos", "image", "0" * 64, "", "\x00"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document."""
    places = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            places += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _places(item, (*path, index))
    return places


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_is_imported_cleanly_or_refused(
    store: SessionStore, document: dict[str, Any], tmp_path: Path, data: st.DataObject
) -> None:
    damaged = json.loads(json.dumps(document))
    where = data.draw(st.sampled_from(_places(damaged)))
    value = data.draw(HOSTILE_VALUES)
    *parents, last = where
    target: Any = damaged
    for key in parents:
        target = target[key]
    target[last] = value
    path = _write(tmp_path, json.dumps(damaged, ensure_ascii=True), "damaged.json")
    before = store.list_sessions()
    try:
        info = import_session(store, path)
    except StoreError as refused:
        assert str(path) in refused.message and "\n" not in refused.message
        assert store.list_sessions() == before
        return
    # Imported: then it reads back, and exports, like any chat.
    assert info.id in {s.id for s in store.list_sessions()}
    store.messages(info.id)
    for fmt in ("md", "html", "json"):
        export_session(store, info.id, fmt, tmp_path / f"again.{fmt}")
