"""Model text and error sentences reach the terminal with their escapes made visible."""

from __future__ import annotations

import argparse

import pytest

from app.commands.ask import _stream
from app.commands.common import fail
from app.commands.terminal import printable
from app.core.messages import StopReason
from app.inference.engine import GenerationResult


def test_a_streamed_answer_keeps_its_lines_but_not_its_escapes() -> None:
    chunk = "line one\n\tindented \x1b]0;pwned\x07 \x1b[2J\u202eexe.png"
    assert printable(chunk, keep_lines=True) == (
        "line one\n\tindented \\x1b]0;pwned\\x07 \\x1b[2J\\u202eexe.png"
    )


def test_ask_streams_model_text_through_the_escaper(capsys: pytest.CaptureFixture[str]) -> None:
    class _Store:
        def checkpoint_message(self, message_id: str, text: str) -> None:
            raise AssertionError("no checkpoint within a second")

    def answer():
        yield "Title: \x1b]0;owned\x07"
        yield "\nnext line"
        return GenerationResult(StopReason.EOS)

    parts: list[str] = []
    args = argparse.Namespace(json=False)
    result = _stream(answer(), parts, _Store(), "m1", args)  # type: ignore[arg-type]
    assert result.stop_reason is StopReason.EOS
    assert "".join(parts) == "Title: \x1b]0;owned\x07\nnext line"  # saved as the model wrote it
    assert capsys.readouterr().out == "Title: \\x1b]0;owned\\x07\nnext line"


def test_a_failure_sentence_naming_a_file_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("photo\x1b[31m.png\ncannot be read", 3) == 3
    assert capsys.readouterr().err == "scout-desk: photo\\x1b[31m.png\\ncannot be read\n"
