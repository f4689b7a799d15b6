"""Token budget before sending: what a prompt costs and how much context the device can hold.

Pure arithmetic on config values (no torch), so the composer can show a live meter. Image tokens
follow `Llama4ImageProcessor`'s tiling and `Llama4Processor`'s placeholder layout; memory follows
transformers' cache for Llama 4: chunked-attention layers keep at most one chunk, global layers
grow with the context (in bf16 or packed int8, `llama4_kv`), and the segmented prefill
(`llama4_prefill`) adds one segment's working memory, whose global-layer mask grows with the
context too (`segment_bytes`, with the attention of `llama4_attention`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.inference.engine import BadInputError
from app.inference.llama4_attention import DIRECT_MAX_KEYS, ROW_BLOCK
from app.inference.llama4_kv import SCALE_BYTES
from app.inference.llama4_prefill import DEFAULT_SEGMENT_TOKENS
from app.inference.model_json import (
    ModelJsonError,
    checked_setting,
    is_bool,
    is_fraction,
    is_positive_int,
    json_kind,
    read_model_json,
)

BF16_BYTES = 2
#: Working memory of the segmented prefill per segment token that is not a mask or a key/value
#: copy (hidden states, q/k/v, router and expert buffers of one layer at a time), in bytes of the
#: activation dtype, per unit of `_activation_width`. MEASURED (`bench/prefill.py --measure`):
#: the tiny random Llama 4 (hidden 64, intermediate 128 + 128, in float32), segments of 512 and
#: 2,048 tokens at contexts of 4K-32K, on an x86_64 CPU, 2 cores (torch 2.14.1, transformers
#: 5.23, sdpa attention, sparse MoE): peak resident set above the level before the last segment,
#: minus that segment's KV, minus the mask and repeat terms below, left 2.1-2.5 KB per segment
#: token (the mask and repeat terms matched their formulas to 1 %: 5.0 bytes a mask element in
#: float32 and 510 bytes a context token). 2,250 B / (4 bytes × width 320) ≈ 1.76, rounded up
#: to 2. Scout (width 5,120 + 8,192 + 16,384 = 29,696, bf16): ≈ 119 KB a segment token, 243 MB
#: for a 2,048-token segment.
_ACTIVATION_VALUES_PER_WIDTH = 2
#: A global layer's boolean attention mask is converted by `scaled_dot_product_attention` into
#: the query dtype (its additive form), so one mask element costs 1 byte + that dtype's bytes.
_MASK_BOOL_BYTES = 1
#: Where a model folder keeps its image processor settings (transformers reads both).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# Kept free for the CUDA context, allocator fragmentation and the logits of a step.
RESERVE_BYTES = 1_500_000_000


@dataclass(frozen=True)
class ImageTiling:
    """How Llama 4 cuts an image into tiles and tokens.

    Attributes:
        tile: pixels per square tile (Scout: 336).
        patch: vision patch size in pixels (14).
        downsample: patches merged into one token by pixel shuffle (1 / ratio², 4).
        max_tiles: most tiles an image is cut into (`max_patches`, 16).
        resize_to_max_canvas: upscale small images to the largest canvas (False).
    """

    tile: int = 336
    patch: int = 14
    downsample: int = 4
    max_tiles: int = 16
    resize_to_max_canvas: bool = False

    @property
    def tokens_per_tile(self) -> int:
        return (self.tile // self.patch) ** 2 // self.downsample

    @classmethod
    def from_processor(cls, processor: Any) -> ImageTiling:
        """Read the tiling of a loaded `Llama4Processor`."""
        image_processor = processor.image_processor
        size = image_processor.size
        tile = size["height"] if isinstance(size, Mapping) else size.height
        return cls(
            tile=int(tile),
            patch=int(processor.patch_size),
            downsample=int(processor.downsample_ratio),
            max_tiles=int(image_processor.max_patches),
            resize_to_max_canvas=bool(image_processor.resize_to_max_canvas),
        )

    @classmethod
    def from_folder(cls, model_dir: Path) -> ImageTiling:
        """Read the tiling from a model folder's JSON files (no torch, no transformers).

        Args:
            model_dir: a folder with config.json and processor_config.json or
                preprocessor_config.json.

        Returns:
            The tiling, with Scout's values for anything the files do not say or say unusably
            (preflight reports those; here a meter or a token count must still work).
        """
        files = [(name, _read_or_empty(model_dir / name)) for name in PROCESSOR_FILES]
        return cls.from_settings(files, _read_or_empty(model_dir / "config.json"))[0]

    @classmethod
    def from_settings(
        cls, files: Sequence[tuple[str, Mapping[str, Any]]], config: Mapping[str, Any]
    ) -> tuple[ImageTiling, list[str]]:
        """The tiling that parsed processor settings and config.json describe, and what is wrong.

        Args:
            files: (file name, parsed object) of processor_config.json / preprocessor_config.json,
                in `PROCESSOR_FILES` order (a later file's values win, as in transformers).
            config: config.json, parsed.

        Returns:
            The tiling (Scout's value for each missing or unusable field) and one sentence per
            unusable field, naming the file.
        """
        problems: list[str] = []
        found: dict[str, Any] = {}
        for name, data in files:
            image = data.get("image_processor", data if "size" in data else {})
            if not isinstance(image, Mapping):
                problems.append(
                    f"{name} sets image_processor to {json_kind(image)}, not an object."
                )
                image = {}
            size = image.get("size")
            if size is not None and not isinstance(size, Mapping):
                problems.append(f"{name} sets size to {json_kind(size)}, not an object.")
                size = {}
            for section, key, kind in (
                (size or {}, "height", "tile"),
                (image, "max_patches", "max_tiles"),
                (data, "patch_size", "patch"),
            ):
                value = checked_setting(
                    section, key, name, is_positive_int, "a positive integer", problems
                )
                if value is not None:
                    found[kind] = value
            canvas = checked_setting(
                image, "resize_to_max_canvas", name, is_bool, "true or false", problems
            )
            if canvas is not None:
                found["resize_to_max_canvas"] = canvas
        vision = config.get("vision_config")
        ratio = checked_setting(
            vision if isinstance(vision, Mapping) else {},
            "pixel_shuffle_ratio",
            "config.json vision_config",
            is_fraction,
            "a number above 0 and at most 1",
            problems,
        )
        downsample = round(1.0 / (ratio if ratio is not None else 0.5) ** 2)
        return cls(downsample=downsample, **found), problems


def tile_grid(width: int, height: int, tiling: ImageTiling) -> tuple[int, int]:
    """Rows and columns of tiles `Llama4ImageProcessor` cuts an image into.

    Mirrors its `get_best_fit`: among canvases of at most `max_tiles` tiles, take the smallest
    upscale (or, when every canvas is smaller, the mildest downscale), then the smallest area.
    """
    canvases = []
    for count in range(tiling.max_tiles, 0, -1):
        for rows in range(1, count + 1):
            if count % rows == 0:
                canvases.append((rows, count // rows))
    scales = [min(c * tiling.tile / width, r * tiling.tile / height) for r, c in canvases]
    upscales = [s for s in scales if s >= 1]
    if upscales:
        chosen = max(upscales) if tiling.resize_to_max_canvas else min(upscales)
    else:
        chosen = max(scales)
    fits = [canvas for canvas, scale in zip(canvases, scales, strict=True) if scale == chosen]
    return min(fits, key=lambda rc: rc[0] * rc[1])


def image_tokens(width: int, height: int, tiling: ImageTiling | None = None) -> int:
    """Prompt tokens one image costs, placeholders and separators included.

    Args:
        width: upright image width in pixels.
        height: upright image height in pixels.
        tiling: the processor's tiling (Scout's when None).

    Returns:
        E.g. 147 for a 336-px image, 2,322 for 1920×1080 with Scout's processor.
    """
    tiling = tiling or ImageTiling()
    rows, cols = tile_grid(width, height, tiling)
    per_tile = tiling.tokens_per_tile
    tokens = 3 + per_tile  # <|image_start|>, <|image|> + the global tile, <|image_end|>
    if rows * cols > 1:
        # Every tile, an x separator between tiles of a row, a y separator after each row.
        tokens += rows * cols * per_tile + rows * (cols - 1) + rows
    return tokens


def kv_cache_bytes(
    text_config: Mapping[str, Any],
    tokens: int,
    dtype_bytes: int = BF16_BYTES,
    *,
    kv_cache: str = "bf16",
) -> int:
    """Bytes of KV cache for `tokens` of context (chunked layers hold at most one chunk).

    `kv_cache` is the global layers' format (`llama4_kv`); chunked layers stay in the dtype.
    """
    chunked = _kv_per_layer_token(text_config, dtype_bytes)
    chunk = int(text_config.get("attention_chunk_size") or tokens)
    kinds = _layer_types(text_config)
    windows = sum(kind == "chunked_attention" for kind in kinds) * chunked * min(tokens, chunk)
    return windows + kv_bytes_per_token(text_config, dtype_bytes, kv_cache=kv_cache) * tokens


def kv_bytes_per_token(
    text_config: Mapping[str, Any], dtype_bytes: int = BF16_BYTES, *, kv_cache: str = "bf16"
) -> int:
    """KV bytes one more token of context costs past a chunk: the global layers' keys and values.

    Scout: 12 global layers × 2 (K, V) × 8 KV heads × head_dim 128 × 2 bytes = 49,152 in bf16;
    with `kv_cache="int8"`, 12 × 2 × 8 × (128 codes + a 2-byte scale) = 24,960.
    """
    kinds = _layer_types(text_config)
    return sum(kind != "chunked_attention" for kind in kinds) * _global_per_layer_token(
        text_config, dtype_bytes, kv_cache
    )


def segment_bytes(
    text_config: Mapping[str, Any],
    segment: int,
    context: int,
    dtype_bytes: int = BF16_BYTES,
    *,
    kv_cache: str = "bf16",
    direct_max_keys: int = DIRECT_MAX_KEYS,
) -> int:
    """Peak working memory of one prefill segment of `segment` tokens ending at `context` tokens.

    Besides the KV cache (not counted here), a forward of the segmented prefill holds:

    * activations of one layer at a time: `segment` × `_activation_width` × 2 values;
    * the chunked layers' boolean mask, built once per forward: segment × (kept window +
      segment). The global layers get none (`llama4_prefill`): their attention builds it;
    * per layer, transiently, the attention's own copies (`llama4_attention`), the larger of a
      global and a chunked layer's. Keys up to `direct_max_keys` go to transformers' sdpa, which
      repeats them to all query heads and makes an additive copy of the mask in the activation
      dtype (a global layer's boolean mask is built there too). Longer keys, and 8-bit ones, are
      attended one query head and `ROW_BLOCK` rows at a time: one row block's mask (boolean and
      additive), and for int8 one key/value head unpacked.

    Scout at a long context pays 512 × 3 bytes a context token for one row block's mask (+ 512
    for one unpacked int8 head); nothing else grows with the context.
    """
    segment = max(0, min(segment, context))
    kinds = _layer_types(text_config)
    chunk = int(text_config.get("attention_chunk_size") or context)
    window = min(chunk - 1, context - segment) + segment  # a chunked layer's keys in the forward
    heads = int(text_config.get("num_attention_heads", 40))
    head_dim = _head_dim(text_config)
    activations = segment * _activation_width(text_config) * _ACTIVATION_VALUES_PER_WIDTH
    masks = 0
    transient = 0
    for kind, length in (("full_attention", context), ("chunked_attention", window)):
        if kind not in kinds:
            continue
        own_mask = kind == "full_attention"  # built by the attention, not the model
        if not own_mask:
            masks += segment * length * _MASK_BOOL_BYTES
        mask_bytes = dtype_bytes + (_MASK_BOOL_BYTES if own_mask else 0)
        packed = kind == "full_attention" and kv_cache == "int8"
        if length <= direct_max_keys and not packed:
            repeat = 2 * heads * head_dim * dtype_bytes  # keys and values of all heads, per key
            layer = segment * length * mask_bytes + length * repeat
        else:
            layer = min(segment, ROW_BLOCK) * length * mask_bytes
            if packed:
                layer += length * 2 * head_dim * dtype_bytes  # one head's keys and values
        transient = max(transient, layer)
    return activations * dtype_bytes + masks + transient


def decode_bytes(text_config: Mapping[str, Any], dtype_bytes: int = BF16_BYTES) -> int:
    """Memory the decode step holds besides the KV cache: each chunked layer's ring of one chunk
    of keys and values (`llama4_step`), made after the prefill, freed after the answer.

    Scout: 36 chunked layers × 2 × 8 KV heads × 8,192 slots × 128 × 2 bytes = 1.21 GB.
    """
    kinds = _layer_types(text_config)
    chunk = int(text_config.get("attention_chunk_size") or 0)
    chunked = sum(kind == "chunked_attention" for kind in kinds)
    return chunked * chunk * _kv_per_layer_token(text_config, dtype_bytes)


def prefill_bytes(
    text_config: Mapping[str, Any],
    tokens: int,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    *,
    kv_cache: str = "bf16",
) -> int:
    """Working memory the segmented prefill of a `tokens`-token prompt needs at its peak."""
    return segment_bytes(text_config, min(tokens, segment_tokens), tokens, kv_cache=kv_cache)


def context_capacity(
    text_config: Mapping[str, Any],
    free_bytes: int,
    prefill_tokens: int,
    *,
    kv_cache: str = "bf16",
    kept_tokens: int = 0,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
) -> int:
    """The longest context (prompt + answer, in tokens) that fits in `free_bytes`.

    Solves KV(n) + max(`segment_bytes`(segment, n), regrowth, `decode_bytes`) <= free −
    `RESERVE_BYTES` for the largest n, where segment = min(`prefill_tokens`, `segment_tokens`):
    the segmented prefill's last segment is the peak, and its global mask grows with the
    context n. The KV cache is allocated for n before the prefill (`llama4_kv.reserve`); a kept
    cache of `kept_tokens` that must grow to n holds one global layer's old buffer meanwhile
    (the regrowth); the decode step's rings exist after the prefill's working memory is gone.

    Args:
        text_config: the text section of config.json.
        free_bytes: device memory free now (weights already loaded, the kept cache not counted).
        prefill_tokens: tokens this request prefills (one segment at a time).
        kv_cache: the global layers' KV format, "bf16" or "int8".
        kept_tokens: tokens the kept prefix cache holds and this request reuses.
        segment_tokens: tokens per forward of the segmented prefill.

    Returns:
        Tokens, at most the model's `max_position_embeddings`; 0 when not even the prefill fits.
    """
    limit = int(text_config.get("max_position_embeddings", 131072))
    segment = max(1, min(prefill_tokens, segment_tokens))
    usable = free_bytes - RESERVE_BYTES
    if usable - segment_bytes(text_config, segment, segment, kv_cache=kv_cache) <= 0:
        return 0
    layer_bytes = _global_per_layer_token(text_config, BF16_BYTES, kv_cache) * kept_tokens
    rings = decode_bytes(text_config)

    def need(n: int) -> int:
        working = segment_bytes(text_config, segment, n, kv_cache=kv_cache)
        return kv_cache_bytes(text_config, n, kv_cache=kv_cache) + max(working, layer_bytes, rings)

    low, high = 0, limit
    while low < high:  # the largest n whose need fits
        mid = (low + high + 1) // 2
        if need(mid) <= usable:
            low = mid
        else:
            high = mid - 1
    return low


def check_budget(prompt_tokens: int, max_new_tokens: int, capacity: int, where: str) -> None:
    """Refuse a request that cannot fit, saying by how much, before anything is generated.

    Args:
        prompt_tokens: text + image tokens of the rendered conversation.
        max_new_tokens: the longest answer asked for.
        capacity: tokens the device can hold (`context_capacity`, or the model's limit).
        where: what limits it, for the message ("the GPU's free memory", ...).

    Raises:
        BadInputError: prompt + answer exceed the capacity.
    """
    need = prompt_tokens + max_new_tokens
    if need <= capacity:
        return
    over = need - capacity
    raise BadInputError(
        f"This conversation needs {need:,} tokens ({prompt_tokens:,} prompt + {max_new_tokens:,} "
        f"for the answer) but {where} holds {capacity:,}: {over:,} tokens too many. Remove images "
        f"or attachments, start a new chat, or lower the answer length."
    )


def _head_dim(text_config: Mapping[str, Any]) -> int:
    heads = int(text_config.get("num_attention_heads", 40))
    return int(text_config.get("head_dim") or int(text_config.get("hidden_size", 5120)) // heads)


def _kv_per_layer_token(text_config: Mapping[str, Any], dtype_bytes: int) -> int:
    return 2 * int(text_config.get("num_key_value_heads", 8)) * _head_dim(text_config) * dtype_bytes


def _global_per_layer_token(text_config: Mapping[str, Any], dtype_bytes: int, kv_cache: str) -> int:
    """One global layer's KV bytes a token: the dtype's, or packed int8 rows (`llama4_kv`)."""
    if kv_cache == "int8":
        row = _head_dim(text_config) + SCALE_BYTES
        return 2 * int(text_config.get("num_key_value_heads", 8)) * row
    return _kv_per_layer_token(text_config, dtype_bytes)


def _activation_width(text_config: Mapping[str, Any]) -> int:
    """hidden + routed expert width + shared MLP width: what a token's activations scale with."""
    hidden = int(text_config.get("hidden_size", 5120))
    expert = int(text_config.get("intermediate_size", 8192))
    return hidden + expert + int(text_config.get("intermediate_size_mlp", 2 * expert))


def _layer_types(text_config: Mapping[str, Any]) -> list[str]:
    types = text_config.get("layer_types")
    if isinstance(types, list) and types:
        return [str(t) for t in types]
    layers = int(text_config.get("num_hidden_layers", 48))
    no_rope = text_config.get("no_rope_layers")
    if not isinstance(no_rope, list) or len(no_rope) != layers:
        interval = int(text_config.get("no_rope_layer_interval", 4))
        no_rope = [int((i + 1) % interval != 0) for i in range(layers)]
    return ["chunked_attention" if flag else "full_attention" for flag in no_rope]


def _read_or_empty(path: Path) -> dict[str, Any]:
    """A model JSON file's object, or {} when it is missing or unusable (preflight says why)."""
    try:
        return read_model_json(path)
    except ModelJsonError:
        return {}
