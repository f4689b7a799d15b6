"""The `scout-desk` command line: subcommand dispatch, sessions list/export/import, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__
from app.cli import main
from app.core.messages import StopReason
from app.store.sessions import SessionStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def saved_chat(data_dir: Path) -> str:
    store = SessionStore.open(data_dir)
    try:
        session = store.create_session("Ruler photo")
        store.add_user_message(session.id, "Where is the ruler?", [])
        answer = store.begin_assistant_message(session.id)
        store.finish_message(answer.id, "On the **left** <script>x</script>", StopReason.EOS)
        return session.id
    finally:
        store.close()


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sessions", "list", "--no-such-option"])
    assert exit_info.value.code == 2


def test_sessions_list_json_has_id_and_title(data_dir, saved_chat, capsys):
    assert main(["--data-dir", str(data_dir), "sessions", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["title"]) for r in rows] == [(saved_chat, "Ruler photo")]


def test_data_dir_comes_from_the_environment(data_dir, saved_chat, monkeypatch, capsys):
    monkeypatch.setenv("SCOUT_DESK_DATA_DIR", str(data_dir))
    assert main(["sessions", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == saved_chat


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_export_then_import_round_trips(data_dir, saved_chat, tmp_path, fmt, capsys):
    out = tmp_path / f"chat.{fmt}"
    args = ["--data-dir", str(data_dir), "sessions", "export", saved_chat, "--format", fmt]
    assert main([*args, "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Where is the ruler?" in text
    if fmt == "html":
        assert "<script>x</script>" not in text  # model output is escaped, never live HTML
    if fmt == "json":
        assert main(["--data-dir", str(data_dir), "sessions", "import", str(out)]) == 0
        main(["--data-dir", str(data_dir), "sessions", "list", "--json"])
        rows = json.loads(_last_json(capsys))
        assert len(rows) == 2
        assert {r["title"] for r in rows} == {"Ruler photo"}


def _last_json(capsys) -> str:
    out = capsys.readouterr().out
    return out[out.index("[") :]


def test_export_of_unknown_session_exits_3_naming_it(data_dir, saved_chat, tmp_path, capsys):
    code = main(
        [
            "--data-dir",
            str(data_dir),
            "sessions",
            "export",
            "nope",
            "--format",
            "md",
            "-o",
            str(tmp_path / "x.md"),
        ]
    )
    assert code == 3
    assert "'nope'" in capsys.readouterr().err


def test_import_of_a_foreign_file_exits_3_keeping_the_store(data_dir, saved_chat, tmp_path, capsys):
    bogus = tmp_path / "notes.json"
    bogus.write_text('{"hello": "world"}', encoding="utf-8")
    assert main(["--data-dir", str(data_dir), "sessions", "import", str(bogus)]) == 3
    err = capsys.readouterr().err
    assert "notes.json" in err and "Traceback" not in err
    main(["--data-dir", str(data_dir), "sessions", "list", "--json"])
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [saved_chat]


def test_corrupt_database_exits_1_with_a_sentence_and_is_left_alone(data_dir, tmp_path):
    data_dir.mkdir(parents=True)
    db = data_dir / "sessions.sqlite3"
    garbage = b"this is not a database" * 100
    db.write_bytes(garbage)
    result = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(data_dir), "sessions", "list"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ},
        timeout=60,
    )
    assert result.returncode == 1
    assert "sessions.sqlite3" in result.stderr and "Traceback" not in result.stderr
    assert db.read_bytes() == garbage  # never replaced by an empty store


def test_gui_with_a_missing_file_exits_3(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), str(tmp_path / "missing.png")]) == 3
    assert "missing.png" in capsys.readouterr().err


def test_sessions_list_escapes_control_characters_in_titles(data_dir, capsys):
    store = SessionStore.open(data_dir)
    try:
        session = store.create_session("\x1b]0;pwned\x07 two\nlines \u202egnp.exe")
    finally:
        store.close()
    assert main(["--data-dir", str(data_dir), "sessions", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
    assert out.startswith(session.id)
    assert out.rstrip("\n").endswith(r"\x1b]0;pwned\x07 two\nlines \u202egnp.exe")


def test_an_import_with_a_non_finite_time_exits_3_naming_the_field(data_dir, tmp_path, capsys):
    bad = tmp_path / "chat.json"
    bad.write_text(
        '{"format": "scout-desk-session", "version": 2, "session": {"title": "t"}, "messages": '
        '[{"role": "user", "text": "hi", "created_at": 1e999}]}',
        encoding="utf-8",
    )
    assert main(["--data-dir", str(data_dir), "sessions", "import", str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.strip() == (
        f"scout-desk: {bad} is not a valid Scout Desk session export: "
        "messages[0].created_at is not a finite time (1e999)."
    )
    assert main(["--data-dir", str(data_dir), "sessions", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
