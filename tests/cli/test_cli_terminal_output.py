"""Model text and error sentences reach the terminal with their escapes made visible."""

from __future__ import annotations

import pytest

from app.commands.ask import _print_chunk
from app.commands.common import fail
from app.commands.terminal import printable
from app.conversation.pipeline import Conversation, request_for, stream_answer
from app.core.messages import StopReason
from app.core.settings import Settings
from app.inference.engine import CancelToken
from app.inference.scripted import ScriptedEngine
from app.store.sessions import SessionStore


def test_a_streamed_answer_keeps_its_lines_but_not_its_escapes() -> None:
    chunk = "line one\n\tindented \x1b]0;pwned\x07 \x1b[2J\u202eexe.png"
    assert printable(chunk, keep_lines=True) == (
        "line one\n\tindented \\x1b]0;pwned\\x07 \\x1b[2J\\u202eexe.png"
    )


def test_ask_streams_model_text_through_the_escaper(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SessionStore.open(tmp_path / "data")
    try:
        conversation = Conversation(store)
        question = conversation.save_question(None, "Title?")
        opened = conversation.open_answer(question.session_id)
        assert opened is not None
        engine = ScriptedEngine(["Title: \x1b]0;owned\x07\nnext line"])
        request = request_for(opened.turns, Settings())
        result = stream_answer(engine, request, opened.writer, CancelToken(), on_chunk=_print_chunk)
        opened.writer.finish(result.stop_reason, result.timings)
        (_, answer) = store.messages(question.session_id)
    finally:
        store.close()
    assert result.stop_reason is StopReason.EOS
    assert answer.text == "Title: \x1b]0;owned\x07\nnext line"  # saved as the model wrote it
    assert capsys.readouterr().out == "Title: \\x1b]0;owned\\x07\nnext line"


def test_a_failure_sentence_naming_a_file_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("photo\x1b[31m.png\ncannot be read", 3) == 3
    assert capsys.readouterr().err == "scout-desk: photo\\x1b[31m.png\\ncannot be read\n"
