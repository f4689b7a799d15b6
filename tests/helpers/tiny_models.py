"""The tiny random Llama 4 in memory, as the exactness tests compare it: float32, sparse MoE."""

from __future__ import annotations

from typing import Any


def float32_sparse_tiny(seed: int = 0) -> Any:
    """A `Llama4ForConditionalGeneration` of `tiny_config()` in float32, with the sparse MoE the
    engine runs (no folder, no tokenizer: for forwards on token ids)."""
    import torch
    from transformers import Llama4ForConditionalGeneration

    from app.inference.moe import install_moe
    from app.inference.tiny import tiny_config

    torch.manual_seed(seed)
    config = tiny_config()
    config.dtype = "float32"
    model = Llama4ForConditionalGeneration(config).eval()
    install_moe(model, "sparse")
    return model
