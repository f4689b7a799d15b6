"""Weight memory of a Llama 4 folder from config.json alone: what the loader will really allocate.

No torch, no weights. The count follows transformers 5.23's `modeling_llama4.py` module by
module, and the quantized sizes follow what bitsandbytes stores per weight: NF4 packs two weights
a byte plus one absmax per 64-weight block (fp32, or uint8 + a second-level fp32 per 256 blocks
with double quant); int8 stores a byte a weight plus one fp32 scale per output row. bitsandbytes
replaces only modules whose type *is* `nn.Linear`, so fused expert tensors (`Llama4TextExperts`,
3-D parameters) stay bf16 when an official folder is quantized on the fly — the reason
prepare-model exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.inference.model_json import one_line

BF16_BYTES = 2
NF4_BLOCK = 64  # bitsandbytes' default 4-bit block size (Params4bit.blocksize)
NESTED_BLOCK = 256  # double quant: absmax values are themselves quantized in blocks of 256
GIB = 1024**3
GB = 1000**3
#: Modules Scout Desk keeps in bf16 when it quantizes (`llm_int8_skip_modules`), on the fly and in
#: prepare-model output alike. The vision tower and projector are ~0.9 B parameters (1.3 GB more
#: than NF4) and its patch embedding has 588 inputs, which bitsandbytes' CPU 4-bit kernels reject
#: (they need in_features % 64 == 0); lm_head is bitsandbytes' own default; the router must stay
#: exact (transformers PR #44588); it is named in case a release stops skipping Linear subclasses.
KEEP_BF16_MODULES: tuple[str, ...] = ("vision_model", "multi_modal_projector", "lm_head", "router")


@dataclass(frozen=True)
class WeightGroup:
    """`count` weights of one shape living in modules named like `module`.

    Attributes:
        component: a label for reports ("experts", "attention", "vision", ...).
        module: a representative module path (as in the checkpoint), for skip-pattern matching.
        rows: output features (an nn.Linear's out_features; 1 for vectors).
        cols: input features.
        count: how many such tensors.
        linear: True when the module is exactly `nn.Linear` (bitsandbytes may quantize it).
        fused_experts: True for Llama4TextExperts' 3-D tensors (never quantized on the fly).
    """

    component: str
    module: str
    rows: int
    cols: int
    count: int = 1
    linear: bool = False
    fused_experts: bool = False

    @property
    def params(self) -> int:
        return self.rows * self.cols * self.count


@dataclass(frozen=True)
class WeightEstimate:
    """The estimate and where it comes from.

    Attributes:
        total_params: every parameter in the model.
        weight_bytes: bytes the loaded weights take on the device.
        params_by_component: parameter count per component label.
        bytes_by_component: bytes per component label, as loaded.
        quantized_params: parameters the loader stores in 4 or 8 bits.
        mode: how the loader treats the folder ("nf4 on the fly", "pre-quantized nf4", ...).
    """

    total_params: int
    weight_bytes: int
    params_by_component: dict[str, int] = field(default_factory=dict)
    bytes_by_component: dict[str, int] = field(default_factory=dict)
    quantized_params: int = 0
    mode: str = ""


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The text part of a Llama 4 config (the top level for a text-only `llama4_text` config)."""
    nested = config.get("text_config")
    return nested if isinstance(nested, Mapping) else config


def weight_groups(config: Mapping[str, Any]) -> list[WeightGroup]:
    """List every parameter tensor shape of `Llama4ForConditionalGeneration` for `config`.

    Args:
        config: config.json as a dict (keys missing from it take transformers' defaults).

    Returns:
        The groups, text model first, then the vision tower and projector when present.

    Raises:
        ValueError: a size is missing, not a positive integer, or inconsistent.
    """
    text = text_config(config)
    h = _int(text, "hidden_size", 5120)
    heads = _int(text, "num_attention_heads", 40)
    kv_heads = _int(text, "num_key_value_heads", 8)
    head_dim = _int(text, "head_dim", h // heads)
    inter = _int(text, "intermediate_size", 8192)
    inter_mlp = _int(text, "intermediate_size_mlp", 16384)
    layers = _int(text, "num_hidden_layers", 48)
    experts = _int(text, "num_local_experts", 16)
    vocab = _int(text, "vocab_size", 202048)
    moe = set(moe_layers(text))
    n_moe, n_dense = len(moe), layers - len(moe)
    lm = "language_model.model.layers.0"
    groups = [
        WeightGroup("embeddings", "language_model.model.embed_tokens", vocab, h),
        WeightGroup("attention", f"{lm}.self_attn.q_proj", heads * head_dim, h, layers, True),
        WeightGroup("attention", f"{lm}.self_attn.k_proj", kv_heads * head_dim, h, layers, True),
        WeightGroup("attention", f"{lm}.self_attn.v_proj", kv_heads * head_dim, h, layers, True),
        WeightGroup("attention", f"{lm}.self_attn.o_proj", h, heads * head_dim, layers, True),
        WeightGroup("norms", f"{lm}.input_layernorm", 1, h, 2 * layers + 1),
        WeightGroup("lm_head", "language_model.lm_head", vocab, h, 1, True),
    ]
    if n_moe:
        ffn = f"{lm}.feed_forward"
        groups += [
            # gate_up_proj [E, h, 2*inter] + down_proj [E, inter, h] = 3 matrices per expert.
            WeightGroup(
                "experts", f"{ffn}.experts.0.gate_proj", inter, h, 2 * experts * n_moe, True, True
            ),
            WeightGroup(
                "experts", f"{ffn}.experts.0.down_proj", h, inter, experts * n_moe, True, True
            ),
            WeightGroup(
                "shared_expert", f"{ffn}.shared_expert.gate_proj", inter, h, 2 * n_moe, True
            ),
            WeightGroup("shared_expert", f"{ffn}.shared_expert.down_proj", h, inter, n_moe, True),
            # Llama4Router subclasses nn.Linear, so bitsandbytes (type(m) is nn.Linear) skips it.
            WeightGroup("router", f"{ffn}.router", experts, h, n_moe),
        ]
    if n_dense:
        ffn = f"{lm}.feed_forward"
        groups += [
            WeightGroup("dense_mlp", f"{ffn}.gate_proj", inter_mlp, h, 2 * n_dense, True),
            WeightGroup("dense_mlp", f"{ffn}.down_proj", h, inter_mlp, n_dense, True),
        ]
    vision = config.get("vision_config")
    if isinstance(vision, Mapping):
        groups += _vision_groups(vision, h)
    return groups


def _vision_groups(vision: Mapping[str, Any], text_hidden: int) -> list[WeightGroup]:
    vh = _int(vision, "hidden_size", 768)
    vi = _int(vision, "intermediate_size", 5632)
    vl = _int(vision, "num_hidden_layers", 34)
    patch = _int(vision, "patch_size", 14)
    image = _int(vision, "image_size", 448)
    channels = _int(vision, "num_channels", 3)
    proj_in = _int(vision, "projector_input_dim", 4096)
    proj_out = _int(vision, "projector_output_dim", 4096)
    out_dim = _int(vision, "vision_output_dim", 7680)
    patches = (image // patch) ** 2 + 1  # + the class token
    v = "vision_model.model.layers.0"
    return [
        WeightGroup(
            "vision", "vision_model.patch_embedding.linear", vh, channels * patch**2, 1, True
        ),
        WeightGroup("vision", "vision_model.class_embedding", 1, vh),
        WeightGroup("vision", "vision_model.positional_embedding_vlm", patches, vh),
        WeightGroup("vision", "vision_model.layernorm_pre", 1, vh, 4),  # pre + post, weight + bias
        WeightGroup("vision", f"{v}.self_attn.q_proj", vh, vh, 4 * vl, True),
        WeightGroup("vision", f"{v}.self_attn.q_proj.bias", 1, vh, 4 * vl),
        WeightGroup("vision", f"{v}.mlp.fc1", vi, vh, vl, True),
        WeightGroup("vision", f"{v}.mlp.fc2", vh, vi, vl, True),
        WeightGroup("vision", f"{v}.mlp.fc1.bias", 1, vi + vh, vl),
        WeightGroup("vision", f"{v}.input_layernorm", 1, vh, 4 * vl),
        WeightGroup("vision", "vision_model.vision_adapter.mlp.fc1", proj_in, vi, 1, True),
        WeightGroup("vision", "vision_model.vision_adapter.mlp.fc2", proj_out, proj_out, 1, True),
        WeightGroup("projector", "multi_modal_projector.linear_1", text_hidden, out_dim, 1, True),
    ]


def moe_layers(text: Mapping[str, Any]) -> list[int]:
    """Indices of the MoE layers, as `Llama4TextConfig.__post_init__` derives them."""
    layers = _int(text, "num_hidden_layers", 48)
    explicit = text.get("moe_layers")
    if isinstance(explicit, list) and all(isinstance(i, int) for i in explicit):
        return [i for i in explicit if 0 <= i < layers]
    step = _int(text, "interleave_moe_layer_step", 1)
    return list(range(step - 1, layers, step))


def is_skipped(module: str, patterns: Iterable[str] | None) -> bool:
    """Whether bitsandbytes leaves `module` alone, matching like transformers'
    `should_convert_module`: a prefix up to a module boundary, a regex with that boundary, or a
    suffix."""
    if not patterns:
        return False
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    for key in patterns:
        try:
            if re.match(rf"(?:{key}){boundary}", module):
                return True
        except re.error:
            pass
        if module.endswith(key):
            return True
    return False


def estimate_weights(
    config: Mapping[str, Any],
    quantization: str,
    *,
    fused_experts: bool,
    skip_modules: Iterable[str] | None = None,
    double_quant: bool = True,
) -> WeightEstimate:
    """Estimate the bytes the loaded weights occupy.

    Args:
        config: config.json as a dict.
        quantization: "nf4", "fp4", "int8" or "bf16" — what the loader will apply.
        fused_experts: True when the checkpoint keeps each layer's experts as fused 3-D tensors
            (the official bf16 layout); bitsandbytes then leaves them in bf16.
        skip_modules: bitsandbytes' `llm_int8_skip_modules`; None means its default (lm_head).
        double_quant: NF4 with `bnb_4bit_use_double_quant`.

    Returns:
        The estimate with a per-component breakdown.

    Raises:
        ValueError: the config's sizes are missing or not positive integers.
    """
    patterns = list(skip_modules) if skip_modules is not None else ["lm_head"]
    params: dict[str, int] = {}
    sizes: dict[str, int] = {}
    quantized = 0
    for group in weight_groups(config):
        quantize = (
            quantization != "bf16"
            and group.linear
            and not (group.fused_experts and fused_experts)
            and not is_skipped(group.module, patterns)
        )
        size = group.params * BF16_BYTES
        if quantize:
            size = group.count * _quantized_bytes(
                group.rows, group.cols, quantization, double_quant
            )
            quantized += group.params
        params[group.component] = params.get(group.component, 0) + group.params
        sizes[group.component] = sizes.get(group.component, 0) + size
    mode = (
        quantization
        if quantization == "bf16"
        else (f"{quantization} on the fly" if fused_experts else f"pre-quantized {quantization}")
    )
    return WeightEstimate(
        total_params=sum(params.values()),
        weight_bytes=sum(sizes.values()),
        params_by_component=params,
        bytes_by_component=sizes,
        quantized_params=quantized,
        mode=mode,
    )


def _quantized_bytes(rows: int, cols: int, quantization: str, double_quant: bool) -> int:
    n = rows * cols
    if quantization == "int8":
        return n + 4 * rows  # int8 weights + one fp32 scale (SCB) per output row
    blocks = math.ceil(n / NF4_BLOCK)
    if double_quant:
        # uint8 absmax per block, fp32 absmax + offset per 256 blocks, a 256-entry fp32 code.
        stats = blocks + 4 * math.ceil(blocks / NESTED_BLOCK) + 4 + 256 * 4
    else:
        stats = 4 * blocks
    return math.ceil(n / 2) + stats + 16 * 4  # + the 16-value quant map


def working_margin_bytes(config: Mapping[str, Any], tokens: int = 4096) -> int:
    """Memory beyond the weights that a short conversation needs on the GPU.

    KV cache for `tokens` (chunked-attention layers capped at their chunk), the MoE prefill
    activations (measured ~368 KB a prompt token for Scout, scaled by expert width), and ~1.5 GB of
    CUDA context and allocator slack.

    Args:
        config: config.json as a dict.
        tokens: how many tokens of context to budget for.

    Returns:
        The margin in bytes.
    """
    text = text_config(config)
    h = _int(text, "hidden_size", 5120)
    heads = _int(text, "num_attention_heads", 40)
    kv_per_token_layer = (
        2 * _int(text, "num_key_value_heads", 8) * _int(text, "head_dim", h // heads) * BF16_BYTES
    )
    chunk = (
        _int(text, "attention_chunk_size", tokens) if text.get("attention_chunk_size") else tokens
    )
    layer_types = text.get("layer_types")
    if not layer_types:
        layer_types = _layer_types(text)
    elif not (isinstance(layer_types, list) and all(isinstance(k, str) for k in layer_types)):
        raise ValueError(
            f"config.json: layer_types must be a list of layer kinds, not {_shown(layer_types)}"
        )
    kv = sum(
        kv_per_token_layer * (min(tokens, chunk) if kind == "chunked_attention" else tokens)
        for kind in layer_types
    )
    width = _int(text, "num_local_experts", 16) * (h + _int(text, "intermediate_size", 8192))
    activations = int(368_000 * width / (16 * (5120 + 8192))) * tokens
    return kv + activations + 1_500_000_000


def _layer_types(text: Mapping[str, Any]) -> list[str]:
    layers = _int(text, "num_hidden_layers", 48)
    no_rope = text.get("no_rope_layers")
    if not isinstance(no_rope, list) or len(no_rope) != layers:
        interval = _int(text, "no_rope_layer_interval", 4)
        no_rope = [int((i + 1) % interval != 0) for i in range(layers)]
    return ["chunked_attention" if flag else "full_attention" for flag in no_rope]


def _int(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"config.json: {key} must be a positive integer, not {_shown(value)}")
    return value


def _shown(value: object) -> str:
    """A config value as a message quotes it (a hostile file's value may be megabytes long)."""
    return one_line(repr(value), 60)
