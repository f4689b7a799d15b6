"""A tiny random Llama 4 with Scout's shape, written as a complete model folder in seconds.

Tests, benchmarks and the GPU check load it through the same code path a real Scout folder takes:
config.json with text and vision sub-configs, safetensors shards with an index, a byte-level BPE
tokenizer holding Llama 4's special tokens in Meta's order, the real chat template, the real
`Llama4ImageProcessor` and generation_config.json. Only the sizes shrink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Meta's special tokens in their real order (convert_llama4_weights_to_hf.py). In Scout they start
# at id 200000; here they start right after the small BPE vocabulary, keeping every offset, so
# `<|eot|>` is base + 8 and `<|patch|>` (the token the model fills with image features) base + 92.
_BASIC = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
]
_TEXT_POST_TRAIN = [
    "<|header_start|>",
    "<|header_end|>",
    "<|eom|>",
    "<|eot|>",
    "<|step|>",
    *[f"<|text_post_train_reserved_special_token_{i}|>" for i in range(6)],
    "<|python_start|>",
    "<|python_end|>",
    "<|finetune_right_pad|>",
    *[f"<|text_post_train_reserved_special_token_{i}|>" for i in range(8, 69)],
]
_VISION = [
    "<|image_start|>",
    "<|image_end|>",
    "<|vision_reserved_special_token_0|>",
    "<|vision_reserved_special_token_1|>",
    "<|tile_x_separator|>",
    "<|tile_y_separator|>",
    *[f"<|vision_reserved_special_token_{i}|>" for i in range(2, 6)],
    "<|image|>",
    "<|vision_reserved_special_token_6|>",
    "<|patch|>",
    *[f"<|vision_reserved_special_token_{i}|>" for i in range(7, 1048)],
]
SPECIAL_TOKENS: tuple[str, ...] = (*_BASIC, *_TEXT_POST_TRAIN, *_VISION)
# Scout's tokenizer adds its pad token after the 1,134 specials (id 201134).
PAD_TOKEN = "<|finetune_right_pad_id|>"
# Scout reserves 2,048 ids above its base vocabulary (202048 = 200000 + 2048).
_SPECIAL_SLOTS = 2048
_BASE_VOCAB = 384
_TILE = 56  # pixels per tile (Scout: 336); 56 / 14 = 4 patches a side → 4 tokens per tile
_PATCH = 14

_CORPUS = (
    "The quick brown fox jumps over the lazy dog. What is in this picture? A cat on a red mat.",
    "Describe the image in detail. There are two people, a tree, a blue car and a small house.",
    "Llama 4 Scout answers questions about images, documents and code on one GPU.",
    "Hello! How can I help you today? Please count the apples: one, two, three, four, five.",
    "def main():\n    print('hello world')\n    return 0\n",
)


def tiny_config(**overrides: Any) -> Any:
    """Return a `Llama4Config` with Scout's layer pattern at toy sizes.

    Four text layers: three chunked-attention RoPE layers and one global NoPE layer (Scout repeats
    that pattern twelve times), every layer MoE with a shared expert and top-1 routing. Widths are
    multiples of 64 because bitsandbytes' CPU 4-bit linears need in_features % 64 == 0.

    Args:
        overrides: text-config fields to change (e.g. `num_local_experts=16`), or `vision=dict(...)`
            for vision-config fields, or `top=dict(...)` for the outer config.

    Returns:
        A `transformers.Llama4Config`.
    """
    from transformers import Llama4Config, Llama4TextConfig, Llama4VisionConfig

    vision_overrides = overrides.pop("vision", {})
    top_overrides = overrides.pop("top", {})
    ids = special_token_ids()
    # Keyword arguments of transformers' config classes, each field its own type.
    text: dict[str, Any] = {
        "vocab_size": _BASE_VOCAB + _SPECIAL_SLOTS,
        "hidden_size": 64,
        "intermediate_size": 128,  # each routed expert
        "intermediate_size_mlp": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_local_experts": 4,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "no_rope_layer_interval": 4,  # every 4th layer global without RoPE, as in Scout
        "attention_chunk_size": 64,  # Scout: 8192; small so tests cross a chunk boundary
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 16.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024,
        },
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": _eos_ids(ids),
        "pad_token_id": ids[PAD_TOKEN],
        "tie_word_embeddings": False,
    }
    text.update(overrides)
    vision: dict[str, Any] = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,  # = hidden / pixel_shuffle_ratio², as in Scout (1408 → 5632)
        "image_size": _TILE,
        "patch_size": _PATCH,
        "pixel_shuffle_ratio": 0.5,
        "projector_input_dim": 128,
        "projector_output_dim": 128,
        "vision_output_dim": 128,  # must equal projector_output_dim
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    }
    vision.update(vision_overrides)
    top: dict[str, Any] = {
        "boi_token_index": ids["<|image_start|>"],
        "eoi_token_index": ids["<|image_end|>"],
        "image_token_index": ids["<|patch|>"],
        "tie_word_embeddings": False,
    }
    top.update(top_overrides)
    config = Llama4Config(
        text_config=Llama4TextConfig(**text), vision_config=Llama4VisionConfig(**vision), **top
    )
    config.dtype = "bfloat16"
    return config


def special_token_ids() -> dict[str, int]:
    """Return the tiny tokenizer's id for each Llama 4 special token (and the pad token)."""
    ids = {token: _BASE_VOCAB + offset for offset, token in enumerate(SPECIAL_TOKENS)}
    ids[PAD_TOKEN] = _BASE_VOCAB + len(SPECIAL_TOKENS)
    return ids


def build_tiny_llama4(
    dest: Path,
    *,
    seed: int = 0,
    per_expert: bool = False,
    text_overrides: dict[str, Any] | None = None,
) -> Path:
    """Write a complete tiny Llama 4 model folder (random weights) and return its path.

    Args:
        dest: the folder to write (created; files in it are overwritten).
        seed: seeds the random weights, so two folders built with one seed are identical.
        per_expert: not supported here: per-expert folders come from `scout-desk prepare-model`.
        text_overrides: text-config fields passed to `tiny_config` (e.g. vLLM's CPU attention
            needs `head_dim=64` and an `attention_chunk_size` that is a multiple of 128).

    Returns:
        `dest`.
    """
    if per_expert:
        raise NotImplementedError(
            "per-expert folders come from prepare-model, not build_tiny_llama4"
        )
    import torch
    from transformers import GenerationConfig, Llama4ForConditionalGeneration

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = tiny_config(**dict(text_overrides or {}))
    torch.manual_seed(seed)
    model = Llama4ForConditionalGeneration(config)
    # Cast parameters only: `model.to(bfloat16)` would also round the vision RoPE buffer.
    with torch.no_grad():
        for param in model.parameters():
            param.data = param.data.to(torch.bfloat16)
    # Small shards, so the folder has an index and several files, like Scout's 50.
    model.save_pretrained(dest, safe_serialization=True, max_shard_size="1MB")
    ids = special_token_ids()
    GenerationConfig(
        do_sample=True,
        temperature=0.6,
        top_p=0.9,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=_eos_ids(ids),
        pad_token_id=ids["<|finetune_right_pad|>"],
    ).save_pretrained(dest)
    build_tiny_processor().save_pretrained(dest)
    return dest


def build_tiny_processor() -> Any:
    """Return a `Llama4Processor`: the tiny tokenizer, Meta's chat template, small image tiles."""
    from transformers import Llama4ImageProcessor, Llama4Processor
    from transformers.models.llama4 import processing_llama4

    # transformers ships Meta's instruct chat template (identical to the one its conversion script
    # writes into Scout's tokenizer_config) as the processor default; we save it explicitly.
    template = processing_llama4.chat_template
    tokenizer = build_tiny_tokenizer(template)
    image_processor = Llama4ImageProcessor(
        size={"height": _TILE, "width": _TILE}, max_patches=16, resize_to_max_canvas=False
    )
    return Llama4Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=_PATCH,
        pixel_shuffle_ratio=0.5,
        chat_template=template,
    )


def build_tiny_tokenizer(chat_template: str) -> Any:
    """Return a byte-level BPE `PreTrainedTokenizerFast` with Llama 4's special tokens.

    Args:
        chat_template: the Jinja chat template to store with it.

    Returns:
        A tokenizer that adds `<|begin_of_text|>` when encoding plain text, as Scout's does.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BASE_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    # Fill the base vocabulary to exactly _BASE_VOCAB so the special ids land where we promise.
    filler = [f"<|tiny_filler_{i}|>" for i in range(_BASE_VOCAB - tok.get_vocab_size())]
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in filler])
    specials = [*SPECIAL_TOKENS, PAD_TOKEN]
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False)
            for t in specials
        ]
    )
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, tok.token_to_id(bos))],
            ),
        ]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token="<|eot|>",
        pad_token=PAD_TOKEN,
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=4096,
        chat_template=chat_template,
    )
    wrapped.padding_side = "left"
    return wrapped


def _eos_ids(ids: dict[str, int]) -> list[int]:
    """Scout's three stop tokens: end_of_text, eom, eot."""
    return [ids["<|end_of_text|>"], ids["<|eom|>"], ids["<|eot|>"]]
