"""The KV cache of Llama 4's global layers: preallocated in place, and optionally 8-bit.

Scout's 12 global (NoPE) layers attend to the whole context, so their keys and values are what a
long prompt's memory is made of (49,152 bytes a token in bf16); the 36 chunked layers keep at most
one 8,192-token chunk. transformers' `DynamicLayer` grows by `torch.cat` at every forward, which
holds the old and the new tensor at once (one more layer's worth at 400 K tokens: 1.6 GB) and
copies the whole context each step. `GlobalLayer` writes into a buffer sized for the request
(`reserve`, before the prefill), so a forward copies only its own new tokens.

`kv_cache="int8"` stores each key and value row (one token, one head: `head_dim` numbers) as int8
codes with one float16 scale (its largest magnitude / 127), packed into the same int8 row: the
last two bytes hold the scale. That is `head_dim + 2` bytes instead of `2 × head_dim`: 24,960
bytes a token for Scout instead of 49,152. The layer hands the packed rows to attention, which
unpacks one key/value head at a time (`llama4_attention`), so no full-precision copy of a long
context ever exists. The chunked layers stay in the activation dtype (they are small and bounded).

torch is imported inside the functions and classes are built on first use, so this module can be
imported without torch.
"""

from __future__ import annotations

from typing import Any, get_args

from app.core.settings import KvCache

#: The KV cache formats of the global layers, as settings and the CLI name them.
KV_CACHES: tuple[str, ...] = get_args(KvCache)
#: Bytes of the scale stored at the end of each packed int8 row (a float16).
SCALE_BYTES = 2
#: A packed row's codes span -127..127, so that the scale maps the row's largest magnitude to 127.
_CODE_MAX = 127.0


def pack_int8(states: Any) -> Any:
    """Quantize `[..., head_dim]` rows to int8 codes with a float16 scale each, packed.

    Args:
        states: keys or values, any float dtype.

    Returns:
        An int8 tensor `[..., head_dim + 2]`: the codes, then the scale's two bytes.
    """
    import torch

    wide = states.float()
    largest = wide.abs().amax(dim=-1, keepdim=True)
    # The scale is rounded to float16 first and the codes are computed against the rounded
    # value, so unpacking (codes × stored scale) errs only by the codes' rounding: half a step.
    scale = (largest / _CODE_MAX).clamp_min(1e-7).to(torch.float16)
    packed = torch.empty(
        (*states.shape[:-1], states.shape[-1] + SCALE_BYTES), dtype=torch.int8, device=states.device
    )
    codes = torch.round(wide / scale.float()).clamp_(-_CODE_MAX, _CODE_MAX)
    packed[..., :-SCALE_BYTES] = codes  # written in place: no `cat` at every decode step
    packed[..., -SCALE_BYTES:] = scale.view(torch.int8)
    return packed


def unpack_int8(packed: Any, dtype: Any) -> Any:
    """The `dtype` rows that `pack_int8` packed (codes × scale), with one tensor of that size.

    Args:
        packed: an int8 tensor `[..., head_dim + 2]` whose last dimension is contiguous.
        dtype: the dtype to return (the queries').

    Returns:
        A tensor `[..., head_dim]`.
    """
    import torch

    scale = packed[..., -SCALE_BYTES:].view(torch.float16).to(dtype)
    return packed[..., :-SCALE_BYTES].to(dtype).mul_(scale)


def new_cache(text_config: Any, kv_cache: str = "bf16") -> Any:
    """A `DynamicCache` for Llama 4 whose global layers are `GlobalLayer`s.

    Args:
        text_config: the model's text config (its `layer_types` say which layers are global).
        kv_cache: "bf16" (the activation dtype, in place) or "int8" (packed, see the module).

    Returns:
        The cache; the chunked layers are transformers' `DynamicSlidingWindowLayer`s.

    Raises:
        ValueError: an unknown `kv_cache`.
    """
    from transformers import DynamicCache

    if kv_cache not in KV_CACHES:
        raise ValueError(f"Unknown KV cache {kv_cache!r}: use {' or '.join(KV_CACHES)}.")
    cache = DynamicCache(config=text_config)
    layer_class = global_layer_class()
    for index, kind in enumerate(_layer_types(text_config)):
        if kind == "full_attention":
            cache.layers[index] = layer_class(packed=kv_cache == "int8")
    return cache


def reserve(cache: Any, tokens: int) -> None:
    """Make every global layer of `cache` able to hold `tokens` without growing mid-forward.

    Called before a prefill with the prompt and answer length. A layer that must grow copies
    itself into a new buffer one layer at a time, so the extra memory is one layer's old buffer.
    """
    for layer in getattr(cache, "layers", ()):
        if hasattr(layer, "reserve"):
            layer.reserve(tokens)


def held_bytes(cache: Any) -> int:
    """Bytes of device memory `cache`'s layers hold (reserved room included)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        tensors = layer.buffers() if hasattr(layer, "buffers") else (layer.keys, layer.values)
        total += sum(t.numel() * t.element_size() for t in tensors if t is not None)
    return total


def is_packed(states: Any) -> bool:
    """Whether keys or values handed to attention are `pack_int8` rows (int8 dtype)."""
    import torch

    return bool(states.dtype == torch.int8)


_GLOBAL_LAYER: Any = None


def global_layer_class() -> Any:
    """`GlobalLayer`: a `DynamicLayer` subclass, built on first use (importing transformers)."""
    global _GLOBAL_LAYER
    if _GLOBAL_LAYER is None:
        _GLOBAL_LAYER = _build_global_layer()
    return _GLOBAL_LAYER


def _build_global_layer() -> Any:
    import torch
    from transformers.cache_utils import DynamicLayer

    class GlobalLayer(DynamicLayer):
        """A global layer's keys and values in a buffer written in place (see the module).

        `keys` and `values` are views of the first `length` tokens of the buffers, as a
        `DynamicLayer`'s tensors would be, so transformers' readers see what they expect.

        Args:
            packed: store `pack_int8` rows (int8) instead of the activation dtype.
        """

        def __init__(self, *, packed: bool = False) -> None:
            super().__init__()
            self.packed = packed
            self.length = 0
            self._wanted = 0
            self._key_buffer: Any = None
            self._value_buffer: Any = None

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True

        def reserve(self, tokens: int) -> None:
            """Hold at least `tokens` from now on (now if allocated, else at the first write)."""
            self._wanted = max(self._wanted, tokens)
            if self._key_buffer is not None and tokens > self._key_buffer.shape[-2]:
                self._grow(tokens)

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if self.packed:
                key_states, value_states = pack_int8(key_states), pack_int8(value_states)
            end = self.length + key_states.shape[-2]
            if self._key_buffer is None:
                self._allocate(key_states, value_states, max(end, self._wanted))
            elif end > self._key_buffer.shape[-2]:
                # Not reserved (transformers' own callers, a longer answer): grow by half again.
                self._grow(max(end, self._key_buffer.shape[-2] * 3 // 2))
            self._key_buffer[..., self.length : end, :] = key_states
            self._value_buffer[..., self.length : end, :] = value_states
            self.length = end
            self._set_views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def adopt(self, keys: Any, values: Any, dtype: Any, device: Any) -> None:
            """Take `keys` and `values` as the (empty) buffers: a decode that starts before
            any prefill wrote (`llama4_step`)."""
            self.dtype, self.device = dtype, device
            self.is_initialized = True
            self._key_buffer, self._value_buffer = keys, values

        def advance(self, length: int) -> None:
            """Hold the first `length` tokens of the buffers, which someone else wrote in place
            (`llama4_step.DecodeStep` writes the answer's keys straight into them)."""
            if self._key_buffer is None or length > self._key_buffer.shape[-2]:
                raise ValueError(f"the buffers cannot hold {length} tokens")
            self.length = length
            self._set_views()

        def buffers(self) -> tuple[Any, Any]:
            """The key and value buffers (None before the first write)."""
            return self._key_buffer, self._value_buffer

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative count: the tokens to remove")
            self.length = max(0, self.length + tokens_to_remove)
            self._set_views()

        def reset(self) -> None:
            self.length = 0
            self._set_views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._replace_buffers(lambda t: t.repeat_interleave(repeats, dim=0))

        def batch_select_indices(self, indices: Any) -> None:
            self._replace_buffers(lambda t: t[indices, ...])

        def reorder_cache(self, beam_idx: Any) -> None:
            self._replace_buffers(lambda t: t.index_select(0, beam_idx.to(t.device)))

        def _allocate(self, key_states: Any, value_states: Any, tokens: int) -> None:
            def empty(like: Any) -> Any:
                shape = (*like.shape[:-2], tokens, like.shape[-1])
                return torch.empty(shape, dtype=like.dtype, device=like.device)

            self._key_buffer, self._value_buffer = empty(key_states), empty(value_states)

        def _grow(self, tokens: int) -> None:
            def grown(old: Any) -> Any:
                new = old.new_empty((*old.shape[:-2], tokens, old.shape[-1]))
                new[..., : self.length, :] = old[..., : self.length, :]
                return new

            # One buffer at a time: the old one is freed before the next is copied.
            self._key_buffer = grown(self._key_buffer)
            self._value_buffer = grown(self._value_buffer)
            self._set_views()

        def _replace_buffers(self, change: Any) -> None:
            if self._key_buffer is not None:
                self._key_buffer = change(self._key_buffer)
                self._value_buffer = change(self._value_buffer)
                self._set_views()

        def _set_views(self) -> None:
            if self._key_buffer is None:  # nothing written yet
                return
            self.keys = self._key_buffer[..., : self.length, :]
            self.values = self._value_buffer[..., : self.length, :]

    return GlobalLayer


def _layer_types(text_config: Any) -> list[str]:
    """Each decoder layer's attention kind ("full_attention" or "chunked_attention")."""
    return [str(kind) for kind in text_config.layer_types]
