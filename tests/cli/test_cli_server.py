"""`scout-desk ask/video/doctor --server`: the same contract over a real HTTP server on loopback.

The server is `tests.helpers.fake_openai_server`, a real one that misbehaves on purpose; the
real vLLM is exercised by tests/remote/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from PIL import Image

from app.cli import main
from app.commands.common import SERVER_ENV
from app.core.api_keys import API_KEY_ENV
from app.core.messages import AttachmentStatus, Role, StopReason
from app.store.sessions import SessionStore
from tests.helpers.fake_openai_server import FakeOpenAIServer
from tests.helpers.keyrings import MemoryKeyring
from tests.helpers.loopback import direct_to_loopback
from tests.helpers.video_clips import write_clip

MODEL = "meta-llama/Llama-4-Scout"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    direct_to_loopback(monkeypatch)
    for name in (SERVER_ENV, API_KEY_ENV, "SCOUT_DESK_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        fake.token_delay_s = 0.0
        yield fake


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(path)
    return path


def _ask(data: Path, url: str, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "ask", "--server", url, "--max-new-tokens", "16", *extra]


def _messages(data: Path, session_id: str) -> list:
    with SessionStore.open(data) as store:
        return store.messages(session_id)


def test_ask_json_is_the_same_contract_as_with_a_local_model(tmp_path, server, photo, capsys):
    server.reply = "A red square."
    data = tmp_path / "data"
    code = main(_ask(data, server.url, "--image", str(photo), "--json", "What is this?"))
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(report) == {
        "answer", "boxes", "attachments", "usage", "timings", "stop_reason", "session_id",
    }  # fmt: skip
    assert report["answer"] == "A red square."
    assert report["stop_reason"] == "eos"
    assert report["usage"]["completion_tokens"] > 0 and report["usage"]["prompt_tokens"] > 0
    (row,) = report["attachments"]
    assert (row["kind"], row["status"]) == ("image", "used") and row["tokens"] > 0
    request = server.chat_requests()[-1]  # the first one is the image probe at connect
    assert [(i.width, i.height) for i in request.images] == [(640, 480)]  # sent, as a data URI
    question, answer = _messages(data, report["session_id"])
    assert question.role is Role.USER and answer.text == "A red square."
    assert answer.stop_reason is StopReason.EOS


def test_the_key_comes_from_the_environment_and_a_wrong_one_exits_4(tmp_path, photo, capsys):
    with FakeOpenAIServer(api_key="sk-right") as server:
        data = tmp_path / "data"
        assert main(_ask(data, server.url, "Hello?")) == 4
        err = capsys.readouterr().err
        assert server.url.split("/v1")[0] in err and "API key" in err and "Traceback" not in err
        with pytest.MonkeyPatch.context() as env:
            env.setenv(API_KEY_ENV, "sk-wrong")
            assert main(_ask(data, server.url, "Hello?")) == 4
            assert "refused the API key" in capsys.readouterr().err
            env.setenv(API_KEY_ENV, "sk-right")
            assert main(_ask(data, server.url, "Hello?")) == 0
        assert server.chat_requests()[-1].authorization == "Bearer sk-right"


def test_the_key_is_in_no_file_of_the_data_folder_after_answers_exports_and_failures(
    tmp_path, photo, capsys
):
    key = "sk-scout-secret-7f3a9c"
    data = tmp_path / "data"
    with FakeOpenAIServer(api_key=key) as server, pytest.MonkeyPatch.context() as env:
        env.setenv(API_KEY_ENV, key)
        assert main(_ask(data, server.url, "--image", str(photo), "--json", "What?")) == 0
        session_id = json.loads(capsys.readouterr().out)["session_id"]
        server.behaviour, server.stall_after = "cut", 2  # a failure mid-answer is logged
        assert main(_ask(data, server.url, "Again?")) == 4
        for fmt in ("md", "html", "json"):
            out = tmp_path / f"export.{fmt}"
            assert main(["--data-dir", str(data), "sessions", "export", session_id,
                         "--format", fmt, "-o", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    files = [p for p in (*data.rglob("*"), *tmp_path.glob("export.*")) if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in files) and len(files) > 3
    for path in files:  # the database, its WAL, blobs, logs, crash reports, settings, exports
        assert key.encode() not in path.read_bytes(), path
    assert key not in captured.out + captured.err


def test_a_server_on_this_machine_is_reached_past_the_environments_proxy(
    tmp_path, server, monkeypatch, capsys
):
    server.reply = "Direct."
    monkeypatch.delenv("NO_PROXY", raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens: a proxy would fail
    assert main(_ask(tmp_path / "data", server.url, "--json", "Hi")) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "Direct."


def test_an_unknown_model_exits_4_naming_the_models_served(tmp_path, server, capsys):
    code = main(_ask(tmp_path / "data", server.url, "--server-model", "maverick", "Hi"))
    err = capsys.readouterr().err
    assert code == 4 and "maverick" in err and MODEL in err


def test_a_prompt_too_long_for_the_server_exits_3_with_both_counts(tmp_path, server, capsys):
    server.behaviour = "context_length"
    code = main(_ask(tmp_path / "data", server.url, "A long question"))
    err = capsys.readouterr().err
    assert code == 3 and "10,000 tokens against 8,192 allowed" in err


def test_nothing_listening_exits_4_naming_the_url(tmp_path, capsys):
    with FakeOpenAIServer() as gone:
        url = gone.url
    code = main(_ask(tmp_path / "data", url, "Hi"))
    err = capsys.readouterr().err
    assert code == 4 and url.split("/v1")[0] in err and "refused" in err


def test_a_stream_cut_mid_answer_keeps_the_partial_answer_with_the_reason(tmp_path, server, capsys):
    server.behaviour, server.stall_after, server.reply = "cut", 3, "one two three four five six"
    data = tmp_path / "data"
    code = main(_ask(data, server.url, "Count"))
    captured = capsys.readouterr()
    assert code == 4 and "broke before the answer was complete" in captured.err
    assert captured.out.startswith("one two three")
    with SessionStore.open(data) as store:
        (session,) = store.list_sessions()
        _question, answer = store.messages(session.id)
    assert answer.text.startswith("one two three") and answer.stop_reason is StopReason.ERROR
    assert "broke" in answer.error


def test_a_text_only_model_gets_no_image_and_the_image_says_why(tmp_path, photo, capsys):
    with FakeOpenAIServer(text_only=True) as server:
        server.reply = "I read only text."
        code = main(_ask(tmp_path / "data", server.url, "--image", str(photo), "--json", "What?"))
        report = json.loads(capsys.readouterr().out)
        assert code == 0
        (row,) = report["attachments"]
        assert row["status"] == AttachmentStatus.SKIPPED.value
        assert "reads text only" in row["detail"] and row["tokens"] == 0
        assert server.chat_requests()[-1].images == []


def test_the_server_can_come_from_the_environment(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv(SERVER_ENV, server.url)
    data = tmp_path / "data"
    code = main(["--data-dir", str(data), "ask", "--max-new-tokens", "8", "Hi there"])
    assert code == 0 and server.chat_requests()


def test_doctor_reports_the_servers_models_and_context(server, capsys):
    assert main(["doctor", "--server", server.url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["server"]["url"] == server.url
    assert report["server"]["models"] == [{"id": MODEL, "max_model_len": 8192}]
    assert report["server"]["problems"] == []


def test_doctor_says_why_a_server_cannot_be_used(capsys):
    with FakeOpenAIServer() as gone:
        url = gone.url
    assert main(["doctor", "--server", url, "--json"]) == 4
    report = json.loads(capsys.readouterr().out)
    (problem,) = report["server"]["problems"]
    assert url.split("/v1")[0] in problem and report["server"]["models"] == []
    assert main(["doctor", "--server", "http://10.0.0.9:8000/v1", "--json"]) == 4
    assert "unencrypted" in json.loads(capsys.readouterr().out)["server"]["warnings"][0]


def test_video_asks_the_frames_as_concurrent_requests(tmp_path, server, capsys):
    server.behaviour, server.hold_until = "hold", 2  # each answer waits for a second one
    clip = write_clip(tmp_path / "clip.avi")
    data = tmp_path / "data"
    code = main(["--data-dir", str(data), "video", str(clip), "What moves?", "--server",
                 server.url, "--frames", "4", "--max-new-tokens", "8", "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert server.max_in_flight >= 2  # vLLM batches what arrives together
    assert [f["time_s"] for f in report["frames"]] == sorted(f["time_s"] for f in report["frames"])
    assert len(report["frames"]) == 4
