"""The engine's own decode loop: the same greedy tokens as `generate`, one host read a token."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import CancelToken, GenerationRequest, run_to_end
from app.inference.llama4_decode import choose_token, decode_supported
from app.inference.llama4_generate import sampling_config
from app.inference.llama4_prompt import build_prompt
from app.inference.local_engine import LocalLlama4Engine

pytestmark = pytest.mark.slow

TURNS = (ChatTurn(Role.USER, "List the colours of the rainbow, then count to ten. " * 6),)
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def engine(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("decode") / "model"
    shutil.copytree(tiny_model, folder)
    engine = LocalLlama4Engine(folder, quantization="bf16", device="cpu", segment_tokens=50)
    engine.load(lambda _p: None, CancelToken())
    engine.loaded.model.float()  # type: ignore[union-attr]
    yield engine
    engine.unload()


def ask(engine: LocalLlama4Engine, **kw: Any) -> Any:
    request = GenerationRequest(TURNS, max_new_tokens=NEW_TOKENS, temperature=0.0, **kw)
    engine._prefix.clear()
    return run_to_end(engine.generate(request, CancelToken()), lambda _chunk: None)


def stock_greedy(engine: LocalLlama4Engine) -> list[int]:
    """transformers as it comes: stock attention, stock MoE, `generate` from a fresh cache."""
    import torch

    from app.inference.moe import install_moe

    model = engine.loaded.model  # type: ignore[union-attr]
    ids = build_prompt(engine.loaded.processor, TURNS, torch.float32).ids  # type: ignore[union-attr]
    model.set_attn_implementation({"text_config": "sdpa"})
    install_moe(model, "stock")
    try:
        with torch.inference_mode():
            full = torch.tensor([ids])
            out = model.generate(
                input_ids=full, attention_mask=torch.ones_like(full),
                max_new_tokens=NEW_TOKENS, do_sample=False,
            )  # fmt: skip
    finally:
        from app.inference.llama4_attention import register

        model.set_attn_implementation({"text_config": register()})
        install_moe(model, "sparse")
    return out[0, len(ids) :].tolist()


def test_greedy_tokens_equal_stock_generate(engine) -> None:
    result = ask(engine)
    assert result.stop_reason is StopReason.LENGTH
    assert len(engine.last_token_ids) == NEW_TOKENS
    assert engine.last_token_ids == stock_greedy(engine)


def test_one_host_read_a_token_and_no_generate(engine, monkeypatch) -> None:
    from app.inference import llama4_decode
    from tests.helpers.host_reads import HostReads

    model = engine.loaded.model

    def no_generate(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("generate was called")

    monkeypatch.setattr(model, "generate", no_generate)
    real = llama4_decode.decode
    counted: list[int] = []

    def decode_counted(*args: Any, **kwargs: Any) -> list[int]:
        with HostReads() as reads:  # experts chosen on the device, as on a GPU
            new = real(*args, device_experts=True, **kwargs)
        counted.append(reads.count)
        return new

    monkeypatch.setattr(llama4_decode, "decode", decode_counted)
    ask(engine)
    # The token itself, read once to stream it and check for the end: nothing else (the fused
    # experts are chosen on the device, the masks and positions come from the cache).
    assert counted == [NEW_TOKENS]


def test_a_config_the_loop_cannot_honour_goes_to_generate(engine) -> None:
    config = sampling_config(engine.loaded.model.generation_config, 8, 0.0, None)
    assert decode_supported(config)
    config.repetition_penalty = 1.3
    assert not decode_supported(config)


def test_sampling_keeps_to_top_k_and_top_p() -> None:
    import torch

    logits = torch.tensor([0.0, 5.0, 4.9, -3.0, 1.0])
    greedy = sampling_config(_Config(), 4, 0.0, None)
    assert int(choose_token(logits, greedy)) == 1
    torch.manual_seed(0)
    config = sampling_config(_Config(), 4, 1.0, 1.0)
    config.top_k = 2
    assert {int(choose_token(logits, config)) for _ in range(200)} == {1, 2}
    config.top_k, config.top_p = 0, 0.5  # token 1 alone holds more than half the mass
    assert {int(choose_token(logits, config)) for _ in range(50)} == {1}


class _Config:
    """A generation config with transformers' defaults (what `sampling_config` copies)."""

    def __init__(self) -> None:
        from transformers import GenerationConfig

        self.__dict__.update(GenerationConfig().__dict__)
