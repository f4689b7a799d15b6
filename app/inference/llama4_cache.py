"""Multi-turn without re-prefill: the KV cache of the previous prompt, kept for the next turn.

The engine keeps the cache of the last prompt up to its final `<|header_end|>`. That point is a
special token, so tokenizing the next, longer conversation reproduces exactly those ids: the next
turn prefills only what follows (the previous answer, the new user turn and its new images).
When the history changed (regenerate after an edit, another session) the ids differ and the engine
falls back to a full prefill. The kept cache is never handed to `generate` itself: generation works
on a deep copy, because decoding appends to it in place.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


class PrefixCache:
    """One conversation prefix (token ids) and the KV cache that encodes it."""

    def __init__(self) -> None:
        self.ids: tuple[int, ...] = ()
        self._cache: Any = None

    def reusable(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` the kept cache already encodes (0: none usable)."""
        n = len(self.ids)
        if self._cache is None or n == 0 or len(ids) < n or tuple(ids[:n]) != self.ids:
            return 0
        return n

    def copy(self) -> Any:
        """A deep copy of the kept cache, for a generation to extend."""
        return copy.deepcopy(self._cache)

    def store(self, ids: Sequence[int], cache: Any) -> None:
        """Keep a deep copy of `cache`, which encodes exactly `ids`."""
        self.clear()
        self._cache = copy.deepcopy(cache)
        self.ids = tuple(ids)

    def clear(self) -> None:
        """Drop the kept cache (its memory is freed once nothing else refers to it)."""
        self._cache = None
        self.ids = ()


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
