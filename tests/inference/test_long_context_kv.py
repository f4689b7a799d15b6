"""Long context: the engine's attention and its in-place, optionally 8-bit, global-layer cache.

Exactness (tiny random Llama 4 in float32, sparse MoE, a 300-token prompt over 64-token chunks):
the engine's attention (`llama4_attention`) with the in-place cache (`llama4_kv`, bf16 layout)
agrees with transformers' stock sdpa and `DynamicCache` one-shot forward to float rounding, on
both of its paths (transformers' sdpa for short keys, one head and one row block at a time for
long ones): measured ≤ 1.8e-7 on logits of magnitude ~0.55 after the prefill and the next decode
step. Not bit for bit: the prefill's forwards see other row and key counts than the one-shot
forward (see `test_segmented_prefill`).

The int8 cache's error, measured the same way: ≤ 1.8e-4 on those logits (0.03 % of their
magnitude); its tolerance here is 1e-3.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from app.core.messages import ChatTurn, Role
from app.core.settings import Settings
from app.inference import llama4_attention
from app.inference.budget import kv_bytes_per_token
from app.inference.engine import CancelToken, GenerationRequest, ModelError, run_to_end
from app.inference.llama4_kv import held_bytes, new_cache, pack_int8, reserve, unpack_int8
from app.inference.llama4_prefill import prefill
from app.inference.local_engine import LocalLlama4Engine
from tests.helpers.tiny_models import float32_sparse_tiny

EXACT_ATOL = 1e-6  # float32 rounding (measured ≤ 1.8e-7)
INT8_ATOL = 1e-3  # the 8-bit cache (measured ≤ 1.8e-4)
PROMPT_TOKENS = 300


@pytest.fixture(scope="module")
def model() -> Any:
    return float32_sparse_tiny()  # as the engine runs it, in float32


@pytest.fixture(scope="module")
def ids() -> list[int]:
    import torch

    return torch.randint(
        0, 200, (PROMPT_TOKENS,), generator=torch.Generator().manual_seed(1)
    ).tolist()


def run(model: Any, ids: list[int], kv_cache: str | None, segment: int) -> tuple[Any, Any, Any]:
    """Prefill `ids`, then decode one token; (prefill logits, decode logits, cache).

    `kv_cache` None: transformers as it comes (stock sdpa, `DynamicCache`), in one forward.
    """
    import torch
    from transformers import DynamicCache

    text_config = model.config.get_text_config()
    with torch.inference_mode():
        if kv_cache is None:
            model.set_attn_implementation({"text_config": "sdpa"})
            cache = DynamicCache(config=text_config)
            out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
            logits = out.logits[0, -1]
        else:
            model.set_attn_implementation({"text_config": llama4_attention.register()})
            cache = new_cache(text_config, kv_cache)
            reserve(cache, len(ids) + 1)
            logits = prefill(model, cache, ids, 0, len(ids), segment_tokens=segment)
        step = model(input_ids=torch.tensor([[5]]), past_key_values=cache, use_cache=True)
    return logits, step.logits[0, -1], cache


@pytest.fixture(scope="module")
def stock(model: Any, ids: list[int]) -> tuple[Any, Any]:
    logits, decoded, _ = run(model, ids, None, 0)
    return logits, decoded


@pytest.mark.parametrize("long_path", [False, True], ids=["sdpa-path", "per-head-path"])
@pytest.mark.parametrize("segment", [PROMPT_TOKENS, 37, 64])
@pytest.mark.parametrize("kv_cache", ["bf16", "int8"])
def test_engine_attention_and_cache_agree_with_stock_transformers(
    model, ids, stock, monkeypatch, long_path: bool, segment: int, kv_cache: str
) -> None:
    import torch

    if long_path:  # the tiny model's keys are short: send them down the long-context path
        monkeypatch.setattr(llama4_attention, "DIRECT_MAX_KEYS", 0)
        monkeypatch.setattr(llama4_attention, "ROW_BLOCK", 16)
    logits, decoded, _ = run(model, ids, kv_cache, segment)
    atol = EXACT_ATOL if kv_cache == "bf16" else INT8_ATOL
    torch.testing.assert_close(logits, stock[0], rtol=0, atol=atol)
    torch.testing.assert_close(decoded, stock[1], rtol=0, atol=atol)
    if kv_cache == "int8":  # an error, but one that shows: the codes are not the floats
        assert not torch.equal(logits, stock[0])


def test_reserved_global_layers_are_written_in_place(model, ids) -> None:
    import torch

    text_config = model.config.get_text_config()
    model.set_attn_implementation({"text_config": llama4_attention.register()})
    for kv_cache in ("bf16", "int8"):
        cache = new_cache(text_config, kv_cache)
        reserve(cache, len(ids) + 20)
        globals_ = [
            cache.layers[i] for i, k in enumerate(text_config.layer_types) if k == "full_attention"
        ]
        with torch.inference_mode():
            prefill(model, cache, ids, 0, 40, segment_tokens=40)
            pointers = [layer.keys.data_ptr() for layer in globals_]
            held = held_bytes(cache)
            prefill(model, cache, ids, 40, len(ids), segment_tokens=37)
        assert [layer.keys.data_ptr() for layer in globals_] == pointers  # never reallocated
        assert all(layer.get_seq_length() == len(ids) for layer in globals_)
        # The chunked layers keep their window (they grow from 40 tokens to 63), nothing else.
        chunked = 3 * 2 * 2 * 16 * 4 * (63 - 40)
        assert held_bytes(cache) - held == chunked
        want = kv_bytes_per_token(text_config.to_dict(), 4, kv_cache=kv_cache)
        assert globals_[0].buffers()[0].element_size() == (1 if kv_cache == "int8" else 4)
        assert sum(b.numel() * b.element_size() for b in globals_[0].buffers()) == want * (
            len(ids) + 20
        )


def test_a_layer_that_outgrows_its_room_keeps_every_token(model, ids) -> None:
    import torch

    model.set_attn_implementation({"text_config": llama4_attention.register()})
    text_config = model.config.get_text_config()
    small = new_cache(text_config, "int8")
    reserve(small, 10)  # far less than the prompt: the layer grows as it goes
    big = new_cache(text_config, "int8")
    reserve(big, len(ids))
    with torch.inference_mode():
        one = prefill(model, small, ids, 0, len(ids), segment_tokens=37)
        two = prefill(model, big, ids, 0, len(ids), segment_tokens=37)
    assert torch.equal(one, two)
    layer = small.layers[text_config.layer_types.index("full_attention")]
    assert layer.get_seq_length() == len(ids) and layer.buffers()[0].shape[-2] >= len(ids)


def test_int8_rows_unpack_within_half_a_step() -> None:
    import torch

    rows = torch.randn(2, 3, 50, 64) * torch.logspace(-3, 3, 50).view(1, 1, 50, 1)
    rows[0, 0, 0] = 0.0  # an all-zero row stays zero
    packed = pack_int8(rows)
    assert packed.dtype == torch.int8 and packed.shape == (2, 3, 50, 66)
    back = unpack_int8(packed, torch.float32)
    step = rows.abs().amax(dim=-1, keepdim=True) / 127
    assert torch.all((back - rows).abs() <= step * 0.5 * 1.01 + 1e-12)
    assert torch.equal(back[0, 0, 0], torch.zeros(64))


def test_unknown_kv_cache_is_refused_in_settings_and_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kv_cache"):
        Settings(kv_cache="fp4")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="KV cache"):
        LocalLlama4Engine(tmp_path, kv_cache="fp4")


@pytest.mark.slow
def test_int8_engine_answers_and_reuses_its_cache_across_turns(tiny_model: Path, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    engine = LocalLlama4Engine(
        folder, quantization="bf16", device="cpu", segment_tokens=40, kv_cache="int8"
    )
    engine.load(lambda _p: None, CancelToken())
    engine.loaded.model.float()  # type: ignore[union-attr]

    def ask(turns: tuple[ChatTurn, ...]) -> str:
        chunks: list[str] = []
        request = GenerationRequest(turns, max_new_tokens=12, temperature=0.0)
        run_to_end(engine.generate(request, CancelToken()), chunks.append)
        return "".join(chunks)

    try:
        first = (ChatTurn(Role.USER, "Name the planets in order from the sun. " * 10),)
        answer = ask(first)
        follow = (*first, ChatTurn(Role.ASSISTANT, answer), ChatTurn(Role.USER, "And moons?"))
        ask(follow)
        reused = list(engine.last_token_ids)
        assert engine.last_prefill_tokens < 60  # the kept int8 prefix was reused
        engine._prefix.clear()
        ask(follow)
        assert engine.last_token_ids == reused  # cropped and extended = read from scratch
    finally:
        engine.unload()
