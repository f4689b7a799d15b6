"""The context meter, the over-budget refusal and answering chunk by chunk (map-reduce)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.chunking import plan_map
from app.core.compose import format_text_attachment
from app.core.documents import load_document
from app.core.messages import Role, StopReason
from app.core.settings import Settings
from app.inference.context_count import PROMPT_OVERHEAD, TURN_OVERHEAD
from app.inference.engine import GenerationRequest
from app.inference.token_counter import TokenCounter
from tests.helpers.offscreen import drop_files

OVERHEAD = TURN_OVERHEAD + PROMPT_OVERHEAD
LINE = "The quick brown fox jumps over the lazy dog number {n}.\n"


@pytest.fixture(scope="module")
def counter(tiny_model) -> TokenCounter:
    """The session's tiny Llama 4 counts: its tokenizer, its config's 4,096 tokens of context."""
    found = TokenCounter.from_folder(tiny_model)
    assert found is not None
    return found


def _settle(qtbot, window, exact: bool = True) -> None:
    meter = window.documents.meter
    qtbot.waitUntil(
        lambda: not meter.busy() and meter.estimate is not None and meter.estimate.exact == exact,
        timeout=20_000,
    )


def _wait_read(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.composer.chips.is_reading(), timeout=20_000)


def _big_folder(root: Path, files: int = 4, lines: int = 70) -> Path:
    (root / "src").mkdir(parents=True)
    for i in range(files):
        text = "".join(LINE.format(n=n) for n in range(lines))
        (root / "src" / f"part{i}.txt").write_text(text, encoding="utf-8")
    return root


def test_the_meter_counts_typing_and_attachments_with_the_models_tokenizer(
    qtbot, open_window, tiny_model, counter, tmp_path
):
    window = open_window(settings=Settings(model_dir=str(tiny_model), max_new_tokens=256))
    meter, bar = window.documents.meter, window.documents.meter_bar
    assert not bar.isVisible()  # nothing to count yet

    text = "How many foxes jump over the dog?"
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, text)
    _settle(qtbot, window)
    estimate = meter.estimate
    assert estimate.text_tokens == counter.count(text) + OVERHEAD
    assert (estimate.capacity, estimate.answer_tokens, estimate.image_tokens) == (4096, 256, 0)
    assert bar.label.text() == f"{estimate.need:,} of 4,096 tokens"

    note = tmp_path / "foxes.txt"
    content = "".join(LINE.format(n=n) for n in range(10))
    note.write_text(content, encoding="utf-8")
    drop_files(window, [note])
    _wait_read(qtbot, window)
    before = estimate
    qtbot.waitUntil(lambda: meter.estimate is not before and not meter.busy(), timeout=20_000)
    block = format_text_attachment("foxes.txt", content).lstrip("\n")
    assert meter.estimate.text_tokens == counter.count(text) + counter.count(block) + OVERHEAD
    assert not bar.drop_button.isVisible()


def test_without_a_model_folder_the_meter_shows_an_estimate(qtbot, open_window):
    window = open_window()
    window.composer.set_text("x" * 400)
    _settle(qtbot, window, exact=False)
    assert window.documents.meter.estimate.text_tokens == 100 + OVERHEAD
    label = window.documents.meter_bar.label.text()
    assert label.startswith("~") and "context unknown" in label


def test_over_budget_the_meter_says_by_how_much_and_send_waits(
    qtbot, open_window, tiny_model, tmp_path
):
    window = open_window(settings=Settings(model_dir=str(tiny_model), max_new_tokens=256))
    drop_files(window, [_big_folder(tmp_path / "proj")])
    _wait_read(qtbot, window)
    window.composer.set_text("What does each part say?")
    _settle(qtbot, window)
    estimate = window.documents.meter.estimate
    bar = window.documents.meter_bar
    assert estimate.over == estimate.need - 4096 > 0
    assert bar.label.text() == (
        f"{estimate.over:,} tokens over: drop files or pages, or answer chunk by chunk"
    )
    assert bar.label.property("level") == "over"
    assert bar.chunked_button.isVisibleTo(window) and bar.drop_button.isVisibleTo(window)

    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    assert f"{estimate.over:,} tokens over" in window.composer.notice.text()
    assert window.engine.requests == []
    assert window.composer.text() == "What does each part say?"

    # Dropping files from the report brings it under budget.
    bar.drop_button.click()
    qtbot.waitUntil(lambda: window.documents.report is not None, timeout=10_000)
    report = window.documents.report
    for name in ("src/part1.txt", "src/part2.txt", "src/part3.txt"):
        report.row(name).setCheckState(1, Qt.CheckState.Unchecked)
    report.accept()
    qtbot.waitUntil(
        lambda: window.documents.meter.estimate.over == 0 and not window.documents.meter.busy(),
        timeout=20_000,
    )
    assert not bar.chunked_button.isVisibleTo(window)


def _chunk_replies(request: GenerationRequest) -> str:
    prompt = request.turns[-1].text
    part = re.match(r"You are reading part (\d+) of (\d+)", prompt)
    if part:
        return f"Part {part[1]} counts foxes [src/part{int(part[1]) - 1}.txt]."
    return "All parts count foxes, seventy each [src/part0.txt]."


def test_answering_chunk_by_chunk_sends_each_chunk_then_combines(
    qtbot, open_window, tiny_model, counter, tmp_path
):
    settings = Settings(model_dir=str(tiny_model), max_new_tokens=256)
    window = open_window([_chunk_replies], settings=settings)
    drop_files(window, [_big_folder(tmp_path / "proj")])
    _wait_read(qtbot, window)
    question = "What does each part say?"
    window.composer.set_text(question)
    _settle(qtbot, window)
    (attachment,) = window.composer.chips.ready_attachments()
    document = load_document(attachment, window._store.blobs.path)
    room = 4096 - 256 - OVERHEAD
    expected = len(plan_map(question, [document], room, counter.count))
    assert expected >= 3

    progress: list[str] = []
    window.documents.meter_bar.chunked_button.click()
    run = window.documents.chunked.run
    label = window.documents.chunk_progress.label
    run.progressed.connect(lambda *_args: progress.append(label.text()))
    assert window.documents.chunk_progress.isVisibleTo(window)
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)

    prompts = [r.turns[-1].text for r in window.engine.requests]
    assert len(prompts) == expected + 1
    assert all(p.startswith("You are reading part") for p in prompts[:-1])
    assert prompts[-1].startswith("The documents were too long")
    assert f"chunk 2 of {expected}" in " ".join(progress)
    assert not window.documents.chunk_progress.isVisibleTo(window)

    user, answer = window._store.messages(window.controller.session_id)
    assert user.role is Role.USER and user.text == question
    assert answer.stop_reason is StopReason.EOS
    assert answer.text.startswith("All parts count foxes")
    assert f"Answered chunk by chunk, in {expected} chunks." in answer.text
    for n in range(1, expected + 1):
        assert f"Part {n} counts foxes" in answer.text  # every chunk's notes are kept

    widget = window.chat_view.message_widget(answer.id)
    assert widget.chunk_notes_toggle.isVisibleTo(window)
    assert not widget.chunk_notes_view.isVisibleTo(window)
    assert "Part 1 counts" not in widget.view.toPlainText()
    widget.chunk_notes_toggle.click()
    assert widget.chunk_notes_view.isVisibleTo(window)
    assert "Part 1 counts foxes" in widget.chunk_notes_view.toPlainText()


def _start_chunked(qtbot, window, tmp_path):
    drop_files(window, [_big_folder(tmp_path / "proj")])
    _wait_read(qtbot, window)
    window.composer.set_text("What does each part say?")
    _settle(qtbot, window)
    window.documents.meter_bar.chunked_button.click()
    return window.documents.chunked.run


def test_cancel_between_chunks_stops_there_and_keeps_the_notes_so_far(
    qtbot, open_window, tiny_model, tmp_path
):
    settings = Settings(model_dir=str(tiny_model), max_new_tokens=256)
    window = open_window([_chunk_replies], settings=settings)
    run = _start_chunked(qtbot, window, tmp_path)
    cancel = window.documents.chunk_progress.cancel_button
    run.progressed.connect(lambda done, _total, _label: done == 1 and cancel.click())
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)

    assert len(window.engine.requests) == 1  # chunk 2 was never sent
    answer = window._store.messages(window.controller.session_id)[-1]
    assert answer.stop_reason is StopReason.CANCELLED
    assert "Stopped after 1 of 4 chunks" in answer.text
    assert "Part 1 counts foxes" in answer.text
    assert not window.documents.chunk_progress.isVisibleTo(window)


def test_cancel_during_a_chunk_keeps_what_it_had_answered(qtbot, open_window, tiny_model, tmp_path):
    settings = Settings(model_dir=str(tiny_model), max_new_tokens=256)
    window = open_window([_chunk_replies], settings=settings, chunk_delay_s=0.05)
    run = _start_chunked(qtbot, window, tmp_path)
    cancel = window.documents.chunk_progress.cancel_button
    run.text_streamed.connect(lambda text: text.startswith("▸ Chunk 2") and cancel.click())
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)

    assert len(window.engine.requests) == 2
    answer = window._store.messages(window.controller.session_id)[-1]
    assert answer.stop_reason is StopReason.CANCELLED
    assert "Stopped after 2 of 4 chunks" in answer.text
    assert "Part 1 counts foxes" in answer.text
    assert "*(stopped)*" in answer.text
