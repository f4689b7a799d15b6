"""The local engine on the tiny real Llama 4 (bf16, CPU): streaming, stop reasons, faults, reuse."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import (
    BadInputError,
    Cancelled,
    CancelToken,
    GenerationRequest,
    ModelError,
    OutOfMemoryError,
    run_to_end,
)
from app.inference.llama4_generate import sampling_config
from app.inference.local_engine import LocalLlama4Engine
from app.inference.tiny import special_token_ids

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[LocalLlama4Engine]:
    engine = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu")
    engine.load(lambda _p: None, CancelToken())
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (size, colour) in enumerate(
        [((120, 80), (200, 30, 30)), ((56, 56), (10, 200, 10)), ((40, 160), (0, 0, 250))]
    ):
        path = folder / f"photo{i}.png"
        Image.new("RGB", size, colour).save(path)
        paths.append(path)
    return paths


def ask(
    engine: LocalLlama4Engine,
    turns: tuple[ChatTurn, ...],
    cancel: CancelToken | None = None,
    **kw: Any,
) -> tuple[str, Any]:
    kw.setdefault("temperature", 0.0)
    chunks: list[str] = []
    request = GenerationRequest(turns, **kw)
    result = run_to_end(engine.generate(request, cancel or CancelToken()), chunks.append)
    return "".join(chunks), result


def user(text: str, *images: Path) -> ChatTurn:
    return ChatTurn(Role.USER, text, tuple(images))


def logit_hook(engine: LocalLlama4Engine, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(logits)` after every forward of the output head; returns the hook handle."""
    head = engine.loaded.model.language_model.lm_head  # type: ignore[union-attr]
    return head.register_forward_hook(lambda _m, _i, out: fn(out))


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llama4-generate"]


def test_streams_the_decoded_answer_and_stops_at_the_length(engine, photos) -> None:
    text, result = ask(engine, (user("What is this?", photos[0]),), max_new_tokens=6)
    tokenizer = engine.loaded.processor.tokenizer  # type: ignore[union-attr]
    assert result.stop_reason is StopReason.LENGTH
    assert len(engine.last_token_ids) == result.timings.completion_tokens == 6
    assert text == tokenizer.decode(engine.last_token_ids, skip_special_tokens=True)
    assert result.timings.prompt_tokens > 30  # text + the image's tiles
    assert result.timings.load_s > 0 and result.timings.ttft_s > 0
    assert not generate_threads()


def test_stops_at_end_of_turn(engine) -> None:
    eot = special_token_ids()["<|eot|>"]

    def force_eot(logits: Any) -> Any:
        logits[..., eot] += 1000.0
        return logits

    handle = logit_hook(engine, force_eot)
    try:
        _, result = ask(engine, (user("Hi"),), max_new_tokens=20)
    finally:
        handle.remove()
    assert result.stop_reason is StopReason.EOS
    assert engine.last_token_ids == [eot]


def test_stop_takes_effect_within_one_step(engine) -> None:
    cancel = CancelToken()
    steps = []

    def press_stop_at_third_step(logits: Any) -> None:
        steps.append(1)
        if len(steps) == 3:
            cancel.cancel()

    handle = logit_hook(engine, press_stop_at_third_step)
    try:
        _, result = ask(engine, (user("Count to a hundred"),), cancel, max_new_tokens=50)
    finally:
        handle.remove()
    assert result.stop_reason is StopReason.CANCELLED
    # Head calls: 1 = the engine's prefill of the kept prefix, 2 = token 1, 3 = token 2 (Stop
    # pressed during it): the criteria stops right after that step.
    assert result.timings.completion_tokens == 2


def test_max_time_stops_with_reason_time(engine) -> None:
    _, result = ask(engine, (user("Go on"),), max_new_tokens=200, max_time_s=1e-6)
    assert result.stop_reason is StopReason.TIME
    assert result.timings.completion_tokens < 200


def test_closing_the_stream_early_stops_and_joins_the_thread(engine) -> None:
    stream = engine.generate(GenerationRequest((user("Hi"),), max_new_tokens=500), CancelToken())
    next(stream, None)  # at least the prefill ran (the answer may be special tokens only)
    stream.close()
    assert not generate_threads()


def test_an_error_in_the_generate_thread_reaches_the_caller(engine) -> None:
    def explode(_logits: Any) -> None:
        raise ValueError("boom in the forward")

    handle = logit_hook(engine, explode)
    try:
        with pytest.raises(ValueError, match="boom"):
            ask(engine, (user("Hi"),), max_new_tokens=5)
    finally:
        handle.remove()
    assert not generate_threads()
    _, result = ask(engine, (user("Hi"),), max_new_tokens=2)
    assert result.stop_reason is StopReason.LENGTH


def test_out_of_memory_is_reported_and_the_engine_recovers(engine, photos) -> None:
    import torch

    turns = (user("What is this?", photos[0]),)
    ask(engine, turns, max_new_tokens=2)  # leaves a kept prefix behind

    def oom(_logits: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = logit_hook(engine, oom)
    try:
        with pytest.raises(OutOfMemoryError, match="Remove images"):
            ask(engine, turns, max_new_tokens=5)
    finally:
        handle.remove()
    assert engine._prefix.reusable([0]) == 0 and engine._prefix.ids == ()  # memory dropped
    _, result = ask(engine, turns, max_new_tokens=3)
    assert result.timings.completion_tokens == 3


def test_over_budget_is_refused_before_generating(engine) -> None:
    stream = engine.generate(GenerationRequest((user("Hi"),), max_new_tokens=5000), CancelToken())
    with pytest.raises(BadInputError, match="tokens too many"):
        next(stream)
    assert not generate_threads()


def test_a_missing_image_is_named(engine, tmp_path) -> None:
    with pytest.raises(BadInputError, match=r"gone\.png"):
        ask(engine, (user("What?", tmp_path / "gone.png"),), max_new_tokens=2)


def test_more_than_five_images_keeps_the_last_five(engine, photos) -> None:
    turns = (user("Compare", *(photos * 2)),)  # six images
    _, result = ask(engine, turns, max_new_tokens=1)
    assert result.timings.completion_tokens == 1
    ids = special_token_ids()
    # the kept prefix holds the prompt: five <|image_start|>
    assert engine._prefix.ids.count(ids["<|image_start|>"]) == 5


def test_follow_up_reuses_the_cache_and_answers_exactly_as_a_full_prefill(
    engine, tiny_model, photos
) -> None:
    first = (user("What is in this picture?", photos[0]),)
    answer, _ = ask(engine, first, max_new_tokens=8)
    follow = (*first, ChatTurn(Role.ASSISTANT, answer), user("And this one?", photos[1]))
    _, reused = ask(engine, follow, max_new_tokens=8)
    reused_ids = list(engine.last_token_ids)
    assert engine.last_prefill_tokens < reused.timings.prompt_tokens // 2

    fresh = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu")
    fresh.load(lambda _p: None, CancelToken())
    try:
        _, full = ask(fresh, follow, max_new_tokens=8)
        assert fresh.last_prefill_tokens == full.timings.prompt_tokens
        assert fresh.last_token_ids == reused_ids
    finally:
        fresh.unload()

    # Regenerate (same history): prefills almost nothing, same greedy answer.
    ask(engine, follow, max_new_tokens=8)
    assert engine.last_prefill_tokens < 5
    assert engine.last_token_ids == reused_ids
    # Edited history: falls back to a full prefill.
    edited = (user("What is in this photo?", photos[0]), *follow[1:])
    _, result = ask(engine, edited, max_new_tokens=2)
    assert engine.last_prefill_tokens == result.timings.prompt_tokens


def test_sampling_defaults_come_from_the_model(engine) -> None:
    base = engine.loaded.model.generation_config  # type: ignore[union-attr]
    default = sampling_config(base, 10, None, None)
    assert default.do_sample is True and default.temperature == 0.6 and default.top_p == 0.9
    greedy = sampling_config(base, 10, 0.0, None)
    assert greedy.do_sample is False
    custom = sampling_config(base, 10, 1.2, 0.5)
    assert (custom.do_sample, custom.temperature, custom.top_p) == (True, 1.2, 0.5)
    assert base.temperature == 0.6  # the model's own config is untouched
    _, result = ask(engine, (user("Hi"),), max_new_tokens=3, temperature=None)
    assert result.timings.completion_tokens <= 3


def test_load_can_be_cancelled_midway_and_retried(tiny_model) -> None:
    engine = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu")
    cancel = CancelToken()
    seen = []

    def progress(p: Any) -> None:
        seen.append(p)
        if p.message.startswith("Loading weights") and p.done >= 10:
            cancel.cancel()

    with pytest.raises(Cancelled):
        engine.load(progress, cancel)
    assert engine.loaded is None
    assert any(p.total > 10 and "GB" in p.message for p in seen)
    steps = []
    engine.load(steps.append, CancelToken())
    assert steps[-1].message == "Ready" and steps[-1].done == steps[-1].total
    engine.unload()
    assert engine.loaded is None
    with pytest.raises(ModelError, match="not loaded"):
        next(engine.generate(GenerationRequest((user("Hi"),)), CancelToken()))
