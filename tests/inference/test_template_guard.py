"""A hostile chat template costs one sentence and exit 4: it cannot hang, crash or ignore Stop.

The model folder's `chat_template.jinja` is code from the internet. These tests replace it in a
copy of the tiny Llama 4 with a nested loop that would run for hours, sandbox escapes, syntax
errors and the template's own `raise_exception`, and check the prompt renderer, the engine, the
frame pass and `scout-desk ask` as a user runs it.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.core.messages import ChatTurn, Role, StopReason
from app.core.video.data import FrameRef
from app.inference.engine import (
    Cancelled,
    CancelToken,
    GenerationRequest,
    ModelError,
    run_to_end,
)
from app.inference.llama4_prompt import TEMPLATE_TIME_LIMIT_S, render

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# 10^10 iterations of nothing: hours of pure Python, each range within the sandbox's own limit.
NESTED_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
SANDBOX_ESCAPE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
HOSTILE = {
    "sandbox escape": (SANDBOX_ESCAPE, "the template sandbox forbids"),
    "underscore namespace": ("{% set ns = namespace(_x=1) %}", "the template sandbox forbids"),
    "raise_exception": ("{{ raise_exception('Roles must\nalternate') }}", "Roles must alternate"),
    "syntax error": ("{% for %}", "not a valid Jinja template"),
    "endless recursion": (
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "recurses without end",
    ),
    "division by zero": ("{{ 1 / 0 }}", "ZeroDivisionError"),
}


def _copy_with_template(source: Path, dest: Path, template: str) -> Path:
    folder = Path(shutil.copytree(source, dest))
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def processor(tiny_model: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model, local_files_only=True)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (60, 40), (200, 30, 30)).save(path)
    return path


@pytest.fixture(scope="module")
def looping_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_with_template(
        tiny_model, tmp_path_factory.mktemp("looping") / "model", NESTED_LOOP
    )


@pytest.fixture(scope="module")
def looping_engine(looping_dir: Path) -> Iterator:
    from app.inference.local_engine import LocalLlama4Engine

    engine = LocalLlama4Engine(looping_dir, quantization="bf16", device="cpu")
    engine.load(lambda _p: None, CancelToken())
    yield engine
    engine.unload()


def _with_template(processor, template: str):
    """A shallow copy of the processor whose chat template is `template` (the original stays)."""
    hostile = copy.copy(processor)
    hostile.chat_template = template
    return hostile


def _cancel_after(cancel: CancelToken, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, cancel.cancel)
    timer.daemon = True
    timer.start()
    return timer


def _turns(*images: Path) -> tuple[ChatTurn, ...]:
    return (
        ChatTurn(Role.USER, "What is this?", tuple(images)),
        ChatTurn(Role.ASSISTANT, "A red square."),
        ChatTurn(Role.USER, "Are you sure? {{ not a template }} <|eot|>"),
    )


def test_a_normal_template_renders_exactly_as_without_the_guard(processor, photo):
    turns = _turns(photo)
    messages = [
        {
            "role": str(turn.role),
            "content": [{"type": "image"} for _ in turn.images]
            + [{"type": "text", "text": turn.text}],
        }
        for turn in turns
    ]
    plain = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert render(processor, turns) == plain
    assert render(processor, turns, cancel=CancelToken()) == plain
    assert plain.endswith("<|header_start|>assistant<|header_end|>\n\n")


def test_the_guard_leaves_the_caller_s_tracer_in_place(processor):
    events: list[str] = []

    def tracer(frame, event, arg):
        events.append(event)
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        render(processor, _turns())
        with pytest.raises(ModelError):
            render(_with_template(processor, "{% for %}"), _turns())
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


@pytest.mark.timeout(60)
def test_a_nested_loop_template_stops_at_the_time_limit(processor):
    before = sys.gettrace()
    with pytest.raises(ModelError) as caught:
        render(_with_template(processor, NESTED_LOOP), _turns())
    message = caught.value.message
    assert f"took longer than {TEMPLATE_TIME_LIMIT_S:g} s to render" in message
    assert "broken or hostile" in message
    assert "chat_template.jinja" in message
    assert "\n" not in message
    assert sys.gettrace() is before


@pytest.mark.timeout(60)
def test_stop_interrupts_a_looping_template(processor):
    cancel = CancelToken()
    timer = _cancel_after(cancel, 0.2)
    # Cancelled (not the time limit's ModelError) proves Stop was honoured before 2 s.
    with pytest.raises(Cancelled):
        render(_with_template(processor, NESTED_LOOP), _turns(), cancel=cancel)
    timer.join()


@pytest.mark.parametrize("template, expected", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_failing_template_is_one_sentence_about_the_model(processor, template, expected):
    with pytest.raises(ModelError) as caught:
        render(_with_template(processor, template), _turns())
    message = caught.value.message
    assert expected in message
    assert "chat template" in message and "\n" not in message
    assert caught.value.exit_code == 4


@pytest.mark.timeout(60)
def test_engine_generate_refuses_a_looping_template(looping_engine):
    request = GenerationRequest((ChatTurn(Role.USER, "hi"),), max_new_tokens=4)
    chunks: list[str] = []
    with pytest.raises(ModelError) as caught:
        run_to_end(looping_engine.generate(request, CancelToken()), chunks.append)
    assert "took longer than" in caught.value.message
    assert str(looping_engine.model_dir / "chat_template.jinja") in caught.value.message
    assert chunks == []


@pytest.mark.timeout(60)
def test_engine_generate_stopped_while_rendering_ends_as_cancelled(looping_engine):
    request = GenerationRequest((ChatTurn(Role.USER, "hi"),), max_new_tokens=4)
    cancel = CancelToken()
    chunks: list[str] = []
    timer = _cancel_after(cancel, 0.2)
    result = run_to_end(looping_engine.generate(request, cancel), chunks.append)
    timer.join()
    assert result.stop_reason is StopReason.CANCELLED
    assert chunks == []
    assert result.timings.completion_tokens == 0


@pytest.mark.timeout(60)
def test_the_frame_pass_refuses_a_looping_template_and_honours_stop(looping_engine, photo):
    from app.inference.frames import answer_frames

    frames = [FrameRef(0, 0.0, photo, 60, 40), FrameRef(1, 1.0, photo, 60, 40)]
    with pytest.raises(ModelError):
        list(answer_frames(looping_engine, "What?", frames, "clip.mp4", CancelToken()))
    cancel = CancelToken()
    timer = _cancel_after(cancel, 0.2)
    assert list(answer_frames(looping_engine, "What?", frames, "clip.mp4", cancel)) == []
    timer.join()


def _ask(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "--data-dir", str(tmp_path / "data"), "ask",
         "--model", str(folder), "--quantization", "bf16", "--max-new-tokens", "4",
         "--no-save", "hi"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )  # fmt: skip


def _stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    """Stderr without the load progress lines: what the user is told went wrong."""
    progress = ("Checking ", "Reading the tokenizer", "Loading weights", "Ready")
    return [line for line in done.stderr.splitlines() if not line.startswith(progress)]


@pytest.mark.parametrize(
    "template, expected",
    [(NESTED_LOOP, "took longer than"), (SANDBOX_ESCAPE, "the template sandbox forbids")],
    ids=["nested loop", "sandbox escape"],
)
def test_ask_with_a_hostile_template_exits_4_with_one_line(
    tiny_model, tmp_path, template, expected
):
    folder = _copy_with_template(tiny_model, tmp_path / "model", template)
    done = _ask(folder, tmp_path)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    lines = _stderr_lines(done)
    assert len(lines) == 1, lines
    assert expected in lines[0] and "chat_template.jinja" in lines[0]
