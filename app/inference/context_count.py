"""What the next message would cost in context: text, images, history and answer (no Qt).

Runs on the context meter's pool thread. The conversation so far and the attached documents are
counted once and cached by content, so each keystroke only re-counts the typed text.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.compose import DEFAULT_MAX_IMAGES, build_turns
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role
from app.inference.budget import ImageTiling, context_capacity, image_tokens
from app.inference.engine import ModelError
from app.inference.model_json import read_model_json
from app.inference.token_counter import Counter, EstimateCounter, TokenCounter

log = logging.getLogger(__name__)

#: Chat-template tokens around each turn (<|header_start|>role<|header_end|>\n\n … <|eot|>).
TURN_OVERHEAD = 6
#: <|begin_of_text|> and the assistant header the prompt ends with.
PROMPT_OVERHEAD = 5
_USABLE = (AttachmentStatus.READY, AttachmentStatus.USED)
_CACHE_ENTRIES = 512


@dataclass(frozen=True)
class ContextInputs:
    """A snapshot of what a send would carry, taken on the GUI thread.

    Attributes:
        history: the visible messages a send would follow.
        draft_text: what is typed.
        draft_attachments: the attachments a send would carry.
        max_new_tokens: room kept for the answer.
        model_dir: the model folder ("" when none is chosen).
        free_bytes: accelerator memory free for the cache (None: the engine reported none).
        server_context: a server's context in tokens (its `max_model_len`), when the answers
            come from one; it is the capacity, whatever a model folder says.
    """

    history: tuple[Message, ...]
    draft_text: str
    draft_attachments: tuple[Attachment, ...]
    max_new_tokens: int
    model_dir: str = ""
    free_bytes: int | None = None
    server_context: int | None = None


@dataclass(frozen=True)
class ContextEstimate:
    """What the next message would cost, against what fits.

    Attributes:
        history_tokens: the conversation so far (text, documents, template).
        text_tokens: the typed text and the attached documents and text files.
        image_tokens: the images that would go in (Scout keeps the newest five).
        answer_tokens: room kept for the answer (max new tokens).
        capacity: the usable context in tokens, None when no model folder says it.
        capacity_source: what limits it ("the model's context window", "the GPU's free memory").
        exact: True when counted with the model's tokenizer; False for the ~ estimate.
        has_documents: the draft carries documents or text files (it can go chunk by chunk).
    """

    history_tokens: int
    text_tokens: int
    image_tokens: int
    answer_tokens: int
    capacity: int | None
    capacity_source: str
    exact: bool
    has_documents: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Tokens the prompt would take."""
        return self.history_tokens + self.text_tokens + self.image_tokens

    @property
    def need(self) -> int:
        """Prompt plus the room kept for the answer."""
        return self.prompt_tokens + self.answer_tokens

    @property
    def over(self) -> int:
        """Tokens beyond the capacity (0 when it fits or the capacity is unknown)."""
        return max(0, self.need - self.capacity) if self.capacity is not None else 0


@dataclass(frozen=True)
class ModelFacts:
    """What the meter needs from a model folder: its tokenizer, tiling and text config."""

    model_dir: str
    counter: Counter
    tiling: ImageTiling
    text_config: dict[str, Any]


def read_model_facts(model_dir: str, *, load_tokenizer: bool = True) -> ModelFacts:
    """Read a model folder's tokenizer (optionally), image tiling and text config.

    Args:
        model_dir: the folder ("" gives Scout's tiling and the estimate).
        load_tokenizer: False keeps the estimate (fast; the tokenizer loads later).

    Returns:
        The facts; anything unreadable falls back to the estimate and Scout's defaults.
    """
    if not model_dir:
        return ModelFacts("", EstimateCounter(), ImageTiling(), {})
    folder = Path(model_dir)
    counter: Counter | None = TokenCounter.from_folder(folder) if load_tokenizer else None
    try:
        config = read_model_json(folder / "config.json")
    except ModelError:  # unreadable or hostile (nested 100,000 deep): the meter estimates
        config = {}
    text_config = config.get("text_config") if isinstance(config, dict) else None
    if not isinstance(text_config, dict):
        text_config = config if isinstance(config, dict) else {}
    return ModelFacts(
        model_dir, counter or EstimateCounter(), ImageTiling.from_folder(folder), text_config
    )


class ContextCounter:
    """Measures `ContextInputs`; keep one per meter and call it from one thread only.

    Args:
        blob_path: maps a blob's SHA-256 to its file (`BlobStore.path`).
    """

    def __init__(self, blob_path: Callable[[str], Path]) -> None:
        self._blob_path = blob_path
        self.facts = read_model_facts("", load_tokenizer=False)
        self._counts: OrderedDict[tuple[bool, str], int] = OrderedDict()
        self._blocks: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._history: tuple[tuple[object, ...], int] | None = None
        self.last_seconds = 0.0

    def use_model(self, facts: ModelFacts) -> None:
        """Count with another model's tokenizer from now on (forgets cached counts)."""
        self.facts = facts
        self._counts.clear()
        self._history = None

    def count(self, text: str) -> int:
        """Tokens of `text` with the current counter, cached by content."""
        if not text:
            return 0
        key = (self.facts.counter.exact, hashlib.sha1(text.encode("utf-8", "replace")).hexdigest())
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        value = self.facts.counter.count(text)
        self._counts[key] = value
        if len(self._counts) > _CACHE_ENTRIES:
            self._counts.popitem(last=False)
        return value

    def measure(self, inputs: ContextInputs) -> ContextEstimate:
        """Count what a send of `inputs` would cost, and what fits.

        Args:
            inputs: the snapshot.

        Returns:
            The estimate.
        """
        started = time.perf_counter()
        history = self._history_tokens(inputs.history)
        text = self.count(inputs.draft_text.strip())
        block = self._attachments_block(inputs.draft_attachments)
        text += self.count(block) + TURN_OVERHEAD + PROMPT_OVERHEAD
        images = self._image_tokens([*inputs.history, _draft(inputs)])
        capacity, source = self._capacity(inputs, history + text + images)
        self.last_seconds = time.perf_counter() - started
        return ContextEstimate(
            history_tokens=history,
            text_tokens=text,
            image_tokens=images,
            answer_tokens=inputs.max_new_tokens,
            capacity=capacity,
            capacity_source=source,
            exact=self.facts.counter.exact,
            has_documents=any(
                a.kind in (AttachmentKind.DOCUMENT, AttachmentKind.TEXT) and a.status in _USABLE
                for a in inputs.draft_attachments
            ),
        )

    def _history_tokens(self, history: Sequence[Message]) -> int:
        key = tuple(
            (m.id, m.text, tuple((a.sha256, a.status) for a in m.attachments)) for m in history
        )
        cached = self._history
        if cached is not None and cached[0] == key:
            return cached[1]
        turns, _statuses = build_turns(history, self._blob_path) if history else ((), {})
        total = sum(self.count(turn.text) + TURN_OVERHEAD for turn in turns)
        self._history = (key, total)
        return total

    def _attachments_block(self, attachments: Sequence[Attachment]) -> str:
        """The text the attachments add to the message (documents, text files, captions)."""
        key = tuple(f"{a.sha256}:{a.kind}:{a.name}" for a in attachments if a.status in _USABLE)
        if not key:
            return ""
        if key in self._blocks:
            return self._blocks[key]
        draft = Message("draft", "", Role.USER, "", 0.0, tuple(attachments))
        turns, _statuses = build_turns([draft], self._blob_path)
        block = turns[0].text if turns else ""
        self._blocks[key] = block
        if len(self._blocks) > 16:
            self._blocks.popitem(last=False)
        return block

    def _image_tokens(self, messages: Sequence[Message]) -> int:
        images = [
            a
            for m in messages
            if not (m.role is Role.ASSISTANT and not m.text.strip())
            for a in m.attachments
            if a.kind is AttachmentKind.IMAGE and a.status in _USABLE and a.sha256
        ]
        kept = images[-DEFAULT_MAX_IMAGES:]
        return sum(
            image_tokens(a.width, a.height, self.facts.tiling) for a in kept if a.width and a.height
        )

    def _capacity(self, inputs: ContextInputs, prompt: int) -> tuple[int | None, str]:
        if inputs.server_context:
            return inputs.server_context, "the server's context (max_model_len)"
        limit = self.facts.text_config.get("max_position_embeddings")
        if not inputs.model_dir or not isinstance(limit, int) or limit <= 0:
            return None, "unknown until a model folder is chosen"
        if inputs.free_bytes is not None:
            fits = context_capacity(self.facts.text_config, inputs.free_bytes, prompt)
            if fits < limit:
                return fits, f"the GPU's free memory ({inputs.free_bytes / 1e9:.1f} GB)"
        return limit, "the model's context window"


def _draft(inputs: ContextInputs) -> Message:
    return Message("draft", "", Role.USER, inputs.draft_text, 0.0, inputs.draft_attachments)
