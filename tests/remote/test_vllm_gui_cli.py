"""The app itself against the real vLLM server: `scout-desk ask/video --server` and the window."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.cli import main
from app.core.api_keys import API_KEY_ENV
from app.core.messages import AttachmentStatus, StopReason
from app.core.settings import Settings
from app.store.sessions import SessionStore
from app.ui.shell.application import default_engine_factory
from app.ui.shell.main_window import MainWindow
from app.ui.tasks.inference_worker import running_worker_threads
from tests.helpers.keyrings import MemoryKeyring
from tests.helpers.loopback import direct_to_loopback
from tests.helpers.offscreen import OFFSCREEN_NOISE
from tests.helpers.video_clips import write_clip

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.timeout(480),
    pytest.mark.qt_log_ignore(OFFSCREEN_NOISE),
]

RUNNING = "vllm:num_requests_running"


@pytest.fixture(autouse=True)
def _key_and_loopback(monkeypatch: pytest.MonkeyPatch, vllm_server) -> Iterator[None]:
    direct_to_loopback(monkeypatch)
    monkeypatch.setenv(API_KEY_ENV, vllm_server.api_key)
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield
    keyring.set_keyring(previous)


def _photo(folder: Path) -> Path:
    path = folder / "photo.png"
    Image.new("RGB", (320, 240), (220, 40, 40)).save(path)
    return path


def _ask(data: Path, server, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "ask", "--server", server.base_url, "--server-model",
            server.model, "--max-new-tokens", "12", *extra]  # fmt: skip


def test_cli_ask_answers_an_image_question_through_vllm(tmp_path, vllm_server, capsys):
    data = tmp_path / "data"
    code = main(_ask(data, vllm_server, "--image", str(_photo(tmp_path)), "--json", "What?"))
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["answer"] and report["stop_reason"] in ("eos", "length")
    (row,) = report["attachments"]
    assert row["status"] == "used" and row["tokens"] > 0
    # The server counts the image's tokens in the prompt: more than the same question alone.
    assert main(_ask(data, vllm_server, "--json", "What?")) == 0
    text_only = json.loads(capsys.readouterr().out)
    assert report["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"] + 10
    assert 0 < report["usage"]["completion_tokens"] <= 12
    assert report["timings"]["ttft_s"] > 0
    with SessionStore.open(data) as store:
        question, answer = store.messages(report["session_id"])
    assert answer.text == report["answer"]
    assert question.attachments[0].status is AttachmentStatus.USED


def test_cli_a_prompt_over_the_servers_context_exits_3(tmp_path, vllm_server, capsys):
    long_text = tmp_path / "long.txt"
    long_text.write_text("word " * 6000)
    code = main(_ask(tmp_path / "data", vllm_server, "--doc", str(long_text), "Summarise"))
    err = capsys.readouterr().err
    assert code == 3 and "allowed" in err and "Traceback" not in err


def test_cli_video_answers_every_frame_through_vllm(tmp_path, vllm_server, capsys):
    clip = write_clip(tmp_path / "clip.avi")
    data = tmp_path / "data"
    code = main([
        "--data-dir", str(data), "video", str(clip), "What moves?", "--server",
        vllm_server.base_url, "--frames", "3", "--max-new-tokens", "6", "--json",
    ])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and len(report["frames"]) == 3
    assert all(frame["answer"] for frame in report["frames"])


@pytest.fixture
def window(qtbot, tmp_path, vllm_server) -> Iterator[MainWindow]:
    data = tmp_path / "data"
    data.mkdir()
    store = SessionStore.open(data)
    settings = Settings(
        backend="server", server_url=vllm_server.base_url, server_model=vllm_server.model,
        max_new_tokens=2000,
    )  # fmt: skip
    shown = MainWindow(store, data, settings, default_engine_factory, requires_model_dir=True)
    shown.show()
    qtbot.waitExposed(shown)
    yield shown
    shown.close()
    shown.deleteLater()
    store.close()
    assert running_worker_threads() == 0


def test_the_window_answers_an_image_question_and_stop_ends_it_on_the_server(
    qtbot, window, vllm_server, tmp_path
):
    window.composer.attach_paths([_photo(tmp_path)])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=20_000)
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, "Describe the picture at length")
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 0, timeout=120_000)
    host = vllm_server.base_url.removeprefix("http://").removesuffix("/v1")
    assert window.status.memory_label.text() == f"{vllm_server.model} @ {host}"
    assert vllm_server.metric(RUNNING) == 1
    stopped = time.monotonic()
    with qtbot.waitSignal(window.controller.answer_finished, timeout=5_000) as finished:
        qtbot.keyClick(window.composer.editor, Qt.Key.Key_Escape)
    answer = finished.args[0]
    assert time.monotonic() - stopped < 2.0
    assert answer.stop_reason is StopReason.CANCELLED and answer.text
    qtbot.waitUntil(lambda: vllm_server.metric(RUNNING) == 0, timeout=5_000)
    saved = window._store.messages(answer.session_id)[-1]
    assert saved.text == answer.text and saved.stop_reason is StopReason.CANCELLED
