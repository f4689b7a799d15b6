"""The tiny Llama 4 folder has Scout's structure: layers, special tokens, template, processor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.inference.tiny import PAD_TOKEN, SPECIAL_TOKENS, special_token_ids, tiny_config

pytestmark = pytest.mark.slow


def test_folder_has_every_file_a_scout_folder_has(tiny_model: Path) -> None:
    names = {p.name for p in tiny_model.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "chat_template.jinja",
        "model.safetensors.index.json",
    } <= names
    index = json.loads((tiny_model / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1
    assert all((tiny_model / s).is_file() for s in shards)
    assert not list(tiny_model.glob("*.bin"))


def test_config_has_scouts_layer_pattern(tiny_model: Path) -> None:
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["model_type"] == "llama4"
    text = config["text_config"]
    assert text["layer_types"] == ["chunked_attention"] * 3 + ["full_attention"]
    assert text["no_rope_layers"] == [1, 1, 1, 0]  # the global layer is NoPE
    assert text["moe_layers"] == [0, 1, 2, 3]
    assert text["num_experts_per_tok"] == 1
    # bitsandbytes' CPU 4-bit linears need in_features % 64 == 0.
    assert text["hidden_size"] % 64 == 0 and text["intermediate_size"] % 64 == 0
    assert config["image_token_index"] == special_token_ids()["<|patch|>"]


def test_generation_config_is_scouts(tiny_model: Path) -> None:
    gen = json.loads((tiny_model / "generation_config.json").read_text())
    ids = special_token_ids()
    assert gen["do_sample"] is True and gen["temperature"] == 0.6 and gen["top_p"] == 0.9
    assert gen["eos_token_id"] == [ids["<|end_of_text|>"], ids["<|eom|>"], ids["<|eot|>"]]


def test_special_tokens_keep_metas_order_and_are_single_tokens(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    ids = special_token_ids()
    # Same offsets as Scout (200000 + offset): eot 200008, image 200090, patch 200092.
    base = ids["<|begin_of_text|>"]
    assert ids["<|eot|>"] - base == 8
    assert ids["<|image|>"] - base == 90
    assert ids["<|patch|>"] - base == 92
    assert ids[PAD_TOKEN] - base == len(SPECIAL_TOKENS)
    for token in ("<|header_start|>", "<|tile_x_separator|>", "<|tile_y_separator|>", PAD_TOKEN):
        encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert encoded == [ids[token]]
    assert tokenizer("hi")["input_ids"][0] == base  # encoding adds <|begin_of_text|>, as Scout's
    text = "The quick brown fox, 12 apples!"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_renders_llama4_turns(tiny_model: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model, local_files_only=True)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|begin_of_text|><|header_start|>user<|header_end|>\n\n<|image|>What?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nA cat.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nSure?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n"
    )


def test_tiny_config_overrides() -> None:
    config = tiny_config(num_local_experts=16, vision={"num_hidden_layers": 1})
    assert config.text_config.num_local_experts == 16
    assert config.vision_config.num_hidden_layers == 1
