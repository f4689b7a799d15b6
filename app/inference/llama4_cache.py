"""Multi-turn without re-prefill, in one KV cache: the previous turn's cache, cropped, extended.

The engine has one `DynamicCache` at a time (`llama4_kv.new_cache`). After a prompt's prefill
reaches its final `<|header_end|>` the engine `store`s the cache with those token ids (no copy) and
generation goes on appending the answer to the very same object. That point is a special token, so
tokenizing the next, longer conversation reproduces exactly those ids: the next turn `take`s the
cache back, cropped in place to the kept ids (`crop_cache`: slicing, no copy), and prefills only
what follows (the previous answer, the new user turn and its new images). When the history changed
(regenerate after an edit, another session) the ids differ and the engine starts a new cache. A
prefill stopped between segments keeps what it read the same way (`store` with the ids so far), so
asking again continues from there.

Cropping Llama 4's cache. Global layers (`llama4_kv.GlobalLayer`) crop by shortening their length.
Chunked layers (`DynamicSlidingWindowLayer`) keep only the last `attention_chunk_size - 1` keys, so
once a turn has gone past the kept point they no longer hold the keys before it. `store` therefore
switches on their past recording (`activate_past_recording`): from the kept point on they keep what
is appended, the window up to that point plus the answer (bounded by the answer length, like the
global layers' growth), and `crop_cache` cuts them back to exactly the window at the kept point and
switches recording off again, so the next prompt's prefill keeps only one window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PrefixCache:
    """The engine's KV cache between turns, and the prompt prefix (token ids) it starts with."""

    def __init__(self) -> None:
        self.ids: tuple[int, ...] = ()
        self._cache: Any = None

    def reusable(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` the kept cache already encodes (0: none usable)."""
        n = len(self.ids)
        if self._cache is None or n == 0 or len(ids) < n or tuple(ids[:n]) != self.ids:
            return 0
        return n

    def store(self, ids: Sequence[int], cache: Any) -> None:
        """Keep `cache`, which encodes `ids` and may go on growing past them (no copy is made).

        Args:
            ids: the prefix `cache` holds now (at least).
            cache: a `DynamicCache`; its chunked layers start recording their past, so that
                `take` can crop it back to `ids` after an answer was appended.
        """
        self._cache = None
        self.ids = ()
        if hasattr(cache, "activate_past_recording"):
            cache.activate_past_recording()
        self._cache = cache
        self.ids = tuple(ids)

    def take(self) -> Any:
        """Hand the kept cache over, cropped in place to the kept ids (the same object).

        The prefix cache lets go of it: the caller extends it and `store`s it again.

        Returns:
            The cache, holding exactly `len(ids)` tokens, or None when nothing is kept.
        """
        cache, n = self._cache, len(self.ids)
        self._cache = None
        self.ids = ()
        if cache is not None:
            crop_cache(cache, n)
        return cache

    def held_bytes(self) -> int:
        """Device memory the kept cache holds (0 when none is kept)."""
        from app.inference.llama4_kv import held_bytes

        return 0 if self._cache is None else held_bytes(self._cache)

    def clear(self) -> None:
        """Drop the kept cache (its memory is freed once nothing else refers to it)."""
        self._cache = None
        self.ids = ()


def crop_cache(cache: Any, length: int) -> None:
    """Cut every layer of a `DynamicCache` back to its first `length` tokens, in place.

    Layer by layer, so a cache whose layers stopped at different lengths (an error inside a
    forward) still comes back whole. Sliding-window (chunked) layers must have been recording
    since `length` or earlier (`PrefixCache.store`); they are left holding their window at
    `length` and no longer recording.

    Args:
        cache: the cache.
        length: tokens to keep.

    Raises:
        ValueError: a layer holds fewer than `length` tokens.
    """
    for layer in getattr(cache, "layers", ()):
        if not getattr(layer, "is_initialized", False):
            continue
        held = layer.get_seq_length()
        if held < length:
            raise ValueError(f"a cache layer holds {held} tokens, fewer than the {length} kept")
        recording = getattr(layer, "record_past", False)
        if held == length and not recording:
            continue  # nothing to remove (and a full window that is not recording refuses crop)
        layer.crop(length - held)  # a negative count: how many tokens to remove
        if recording:
            layer.record_past = False


def cut_point(ids: Sequence[int], boundary_id: int) -> int:
    """Length of the prefix to keep: up to and including the last `boundary_id` before the end.

    Args:
        ids: the prompt's token ids (ending with the assistant header and its newlines).
        boundary_id: `<|header_end|>`'s id.

    Returns:
        The prefix length; 0 when there is no boundary (nothing is kept).
    """
    for index in range(len(ids) - 2, -1, -1):  # the last token always goes to generate
        if ids[index] == boundary_id:
            return index + 1
    return 0


def tiles_before(ids: Sequence[int], patch_id: int, tokens_per_tile: int, end: int) -> int:
    """How many image tiles (of `pixel_values`) belong to images within `ids[:end]`."""
    patches = sum(1 for token in ids[:end] if token == patch_id)
    return patches // tokens_per_tile
