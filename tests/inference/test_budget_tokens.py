"""Token budget: image tokens match the real processor, KV sizes match issue 3's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.inference.budget import (
    ImageTiling,
    check_budget,
    context_capacity,
    image_tokens,
    kv_cache_bytes,
)
from app.inference.engine import BadInputError

SCOUT_TEXT = {
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_size": 5120,
    "intermediate_size": 8192,
    "num_local_experts": 16,
    "attention_chunk_size": 8192,
    "max_position_embeddings": 10485760,
}


def test_scout_image_tokens_match_issue_figures() -> None:
    assert image_tokens(336, 336) == 147
    assert image_tokens(1920, 1080) == 2322
    assert image_tokens(1080, 1920) == 2322


def test_global_layers_grow_48_kib_per_token_and_chunked_layers_stop_at_a_chunk() -> None:
    step = kv_cache_bytes(SCOUT_TEXT, 20_001) - kv_cache_bytes(SCOUT_TEXT, 20_000)
    assert step == 48 * 1024  # only the 12 global layers grow past the 8192-token chunk
    small = kv_cache_bytes(SCOUT_TEXT, 1001) - kv_cache_bytes(SCOUT_TEXT, 1000)
    assert small == 48 * 4096  # below a chunk, all 48 layers grow


def test_capacity_grows_with_memory_and_never_with_the_prefill() -> None:
    few = context_capacity(SCOUT_TEXT, 10 * 10**9, 1000)
    more = context_capacity(SCOUT_TEXT, 20 * 10**9, 1000)
    assert 0 < few < more
    # (at 20 GB the decode step's rings, not the prefill, are the larger working memory)
    assert context_capacity(SCOUT_TEXT, 20 * 10**9, 30_000) <= more
    assert context_capacity(SCOUT_TEXT, 10**9, 1000) == 0


def test_over_budget_says_by_how_much() -> None:
    check_budget(1000, 24, 1024, "the GPU")
    with pytest.raises(BadInputError, match="1,100 tokens too many"):
        check_budget(2000, 124, 1024, "the GPU's free memory")


@pytest.mark.slow
@pytest.mark.parametrize("size", [(56, 56), (30, 20), (120, 80), (80, 300), (1000, 990), (7, 500)])
def test_tiny_image_tokens_match_the_processor(tiny_model: Path, size: tuple[int, int]) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model, local_files_only=True)
    tiling = ImageTiling.from_processor(processor)
    assert tiling == ImageTiling.from_folder(tiny_model)
    inputs = processor(text="<|image|>", images=[Image.new("RGB", size)], add_special_tokens=False)
    assert image_tokens(*size, tiling) == len(inputs["input_ids"][0])


@pytest.mark.slow
def test_scout_processor_token_count_for_1080p() -> None:
    from PIL import Image
    from transformers import Llama4ImageProcessor, Llama4Processor

    from app.inference.tiny import build_tiny_tokenizer

    processor = Llama4Processor(
        image_processor=Llama4ImageProcessor(), tokenizer=build_tiny_tokenizer("")
    )
    inputs = processor(
        text="<|image|>", images=[Image.new("RGB", (1920, 1080))], add_special_tokens=False
    )
    assert len(inputs["input_ids"][0]) == image_tokens(1920, 1080, ImageTiling()) == 2322
