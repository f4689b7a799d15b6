"""The window over a server backend: Settings, the key in the keyring, answers, Stop, faults.

The server is a real HTTP server on loopback (`tests.helpers.fake_openai_server`); the engine is
the real `RemoteEngine`, built by the app's own engine factory from the settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from app.core.api_keys import API_KEY_ENV, load_api_key
from app.core.messages import AttachmentStatus, StopReason
from app.core.settings import Settings
from app.ui.shell.application import default_engine_factory
from app.ui.shell.main_window import MainWindow
from app.ui.shell.settings_dialog import SettingsDialog
from tests.helpers.fake_openai_server import FakeOpenAIServer
from tests.helpers.keyrings import MemoryKeyring
from tests.helpers.loopback import direct_to_loopback

MODEL = "meta-llama/Llama-4-Scout"


@pytest.fixture(autouse=True)
def _loopback_and_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    direct_to_loopback(monkeypatch)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        fake.token_delay_s = 0.0
        yield fake


def _window(open_window, url: str, **settings: object) -> MainWindow:
    chosen = Settings(backend="server", server_url=url, max_new_tokens=64, **settings)
    return open_window(settings=chosen, factory=default_engine_factory, requires_model_dir=True)


def _send(qtbot, window: MainWindow, text: str) -> None:
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, text)
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)


def _photo(folder: Path) -> Path:
    path = folder / "photo.png"
    Image.new("RGB", (800, 600), (20, 120, 220)).save(path)
    return path


def test_an_image_question_is_answered_by_the_server(qtbot, open_window, open_store, server,
                                                     tmp_path):  # fmt: skip
    server.reply = "A blue rectangle."
    window = _window(open_window, server.url)
    window.composer.attach_paths([_photo(tmp_path)])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=10_000)
    with qtbot.waitSignal(window.controller.answer_finished, timeout=20_000) as finished:
        _send(qtbot, window, "What is in the picture?")
    answer = finished.args[0]
    assert answer.text == "A blue rectangle." and answer.stop_reason is StopReason.EOS
    question, saved = open_store().messages(answer.session_id)
    assert saved.text == "A blue rectangle."
    assert [a.status for a in question.attachments] == [AttachmentStatus.USED]
    assert server.chat_requests()[-1].images[0].width == 800
    # The status bar says which model answers, and where.
    assert window.status.memory_label.text() == f"{MODEL} @ 127.0.0.1:{server.port}"
    # The context meter counts against the server's context, not a model folder's.
    meter = window.documents.meter
    qtbot.waitUntil(lambda: meter.estimate is not None and meter.estimate.capacity == 8192,
                    timeout=10_000)  # fmt: skip
    assert meter.estimate.capacity_source == "the server's context (max_model_len)"


def test_stop_closes_the_stream_and_keeps_what_came(qtbot, open_window, open_store, server):
    server.behaviour, server.stall_after = "stall", 2
    window = _window(open_window, server.url)
    _send(qtbot, window, "Tell me everything")
    server.wait_tokens_sent(2, timeout=10)
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 0, timeout=10_000)
    with qtbot.waitSignal(window.controller.answer_finished, timeout=5_000) as finished:
        qtbot.keyClick(window.composer.editor, Qt.Key.Key_Escape)
    answer = finished.args[0]
    assert answer.stop_reason is StopReason.CANCELLED and answer.text
    request = server.chat_requests()[-1]
    qtbot.waitUntil(lambda: request.disconnected_at is not None, timeout=2_000)


def test_a_server_that_is_down_is_a_sentence_and_the_window_goes_on(qtbot, open_window,
                                                                     open_store):  # fmt: skip
    with FakeOpenAIServer() as gone:
        url = gone.url
    window = _window(open_window, url)
    with qtbot.waitSignal(window.controller.answer_finished, timeout=20_000) as finished:
        _send(qtbot, window, "Anyone there?")
    answer = finished.args[0]
    assert answer.stop_reason is StopReason.ERROR and "refused" in answer.error
    assert open_store().messages(answer.session_id)[0].text == "Anyone there?"  # kept
    assert window.isVisible()


def test_settings_test_connection_lists_the_models_and_the_key_goes_to_the_keyring(
    qtbot, open_window, data_dir, _loopback_and_keyring
):
    with FakeOpenAIServer(models=(("tiny", 4096), ("other", None)), api_key="sk-42") as server:
        window = open_window()
        dialog = SettingsDialog(window.effective_settings(), data_dir, None, window)
        qtbot.addWidget(dialog)
        dialog.server.server_radio.setChecked(True)
        dialog.server.url_edit.setText(server.url)
        dialog.server.key_edit.setText("sk-42")
        with qtbot.waitSignal(dialog.server.tested, timeout=10_000) as tested:
            dialog.server.test_button.click()
        assert tested.args[0] is True
        assert "2 models, context up to 4,096 tokens" in dialog.server.result_label.text()
        combo = dialog.server.model_combo
        assert [combo.itemText(i) for i in range(combo.count())] == ["tiny", "other"]
        assert window.apply_settings(dialog.settings(), dialog.typed_key())
        dialog.done(0)
    written = (data_dir / "settings.json").read_text()
    assert json.loads(written)["server_url"] == server.url
    assert "sk-42" not in written
    assert load_api_key(server.url) == "sk-42"
    assert _loopback_and_keyring.passwords  # in the keyring, under the server's origin


def test_a_wrong_key_fails_the_test_with_a_sentence(qtbot, open_window, data_dir):
    with FakeOpenAIServer(api_key="sk-right") as server:
        window = open_window()
        dialog = SettingsDialog(window.effective_settings(), data_dir, None, window)
        qtbot.addWidget(dialog)
        dialog.server.server_radio.setChecked(True)
        dialog.server.url_edit.setText(server.url)
        dialog.server.key_edit.setText("sk-wrong")
        with qtbot.waitSignal(dialog.server.tested, timeout=10_000) as tested:
            dialog.server.test_button.click()
        assert tested.args[0] is False and "refused the API key" in tested.args[1]
        dialog.done(0)


def test_plain_http_to_another_machine_is_flagged_and_a_bad_url_is_refused(
    qtbot, open_window, data_dir
):
    window = open_window()
    dialog = SettingsDialog(window.effective_settings(), data_dir, None, window)
    qtbot.addWidget(dialog)
    dialog.server.server_radio.setChecked(True)
    dialog.server.url_edit.setText("http://10.1.2.3:8000/v1")
    assert "unencrypted" in dialog.server.warning_label.text()
    dialog.server.url_edit.setText("https://gpu.example/v1")
    assert dialog.server.warning_label.text() == ""
    dialog.server.url_edit.setText("ftp://gpu.example/v1")
    accepted: list[bool] = []
    dialog.accepted.connect(lambda: accepted.append(True))
    dialog.show()
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    ok.click()
    assert accepted == [] and dialog.isVisible()  # refused: the dialog stays open, saying why
    assert "http:// or https://" in dialog.problem_label.text()
    dialog.done(0)


def test_chunk_by_chunk_over_a_server_sends_the_chunks_concurrently(
    qtbot, open_window, open_store, tmp_path
):
    # A context of 2,048 tokens: the document below needs several chunks.
    with FakeOpenAIServer(models=((MODEL, 2048),)) as server:
        server.token_delay_s = 0.0
        server.behaviour, server.hold_until = "hold", 2  # an answer waits for a second one
        window = _window(open_window, server.url)
        qtbot.waitUntil(lambda: window.status.memory_label.text().startswith(MODEL), timeout=10_000)
        text = tmp_path / "notes.txt"
        text.write_text(
            "".join(f"Part {n}: " + "the fox counts the hens. " * 120 + "\n\n" for n in range(6))
        )
        window.composer.attach_paths([text])
        qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=10_000)
        window.composer.set_text("What does each part say?")
        meter = window.documents.meter  # chunks are cut to the server's context
        qtbot.waitUntil(lambda: meter.estimate is not None and meter.estimate.capacity == 2048,
                        timeout=10_000)  # fmt: skip
        with qtbot.waitSignal(window.controller.answer_finished, timeout=30_000) as finished:
            window.documents.answer_chunk_by_chunk()
        answer = finished.args[0]
        assert answer.stop_reason in (StopReason.EOS, StopReason.LENGTH), answer.error
        assert server.max_in_flight >= 2  # the map steps went together
        chunks = [r for r in server.chat_requests() if "You are reading part" in _last_text(r)]
        assert len(chunks) >= 3
        assert "Answered chunk by chunk" in answer.text


def test_the_video_panel_asks_every_frame_of_a_server_at_once(
    qtbot, open_window, open_store, tmp_path
):
    from tests.helpers.video_clips import write_clip
    from tests.helpers.video_ui import open_clip, sample

    with FakeOpenAIServer() as server:
        server.token_delay_s = 0.0
        server.behaviour, server.hold_until = "hold", 2  # an answer waits for a second one
        server.reply = "The square is at the left."
        window = _window(open_window, server.url)
        qtbot.waitUntil(lambda: window.status.memory_label.text().startswith(MODEL), timeout=10_000)
        video = window.video
        open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
        assert sample(qtbot, video, "count", 4) == 4
        video.panel.question_edit.setText("Where is the square?")
        with qtbot.waitSignal(video.ask_finished, timeout=30_000) as finished:
            qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
        assert finished.args == ["frames", "done"]
        frames = [r for r in server.chat_requests() if "Where is the square?" in _last_text(r)]
        assert len(frames) == 4 and all(len(r.images) == 1 for r in frames)
        assert server.max_in_flight >= 2  # the frames went as concurrent requests
        assert [f.answer for f in video.frames] == ["The square is at the left."] * 4


def _last_text(request) -> str:
    """The text of a recorded request's last user message."""
    content = request.body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if part.get("type") == "text")
