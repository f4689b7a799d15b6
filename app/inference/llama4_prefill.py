"""Segmented prefill: the prompt enters the KV cache a few thousand tokens at a time.

A one-shot prefill of N tokens holds activations, router buffers and attention masks for all N at
once (the masks alone are N × N), so the longest prompt that fits is set by the prefill, not by the
KV cache. `prefill` runs the model's forward over `ids[start:end]` in segments of `segment_tokens`
into one `DynamicCache`, so what a forward allocates is bounded by the segment (the global layers'
mask is segment × context). Between segments it checks the user's Stop (raising `Cancelled`, the
cache then encoding exactly the tokens read so far) and reports `(done, total)`.

How a segment continues the previous one exactly (transformers 5.23, `Llama4TextModel.forward`):

* Positions. Without `position_ids` the model numbers a segment's tokens from
  `past_key_values.get_seq_length()`, so RoPE continues where the last segment stopped; the global
  NoPE layers' attention-temperature tuning reads its layer's own cache length the same way.
* Masks. With `attention_mask=None` (one unpadded row) each forward builds its masks from the
  cache: `create_causal_mask` for the global layers (every earlier token visible) and
  `create_chunked_causal_mask` for the chunked ones. A chunked layer's cache is a
  `DynamicSlidingWindowLayer` (the class `DynamicCache(config=...)` picks for
  `"chunked_attention"`): it keeps the last `attention_chunk_size - 1` keys, the most any later
  query of the same chunk can see, and reports `(kv_length, kv_offset)` as (kept + segment, absolute
  position of the first kept key). The chunk rule compares absolute positions (query and key in
  the same `attention_chunk_size` block), so a segment that starts mid-chunk, straddles one or more
  chunk borders, or is shorter or longer than a chunk masks exactly as the one-shot pass does.
* Images: features once, scattered per segment. Before the first segment the vision tower and the
  projector run once over the tiles whose `<|patch|>` tokens lie in `ids[start:end]`, as one batch,
  with the very calls the stock forward makes (`get_image_features`, flatten, project, cast). Each
  segment then embeds its own ids and `masked_scatter`s the next rows into its own `<|patch|>`
  positions, in prompt order, as the stock forward does for the whole prompt. The language model
  attends causally over image tokens like any others, so an image may straddle a segment (or
  chunk) border. The alternatives: `inputs_embeds` for the whole prompt is N × hidden (400 K
  tokens of Scout: 4 GB of bf16) against at most 5 images × 17 tiles × 144 rows here; keeping each
  image whole in one segment would make segment sizes depend on images, and an image of 16 tiles
  plus the global one is 2,448 tokens on its own.
* A start inside an image (a prefill stopped mid-image and resumed from the kept cache) skips the
  rows already in the cache: whole tiles by `pixel_values` index, the rest by row.

Exactness: on the tiny model in float32, the logits after any segmentation (1 to 100 tokens,
crossing several 64-token chunks, with an image straddling segments) agree with a one-shot prefill
to 2.4e-7 absolute (logits of magnitude ~0.7), the cached keys and values to 1.7e-6: not bit for
bit, since attention sums over a different number of keys per call and the matmuls see other row
counts. One segment is bit for bit the stock forward, and greedy answers are identical
(`tests/inference/test_segmented_prefill.py`).

torch and transformers are imported inside the function only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from app.inference.engine import Cancelled

#: Tokens per forward: activation memory is bounded by this, Stop is honoured after each.
DEFAULT_SEGMENT_TOKENS = 2048

#: Called after each segment with (tokens of the range now in the cache, tokens in the range).
PrefillProgress = Callable[[int, int], None]


class CancelFlag(Protocol):
    """What `prefill` polls between segments: a `CancelToken`, or anything with `cancelled`."""

    @property
    def cancelled(self) -> bool: ...


def prefill(
    model: Any,
    cache: Any,
    ids: Sequence[int],
    start: int,
    end: int,
    *,
    pixel_values: Any = None,
    segment_tokens: int = DEFAULT_SEGMENT_TOKENS,
    cancel: CancelFlag | None = None,
    progress: PrefillProgress | None = None,
    logits: bool = True,
) -> Any:
    """Feed `ids[start:end]` into `cache` (which holds exactly `ids[:start]`), segment by segment.

    Call it under `torch.inference_mode()`.

    Args:
        model: a `Llama4ForConditionalGeneration` (`Llama4ForCausalLM` for text-only prompts).
        cache: a `DynamicCache(config=text_config)` encoding `ids[:start]` (empty for 0).
        ids: the whole prompt's token ids.
        start: the first token to feed (the cache's length).
        end: one past the last token to feed.
        pixel_values: every image tile of the whole prompt in prompt order, as the processor made
            them (already in the vision tower's dtype), or None without images.
        segment_tokens: tokens per forward.
        cancel: polled before each segment; when set, `Cancelled` is raised and the cache encodes
            exactly `ids[:cache.get_seq_length()]` (whole segments only).
        progress: called after each segment with (tokens of `ids[start:end]` fed, `end - start`).
        logits: run the output head on token `end - 1` (False: no head call at all).

    Returns:
        The logits of token `end - 1` (a [vocab] tensor), or None when `start == end` or
        `logits` is False.

    Raises:
        Cancelled: `cancel` was set before a segment.
        ValueError: the cache does not hold `start` tokens, the range is not within `ids`, or the
            `<|patch|>` tokens of the range do not match the image tiles.
    """
    import torch

    if segment_tokens < 1:
        raise ValueError(f"segment_tokens must be at least 1, not {segment_tokens}")
    if not 0 <= start <= end <= len(ids):
        raise ValueError(f"prefill range {start}:{end} is not within the {len(ids)} prompt tokens")
    if start == end:
        return None
    held = cache.get_seq_length()
    if held != start:
        raise ValueError(f"the cache holds {held} tokens, but the prefill starts at {start}")
    embed = model.get_input_embeddings()
    device = embed.weight.device
    image_token_id = _image_token_id(model)
    rows = _image_rows(model, ids, start, end, pixel_values, image_token_id, device)
    used = 0
    decoder = text_model(model)
    last = None
    position = start
    while position < end:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Stopped while reading the prompt.")
        stop = min(end, position + segment_tokens)
        segment = torch.tensor([ids[position:stop]], dtype=torch.long, device=device)
        embeds = embed(segment)
        if rows is not None and image_token_id is not None:
            patches = torch.eq(segment, image_token_id)
            count = int(patches.sum())
            if count:
                part = rows[used : used + count].to(embeds.device, embeds.dtype)
                embeds = embeds.masked_scatter(patches.unsqueeze(-1), part)
                used += count
        masks = _masks(decoder, embeds, cache, position)
        if stop < end or not logits:  # no head: only the last token's logits are wanted
            decoder(
                inputs_embeds=embeds, attention_mask=masks, past_key_values=cache, use_cache=True
            )
        else:
            out = model(
                inputs_embeds=embeds, attention_mask=masks, past_key_values=cache,
                use_cache=True, logits_to_keep=1,
            )  # fmt: skip
            last = out.logits[0, -1]
        del embeds
        position = stop
        if progress is not None:
            progress(position - start, end - start)
    return last


def _masks(decoder: Any, embeds: Any, cache: Any, position: int) -> Any:
    """The masks of one segment's forward: None (the model builds them) under stock attention.

    Under the engine's attention (`llama4_attention.ATTENTION`) the global layers get None,
    which it reads as causal from the end and builds a row block at a time, so the segment ×
    context mask transformers would build for them never exists; the chunked layers get
    transformers' own mask, which is at most segment × (chunk + segment).
    """
    from app.inference.llama4_attention import ATTENTION

    config = decoder.config
    if config._attn_implementation != ATTENTION:
        return None
    import torch
    from transformers.masking_utils import create_chunked_causal_mask

    positions = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0) + position
    chunked = create_chunked_causal_mask(
        config=config, inputs_embeds=embeds, attention_mask=None,
        past_key_values=cache, position_ids=positions,
    )  # fmt: skip
    return {"full_attention": None, "chunked_attention": chunked}


def _image_token_id(model: Any) -> int | None:
    """`<|patch|>`'s id: the token the stock forward fills with image features."""
    value = getattr(model.config, "image_token_id", None)
    if value is None:
        value = getattr(model.config, "image_token_index", None)
    return None if value is None else int(value)


def text_model(model: Any) -> Any:
    """The decoder stack without the output head (`Llama4TextModel`)."""
    language = getattr(model, "language_model", model)
    return language.model


def rows_per_tile(vision_config: Any) -> int:
    """Feature rows (and `<|patch|>` tokens) one tile gives: (side / patch)² × shuffle ratio²."""
    side = int(vision_config.image_size) // int(vision_config.patch_size)
    return round(side * side * float(vision_config.pixel_shuffle_ratio) ** 2)


def _image_rows(
    model: Any,
    ids: Sequence[int],
    start: int,
    end: int,
    pixel_values: Any,
    image_token_id: int | None,
    device: Any,
) -> Any:
    """Projected image features for the `<|patch|>` tokens of `ids[start:end]`, in order, or None.

    Runs the vision tower once, on just the tiles those tokens belong to, exactly as the stock
    `Llama4ForConditionalGeneration.forward` does for a whole prompt.
    """
    if image_token_id is None:
        return None
    before = sum(1 for token in ids[:start] if token == image_token_id)
    wanted = sum(1 for token in ids[start:end] if token == image_token_id)
    if not wanted:
        return None
    per_tile = rows_per_tile(model.config.vision_config)
    first_tile, skip = divmod(before, per_tile)
    tiles = -(-(skip + wanted) // per_tile)  # ceil
    available = 0 if pixel_values is None else int(pixel_values.shape[0])
    if first_tile + tiles > available:
        raise ValueError(
            f"the prompt has {before + wanted} image tokens but only {available} image tiles "
            f"({per_tile} tokens each)"
        )
    pixels = pixel_values[first_tile : first_tile + tiles].to(device)
    features = model.get_image_features(pixel_values=pixels, return_dict=True).last_hidden_state
    flat = features.view(-1, features.size(-1))
    embed = model.get_input_embeddings()
    projected = model.multi_modal_projector(flat).to(embed.weight.device, embed.weight.dtype)
    if projected.shape[0] != tiles * per_tile:
        raise ValueError(
            f"{tiles} image tiles gave {projected.shape[0]} feature rows, not {tiles * per_tile}"
        )
    return projected[skip : skip + wanted]
