"""Count prompt tokens with a model folder's tokenizer.json, cheaply (`tokenizers` only).

No torch, no transformers: loading takes a fraction of a second and counting is safe on a worker
pool, so the composer's context meter can count as the user types. Without a tokenizer the
count falls back to an estimate of four characters a token, and says so (`exact` is False).
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
#: Characters per token of the estimate used before (or without) a tokenizer.
CHARS_PER_TOKEN = 4
# Long texts are encoded in pieces of about this many characters, split at line ends: one
# multi-megabyte encode holds every offset of the text in memory at once.
_PIECE_CHARS = 200_000


class Counter(Protocol):
    """Anything that counts tokens: the model's tokenizer or the estimate."""

    @property
    def exact(self) -> bool:
        """True when counts come from the model's own tokenizer."""

    def count(self, text: str) -> int:
        """Tokens `text` costs (special tokens not included)."""


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per four characters, rounded up.

    Args:
        text: any text.

    Returns:
        The estimate (0 for "").
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class EstimateCounter:
    """Counts with `estimate_tokens` (no model folder, or its tokenizer is not loaded yet)."""

    exact = False

    def count(self, text: str) -> int:
        return estimate_tokens(text)


class TokenCounter:
    """Counts with the model's tokenizer (`tokenizers.Tokenizer`), thread-safe.

    Args:
        tokenizer: a loaded `tokenizers.Tokenizer`.
        source: the file it came from, for messages.
    """

    exact = True

    def __init__(self, tokenizer: Tokenizer, source: Path | None = None) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # one encode at a time keeps peak memory predictable
        self.source = source

    @classmethod
    def from_folder(cls, model_dir: Path | str) -> TokenCounter | None:
        """Load `tokenizer.json` from a model folder.

        Args:
            model_dir: the model folder.

        Returns:
            The counter, or None (logged) when the folder has no readable tokenizer.json.
        """
        path = Path(model_dir) / TOKENIZER_FILE
        if not path.is_file():
            return None
        try:
            from tokenizers import Tokenizer

            return cls(Tokenizer.from_file(str(path)), path)
        except Exception as exc:  # a damaged or foreign file: the estimate will do
            log.warning("tokenizer %s could not be loaded: %s", path, exc)
            return None

    def count(self, text: str) -> int:
        """Tokens `text` costs, without the begin-of-text token the tokenizer may add.

        Args:
            text: any text; long texts are encoded in pieces split at line ends (a split can
                shift a count by a token per piece, far below what a meter shows).

        Returns:
            The token count.
        """
        if not text:
            return 0
        with self._lock:
            return sum(
                len(self._tokenizer.encode(piece, add_special_tokens=False).ids)
                for piece in _pieces(text)
            )


def load_counter(model_dir: Path | str | None) -> Counter:
    """The best counter for a model folder: its tokenizer, else the estimate.

    Args:
        model_dir: the model folder, or None / "" when none is chosen.

    Returns:
        A `TokenCounter`, or an `EstimateCounter` when there is no usable tokenizer.
    """
    if model_dir:
        counter = TokenCounter.from_folder(model_dir)
        if counter is not None:
            return counter
    return EstimateCounter()


def _pieces(text: str) -> list[str]:
    if len(text) <= _PIECE_CHARS:
        return [text]
    pieces = []
    start = 0
    while start < len(text):
        end = start + _PIECE_CHARS
        if end < len(text):
            cut = text.rfind("\n", start + _PIECE_CHARS // 2, end)
            end = cut + 1 if cut >= 0 else end
        pieces.append(text[start:end])
        start = end
    return pieces
