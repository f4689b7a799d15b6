"""Catches a broken transformers release: one real Llama 4 forward and generate, text and image.

transformers 5.24.0 crashed in every Llama 4 forward; pyproject pins below it. Before widening that
pin, this test must pass on the new release.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def test_forward_and_generate_with_an_image(tiny_model: Path) -> None:
    import torch
    from transformers import AutoProcessor, Llama4ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model, local_files_only=True)
    model = Llama4ForConditionalGeneration.from_pretrained(
        tiny_model,
        local_files_only=True,
        use_safetensors=True,
        dtype=torch.bfloat16,
        attn_implementation="sdpa",
    ).eval()
    # The vision RoPE table must stay complex fp32 (casting the module would round it).
    rope = model.vision_model.rotary_embedding
    assert torch.equal(rope.freqs_ci, rope._compute_freqs_ci(model.config.vision_config))

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    image = Image.new("RGB", (120, 80), (200, 30, 30))
    inputs = processor(text=text, images=[image], add_special_tokens=False, return_tensors="pt")
    ids = inputs["input_ids"]
    patch_id = processor.tokenizer.convert_tokens_to_ids("<|patch|>")
    assert model.config.image_token_id == patch_id  # the model fills <|patch|>, not <|image|>
    tiles = inputs["pixel_values"].shape[0]
    assert tiles == 7  # 2 × 3 tiles + the global tile
    assert int((ids == patch_id).sum()) == tiles * 4  # 4 tokens per 56-px tile

    pixel_values = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        out = model(input_ids=ids, pixel_values=pixel_values)
        assert out.logits.shape == (1, ids.shape[1], model.config.text_config.vocab_size)
        assert out.image_hidden_states is not None
        assert torch.isfinite(out.logits.float()).all()
        generated = model.generate(
            input_ids=ids,
            attention_mask=inputs["attention_mask"],
            pixel_values=pixel_values,
            max_new_tokens=4,
            do_sample=False,
        )
    assert generated.shape == (1, ids.shape[1] + 4)
    assert torch.equal(generated[0, : ids.shape[1]], ids[0])
    # Greedy's first token is the forward's argmax.
    assert int(generated[0, ids.shape[1]]) == int(out.logits[0, -1].float().argmax())


def test_text_only_generate(tiny_model: Path) -> None:
    import torch
    from transformers import AutoProcessor, Llama4ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model, local_files_only=True)
    model = Llama4ForConditionalGeneration.from_pretrained(
        tiny_model, local_files_only=True, dtype=torch.bfloat16, attn_implementation="sdpa"
    ).eval()
    ids = processor.tokenizer("Hello there, how are you?", return_tensors="pt")["input_ids"]
    # Longer than a 64-token attention chunk: the chunked layers' cache must roll over.
    with torch.inference_mode():
        out = model.generate(input_ids=ids, max_new_tokens=80, min_new_tokens=80, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 80)
