"""Token budget before sending: what a prompt costs and how much context the device can hold.

Pure arithmetic on config values (no torch), so the composer can show a live meter. Image tokens
follow `Llama4ImageProcessor`'s tiling and `Llama4Processor`'s placeholder layout; memory follows
transformers' cache for Llama 4: chunked-attention layers keep at most one chunk, global layers
grow with the context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.inference.engine import BadInputError
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
# Measured for Scout's dense-MoE prefill (issue 3): activation bytes per prompt token, for
# 16 experts × (hidden 5120 + expert width 8192); other shapes scale with that product.
_SCOUT_PREFILL_BYTES_PER_TOKEN = 368_000
_SCOUT_MOE_WIDTH = 16 * (5120 + 8192)
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


def kv_cache_bytes(text_config: Mapping[str, Any], tokens: int) -> int:
    """Bytes of bf16 KV cache for `tokens` of context (chunked layers hold at most one chunk)."""
    heads = int(text_config.get("num_attention_heads", 40))
    head_dim = text_config.get("head_dim") or int(text_config.get("hidden_size", 5120)) // heads
    per_layer_token = (
        2 * int(text_config.get("num_key_value_heads", 8)) * int(head_dim) * BF16_BYTES
    )
    chunk = text_config.get("attention_chunk_size") or tokens
    total = 0
    for kind in _layer_types(text_config):
        held = min(tokens, int(chunk)) if kind == "chunked_attention" else tokens
        total += per_layer_token * held
    return total


def prefill_bytes(text_config: Mapping[str, Any], tokens: int) -> int:
    """Activation bytes a single prefill of `tokens` needs (stock transformers runs all experts)."""
    width = int(text_config.get("num_local_experts", 16)) * (
        int(text_config.get("hidden_size", 5120)) + int(text_config.get("intermediate_size", 8192))
    )
    return int(_SCOUT_PREFILL_BYTES_PER_TOKEN * width / _SCOUT_MOE_WIDTH) * tokens


def context_capacity(
    text_config: Mapping[str, Any], free_bytes: int, prefill_tokens: int, *, cache_copies: int = 2
) -> int:
    """The longest context (prompt + answer, in tokens) that fits in `free_bytes`.

    Args:
        text_config: the text section of config.json.
        free_bytes: device memory free now (weights already loaded).
        prefill_tokens: tokens this request prefills in one pass (its activations peak then).
        cache_copies: KV caches alive at once (the engine keeps a prefix copy for the next turn).

    Returns:
        Tokens, at most the model's `max_position_embeddings`; 0 when not even the prefill fits.
    """
    limit = int(text_config.get("max_position_embeddings", 131072))
    usable = free_bytes - RESERVE_BYTES - prefill_bytes(text_config, prefill_tokens)
    if usable <= 0:
        return 0
    low, high = 0, limit
    while low < high:  # the largest n with copies × KV(n) <= usable
        mid = (low + high + 1) // 2
        if cache_copies * kv_cache_bytes(text_config, mid) <= usable:
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
