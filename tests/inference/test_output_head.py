"""The optional 8-bit output head (`llama4_head`): what it holds, what it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.messages import ChatTurn, Role
from app.core.settings import Settings
from app.inference.engine import CancelToken, GenerationRequest, ModelError, run_to_end
from app.inference.llama4_head import head_bytes, quantize_output_head
from app.inference.local_engine import LocalLlama4Engine, create_engine
from tests.helpers.tiny_models import float32_sparse_tiny

pytestmark = pytest.mark.slow


def test_the_head_holds_one_byte_a_weight_and_the_logits_move_little() -> None:
    import torch

    model = float32_sparse_tiny()
    model.language_model.lm_head.to(torch.bfloat16)
    hidden = torch.randn(8, model.config.text_config.hidden_size, dtype=torch.bfloat16)
    head = model.language_model.lm_head
    exact = head(hidden).float()
    rows, width = head.weight.shape
    before = head_bytes(model)
    assert before == rows * width * 2

    saved = quantize_output_head(model)
    quantized = model.language_model.lm_head
    assert type(quantized).__name__ == "Linear8bitLt"
    assert quantized.weight.dtype == torch.int8
    assert head_bytes(model) == rows * width + rows * 4  # int8 rows + a float32 scale each
    assert saved == before - head_bytes(model)
    assert quantize_output_head(model) == 0  # already 8-bit
    with torch.inference_mode():
        approx = quantized(hidden).float()
    error = (approx - exact).abs().max() / exact.abs().max()
    assert 0 < error < 0.02  # rounding of 8-bit weights and activations, nothing worse
    agree = (approx.argmax(-1) == exact.argmax(-1)).float().mean()
    assert agree >= 0.75


def test_the_engine_loads_the_8bit_head_from_settings(tiny_model: Path) -> None:
    engine = create_engine(
        Settings(model_dir=str(tiny_model), quantization="bf16", output_head="int8")
    )
    assert isinstance(engine, LocalLlama4Engine) and engine.output_head == "int8"
    engine.device = "cpu"
    engine.load(lambda _p: None, CancelToken())
    try:
        head = engine.loaded.model.language_model.lm_head  # type: ignore[union-attr]
        assert type(head).__name__ == "Linear8bitLt"
        request = GenerationRequest((ChatTurn(Role.USER, "Hi"),), max_new_tokens=6, temperature=0.0)
        result = run_to_end(engine.generate(request, CancelToken()), lambda _c: None)
        assert result.timings.completion_tokens == 6
    finally:
        engine.unload()


def test_an_unknown_head_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="output head"):
        LocalLlama4Engine(tiny_model, output_head="fp8")
    with pytest.raises(ValueError, match="output_head"):
        Settings(output_head="fp8")  # type: ignore[arg-type]
