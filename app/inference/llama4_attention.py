"""Attention over a long context without copies that grow with it: the engine's `"scout_sdpa"`.

transformers' `sdpa_attention_forward`, given a mask (every prefill segment after the first),
repeats the keys and values to all query heads before calling `scaled_dot_product_attention`
(`repeat_kv`: Scout's 8 KV heads become 40, 20,480 bytes a context token in bf16), and sdpa turns
the boolean mask (segment × context, built by the model for every forward) into an additive one in
the query dtype. At 400 K tokens of context that is 8 GB, 0.8 GB and 1.6 GB on top of the 19.7 GB
of KV cache.

Here, once the keys are longer than `DIRECT_MAX_KEYS`, attention runs one query head and one block
of `ROW_BLOCK` query rows at a time against its own key/value head, sliced, never repeated: a mask
exists for one row block only, and the softmax of each row is the same sum over the same keys as
the stock call makes. Shorter keys (the chunked layers, short prompts) go to the stock function. A
decode step (one query row) folds a key/value head's query heads into rows of one call, as
transformers' own `pack_gqa` does.

The global layers' mask is never built whole: the segmented prefill (`llama4_prefill`) passes
`None` for them, and here `None` with more keys than queries means what it means there, causal
from the end (query i of n sees every key up to `len(keys) - n + i`), built a row block at a time.
(transformers reads `None` as causal from the start, which only a `StaticCache`'s empty tail
makes right; the engine never uses one.)

Keys and values packed as int8 (`llama4_kv`, `kv_cache="int8"`) always take the per-head path and
are unpacked one key/value head at a time, so no full-precision copy of the context is ever made.

Registered under `ATTENTION` with transformers' `AttentionInterface` (the function) and
`AttentionMaskInterface` (transformers' own sdpa masks), by `register()`.
"""

from __future__ import annotations

from typing import Any

#: The name the engine gives `set_attn_implementation` for the text model.
ATTENTION = "scout_sdpa"
#: Keys up to this many go to transformers' sdpa as they are (its copies are small then).
DIRECT_MAX_KEYS = 16_384
#: Query rows whose additive mask exists at once on the long path.
ROW_BLOCK = 512


def register() -> str:
    """Register `ATTENTION` with transformers (idempotent) and return the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, attention_forward)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION


def attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-interface signature; returns `([batch, q, heads, dim], None)`."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from app.inference.llama4_kv import is_packed

    packed = is_packed(key)
    rows, keys = query.shape[2], key.shape[2]
    if not packed and keys <= DIRECT_MAX_KEYS:
        if attention_mask is None and 1 < rows < keys:  # causal from the end (see the module)
            attention_mask = causal_rows(rows, keys, 0, rows, query.device)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask,
            dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs,
        )  # fmt: skip
    return _per_head(query, key, value, attention_mask, scaling, packed), None


def causal_rows(rows: int, keys: int, first: int, count: int, device: Any) -> Any:
    """The boolean mask of query rows `first:first + count` of `rows`, causal from the end.

    Returns:
        `[1, 1, count, keys]`: row i sees keys up to `keys - rows + first + i`.
    """
    import torch

    last = torch.arange(count, device=device) + (keys - rows + first)
    return (torch.arange(keys, device=device)[None, :] <= last[:, None]).view(1, 1, count, keys)


def _per_head(
    query: Any, key: Any, value: Any, mask: Any, scaling: float | None, packed: bool
) -> Any:
    """Attention one key/value head at a time (see the module), into `[batch, q, heads, dim]`."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from app.inference.llama4_kv import unpack_int8

    batch, heads, rows, _ = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    group = heads // kv_heads
    # Without a mask and as many keys as queries, sdpa's own causal flag needs no mask at all.
    plain_causal = mask is None and rows == keys and rows > 1
    block = rows if plain_causal else ROW_BLOCK
    out = None
    for kv_head in range(kv_heads):
        head_keys = key[:, kv_head : kv_head + 1]
        head_values = value[:, kv_head : kv_head + 1]
        if packed:
            head_keys = unpack_int8(head_keys, query.dtype)
            head_values = unpack_int8(head_values, query.dtype)
        first = kv_head * group
        if rows == 1:
            # One query row: this head's `group` query heads become rows of one call.
            folded = query[:, first : first + group].transpose(1, 2)  # [batch, 1, group, dim]
            part = sdpa(folded, head_keys, head_values, attn_mask=mask, scale=scaling)
            if out is None:
                out = query.new_empty(batch, rows, heads, part.shape[-1])
            out[:, 0, first : first + group] = part[:, 0]
            continue
        for head in range(first, first + group):
            for row in range(0, rows, block):
                count = min(block, rows - row)
                if plain_causal:
                    rows_mask = None
                elif mask is None:
                    rows_mask = causal_rows(rows, keys, row, count, query.device)
                else:
                    rows_mask = _mask_rows(mask, head, row, count)
                part = sdpa(
                    query[:, head : head + 1, row : row + count], head_keys, head_values,
                    attn_mask=rows_mask, scale=scaling, is_causal=plain_causal,
                )  # fmt: skip
                if out is None:
                    out = query.new_empty(batch, rows, heads, part.shape[-1])
                out[:, row : row + count, head] = part[:, 0]
    assert out is not None
    return out


def _mask_rows(mask: Any, head: int, row: int, count: int) -> Any:
    """The mask of query `head`'s rows `row:row + count` (a mask may be shared by all heads)."""
    head_index = head if mask.shape[1] > 1 else 0
    return mask[:, head_index : head_index + 1, row : row + count]
