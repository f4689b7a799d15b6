"""One KV cache across turns: the kept prefix is the engine's own cache, cropped, never copied."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from app.core.messages import ChatTurn, Role
from app.inference.engine import CancelToken, GenerationRequest, run_to_end
from app.inference.llama4_cache import PrefixCache, crop_cache, cut_point
from app.inference.llama4_prompt import build_prompt
from app.inference.local_engine import LocalLlama4Engine

WINDOW = 64  # tiny_config's attention_chunk_size: chunked layers keep WINDOW - 1 keys


def tiny_cache() -> Any:
    from transformers import DynamicCache

    from app.inference.tiny import tiny_config

    return DynamicCache(config=tiny_config().get_text_config())


def append(cache: Any, keys: Any, start: int, stop: int) -> None:
    """Feed tokens start..stop of `keys` ([1, heads, tokens, dim]) into every layer."""
    for index in range(len(cache.layers)):
        part = keys[:, :, start:stop]
        cache.update(part, part * 2, index)


def test_take_crops_the_same_cache_in_place_without_copying() -> None:
    import torch

    keys = torch.randn(1, 2, 300, 16)
    cache = tiny_cache()
    append(cache, keys, 0, 150)
    append(cache, keys, 150, 200)  # the prompt: past the chunked layers' window
    prefix = PrefixCache()
    prefix.store(range(200), cache)
    for step in range(200, 230):  # the answer, one token a step
        append(cache, keys, step, step + 1)
    full = cache.layers[3]  # the global layer
    before = full.keys.data_ptr()

    assert prefix.reusable(list(range(240))) == 200
    taken = prefix.take()
    assert taken is cache
    assert full.keys.data_ptr() == before  # a view of the same storage: nothing was copied
    assert all(layer.get_seq_length() == 200 for layer in cache.layers)
    torch.testing.assert_close(full.keys, keys[:, :, :200], rtol=0, atol=0)
    for chunked in cache.layers[:3]:  # back to the window at token 200, no longer recording
        torch.testing.assert_close(chunked.keys, keys[:, :, 200 - WINDOW + 1 : 200], rtol=0, atol=0)
        torch.testing.assert_close(chunked.values, 2 * keys[:, :, 200 - WINDOW + 1 : 200])
        assert chunked.record_past is False
    # Handed over: nothing is kept until the engine stores it again.
    assert prefix.reusable(list(range(240))) == 0 and prefix.take() is None
    # Extended again it keeps one window, as an ordinary prefill does.
    append(cache, keys, 200, 260)
    assert cache.layers[0].keys.shape[-2] == WINDOW - 1
    assert full.keys.shape[-2] == 260


@pytest.mark.parametrize("answer_end", [40, 100])  # within the first window, and past it
def test_a_prompt_shorter_than_a_window_crops_back_too(answer_end: int) -> None:
    import torch

    keys = torch.randn(1, 2, answer_end, 16)
    cache = tiny_cache()
    append(cache, keys, 0, 20)
    prefix = PrefixCache()
    prefix.store(range(20), cache)
    for step in range(20, answer_end):
        append(cache, keys, step, step + 1)
    assert prefix.take() is cache
    for layer in cache.layers:
        assert layer.get_seq_length() == 20
        torch.testing.assert_close(layer.keys, keys[:, :, :20], rtol=0, atol=0)


def test_a_cache_taken_as_it_was_stored_is_unchanged() -> None:
    import torch

    keys = torch.randn(1, 2, 100, 16)
    cache = tiny_cache()
    append(cache, keys, 0, 100)
    prefix = PrefixCache()
    prefix.store(range(100), cache)
    assert prefix.take() is cache
    assert cache.get_seq_length() == 100
    torch.testing.assert_close(cache.layers[0].keys, keys[:, :, 100 - WINDOW + 1 :])


def test_layers_that_stopped_at_different_lengths_are_cropped_each_to_the_prefix() -> None:
    import torch

    keys = torch.randn(1, 2, 120, 16)
    cache = tiny_cache()
    append(cache, keys, 0, 100)
    cache.activate_past_recording()
    cache.update(keys[:, :, 100:110], keys[:, :, 100:110], 0)  # a forward that died after layer 0
    crop_cache(cache, 100)
    assert [layer.get_seq_length() for layer in cache.layers] == [100] * 4
    with pytest.raises(ValueError, match="fewer than"):
        crop_cache(cache, 101)


# -- the engine, float32 ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Any:
    engine = LocalLlama4Engine(tiny_model, quantization="bf16", device="cpu", segment_tokens=40)
    engine.load(lambda _p: None, CancelToken())
    engine.loaded.model.float()  # type: ignore[union-attr]
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, size in enumerate([(224, 168), (120, 80)]):
        path = folder / f"photo{i}.png"
        Image.effect_mandelbrot(size, (-2.0, -1.0, 1.0, 1.0), 40 + 20 * i).convert("RGB").save(path)
        paths.append(path)
    return paths


def ask(engine: LocalLlama4Engine, turns: tuple[ChatTurn, ...], tokens: int = 10) -> tuple:
    chunks: list[str] = []
    request = GenerationRequest(turns, max_new_tokens=tokens, temperature=0.0)
    result = run_to_end(engine.generate(request, CancelToken()), chunks.append)
    return "".join(chunks), result


def caches_alive() -> int:
    from transformers import DynamicCache

    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is DynamicCache)


@pytest.mark.slow
def test_a_follow_up_prefills_only_its_new_tokens_in_the_same_cache(engine, photos) -> None:
    engine._prefix.clear()
    words = "The quarterly report lists revenue, costs and staff per region. " * 8
    first = (ChatTurn(Role.USER, words + "What is in this picture?", (photos[0],)),)
    answer, _ = ask(engine, first)
    kept = engine._prefix._cache
    kept_ids = engine._prefix.ids
    alive = caches_alive()
    processor = engine.loaded.processor  # type: ignore[union-attr]
    first_ids = build_prompt(processor, first, engine.loaded.model.dtype).ids  # type: ignore[union-attr]
    header_end = processor.tokenizer.convert_tokens_to_ids("<|header_end|>")
    assert kept_ids == tuple(first_ids[: cut_point(first_ids, header_end)])

    follow = (
        *first,
        ChatTurn(Role.ASSISTANT, answer),
        ChatTurn(Role.USER, "And this?", (photos[1],)),
    )
    fed: list[int] = []
    embed = engine.loaded.model.get_input_embeddings()  # type: ignore[union-attr]
    handle = embed.register_forward_hook(lambda _m, args, _out: fed.append(args[0].numel()))
    try:
        _, reused = ask(engine, follow)
    finally:
        handle.remove()
    follow_ids = build_prompt(processor, follow, engine.loaded.model.dtype).ids  # type: ignore[union-attr]
    new_tokens = len(follow_ids) - len(kept_ids)
    assert engine.last_prefill_tokens == new_tokens < len(follow_ids) // 2
    # Forwards saw the new prompt tokens (segments of 40 and the last token) and then one token
    # a decode step: nothing of the kept prefix was read again.
    assert sum(fed) == new_tokens + reused.timings.completion_tokens - 1
    assert max(fed) <= 40
    # The same cache object all along, and no second one alive.
    assert engine._prefix._cache is kept
    assert caches_alive() == alive
    reused_ids = list(engine.last_token_ids)

    engine._prefix.clear()  # a fresh run: everything prefilled
    _, full = ask(engine, follow)
    assert engine.last_prefill_tokens == full.timings.prompt_tokens
    assert engine.last_token_ids == reused_ids


@pytest.mark.slow
def test_regenerating_reuses_the_cache_back_to_the_prompt(engine) -> None:
    engine._prefix.clear()
    turns = (ChatTurn(Role.USER, "Count the apples: one, two, three, four, five. " * 12),)
    ask(engine, turns, tokens=30)  # the answer runs past a chunk border of the kept cache
    first = list(engine.last_token_ids)
    kept = engine._prefix._cache
    ask(engine, turns, tokens=30)
    assert engine.last_prefill_tokens <= 3  # the newlines after the header and the last token
    assert engine.last_token_ids == first
    assert engine._prefix._cache is kept
