"""NF4 and int8 through bitsandbytes' CPU backend on the tiny Llama 4, via the engine's loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import CancelToken, GenerationRequest, run_to_end
from app.inference.local_engine import LocalLlama4Engine

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_quantized_load_keeps_the_router_in_bf16_and_generates(
    tiny_model: Path, quantization: str
) -> None:
    import bitsandbytes as bnb
    import torch

    engine = LocalLlama4Engine(tiny_model, quantization=quantization, device="cpu")
    engine.load(lambda _p: None, CancelToken())
    try:
        model = engine.loaded.model  # type: ignore[union-attr]
        layer = model.language_model.model.layers[0]
        quantized = bnb.nn.Linear4bit if quantization == "nf4" else bnb.nn.Linear8bitLt
        for linear in (
            layer.self_attn.q_proj,
            layer.self_attn.o_proj,
            layer.feed_forward.shared_expert.down_proj,
        ):
            assert isinstance(linear, quantized)
        if quantization == "nf4":
            weight = layer.self_attn.q_proj.weight
            assert weight.quant_state.quant_type == "nf4" and weight.quant_state.nested
        router = layer.feed_forward.router
        assert not isinstance(router, bnb.nn.Linear4bit | bnb.nn.Linear8bitLt)
        assert router.weight.dtype == torch.bfloat16
        assert not isinstance(model.language_model.lm_head, quantized)
        assert not isinstance(model.vision_model.model.layers[0].mlp.fc1, quantized)
        # Fused experts are 3-D parameters bitsandbytes cannot convert (why prepare-model exists).
        assert layer.feed_forward.experts.gate_up_proj.dtype == torch.bfloat16

        request = GenerationRequest(
            (ChatTurn(Role.USER, "Hello"),), max_new_tokens=3, temperature=0.0
        )
        result = run_to_end(engine.generate(request, CancelToken()), lambda _c: None)
        assert result.stop_reason in (StopReason.LENGTH, StopReason.EOS)
        assert 1 <= result.timings.completion_tokens <= 3
        assert engine.status().name.endswith(quantization.upper())
    finally:
        engine.unload()
