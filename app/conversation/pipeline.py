"""One exchange with the model, step by step, for the window, the video panel and the CLI.

save the question → open the answer (turns built from the stored history) → generate →
checkpoint while streaming → finish with its stop reason, boxes and timings.

The steps depend on the store and the `Engine` protocol only. The window runs `generate` on its
inference worker and calls the other steps on the GUI thread (a SQLite connection belongs to one
thread); `stream_answer` is the same loop for a caller that owns the engine (the CLI).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace

from app.conversation.grounding import detect_boxes, expand_locate_turns
from app.core.compose import build_turns
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Box,
    ChatTurn,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.core.settings import Settings
from app.inference.engine import CancelToken, Engine, GenerationRequest, GenerationResult
from app.store.db import StoreError, StoreLockedError
from app.store.sessions import SessionStore

log = logging.getLogger(__name__)

#: Seconds between checkpoints of a streaming answer: a crash loses at most about this much.
CHECKPOINT_EVERY_S = 1.0
#: Why an image was not sent: the server's model reads text only.
TEXT_ONLY = "the server's model reads text only"


class Checkpoint(enum.Enum):
    """What a checkpoint did."""

    SAVED = "saved"
    UNCHANGED = "unchanged"  # nothing new since the last one
    DEFERRED = "deferred"  # another program holds the database: the next one saves it


@dataclass(frozen=True)
class SavedQuestion:
    """A question committed to a chat.

    Attributes:
        session_id: the chat (new when `created`).
        message: the stored question.
        created: whether the chat was created for it.
    """

    session_id: str
    message: Message
    created: bool


@dataclass(frozen=True)
class AnswerOutcome:
    """How an answer written by someone else than `generate` ended (chunk by chunk).

    Attributes:
        text: the text to store, or None for what was streamed.
        stop_reason: EOS, LENGTH, CANCELLED or ERROR.
        error: a sentence when it failed.
        timings: the last step's timings.
    """

    text: str | None
    stop_reason: StopReason
    error: str = ""
    timings: Timings | None = None


@dataclass
class AnswerWriter:
    """The answer being written: its stored message, the text so far, and what is saved.

    Create it with `Conversation.open_answer` or `Conversation.begin_answer`.
    """

    store: SessionStore
    message: Message
    parts: list[str] = field(default_factory=list)
    saved: str = ""
    #: Whether the user was told that checkpoints stopped saving (told once per answer).
    told_unsaved: bool = False

    @property
    def text(self) -> str:
        """Everything streamed so far."""
        return "".join(self.parts)

    def add(self, chunk: str) -> None:
        """Append a streamed chunk (saved by the next checkpoint)."""
        self.parts.append(chunk)

    def checkpoint(self) -> Checkpoint:
        """Save the text if it grew since the last save.

        Raises:
            StoreError: the text could not be saved (disk full, the answer was closed).
        """
        text = self.text
        if text == self.saved:
            return Checkpoint.UNCHANGED
        try:
            self.store.checkpoint_message(self.message.id, text)
        except StoreLockedError:
            log.info("checkpoint of message %s deferred: database locked", self.message.id)
            return Checkpoint.DEFERRED
        self.saved = text
        return Checkpoint.SAVED

    def final_message(
        self,
        reason: StopReason,
        timings: Timings | None = None,
        error: str = "",
        *,
        text: str | None = None,
    ) -> tuple[Message, list[str]]:
        """The answer as it ends, with the boxes found in it (nothing is saved yet).

        Args:
            reason: why it ended.
            timings: how long it took (None when it never ran).
            error: the sentence of a failure.
            text: the text to store instead of what was streamed (a chunked answer's notes).

        Returns:
            (the final message, one sentence per box left out).
        """
        final_text = self.text if text is None else text
        boxes, notes = self._boxes(final_text)
        final = replace(self.message, text=final_text, stop_reason=reason, timings=timings,
                        error=error, boxes=boxes)  # fmt: skip
        return final, notes

    def save(self, final: Message) -> None:
        """Save the final message for good.

        Raises:
            StoreError: it could not be saved (the last checkpoint stays).
        """
        assert final.stop_reason is not None, "only a finished answer is saved for good"
        self.store.finish_message(final.id, final.text, final.stop_reason, final.timings,
                                  final.error, boxes=final.boxes)  # fmt: skip

    def finish(
        self,
        reason: StopReason,
        timings: Timings | None = None,
        error: str = "",
        *,
        text: str | None = None,
    ) -> tuple[Message, list[str]]:
        """`final_message`, then `save`: the answer ends and is saved for good.

        Raises:
            StoreError: it could not be saved.
        """
        final, notes = self.final_message(reason, timings, error, text=text)
        self.save(final)
        return final, notes

    def _boxes(self, text: str) -> tuple[tuple[Box, ...], list[str]]:
        """Boxes in pixels of the images of the question answered; none if it cannot be read."""
        if not text:
            return (), []
        try:
            history = self.store.messages(self.message.session_id)
        except StoreError as exc:
            log.warning("boxes of message %s not parsed: %s", self.message.id, exc.message)
            return (), []
        if all(m.id != self.message.id for m in history):
            history = [*history, replace(self.message, text=text)]
        boxes, notes = detect_boxes(history, self.message.id, text)
        return tuple(boxes), notes


@dataclass(frozen=True)
class OpenedAnswer:
    """An answer opened after the question: the history it follows and the prompt's turns."""

    history: list[Message]
    turns: tuple[ChatTurn, ...]
    writer: AnswerWriter


class Conversation:
    """The steps of one exchange over a session store.

    Args:
        store: the open session store.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def save_question(
        self,
        session_id: str | None,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        replacing: str | None = None,
        used: bool = False,
    ) -> SavedQuestion:
        """Commit a question (to a new chat when `session_id` is None).

        Args:
            session_id: the chat, or None to create one.
            text: the question.
            attachments: what was sent with it.
            replacing: an earlier message this one replaces (it and what followed are hidden).
            used: mark every attachment as used (the video panel sends exactly what it shows).

        Raises:
            StoreError: nothing was saved.
        """
        if used:
            attachments = [replace(a, status=AttachmentStatus.USED) for a in attachments]
        if replacing is not None:
            self.store.supersede_from(replacing)
        created = session_id is None
        target = session_id or self.store.create_session().id
        message = self.store.add_user_message(target, text, attachments)
        return SavedQuestion(target, message, created)

    def open_answer(self, session_id: str, *, images: bool = True) -> OpenedAnswer | None:
        """Build the prompt from the chat's stored history and open the answer to it.

        Attachments that the prompt used or skipped are marked so on the stored question.

        Args:
            session_id: the chat.
            images: False when the engine reads text only (a server's text model): images
                are left out and marked skipped, saying why.

        Returns:
            The answer, or None when the chat does not end with a question.

        Raises:
            StoreError: the history could not be read or the answer not opened.
        """
        history = self.store.messages(session_id)
        turns, statuses = build_turns(history, self.store.blobs.path)
        turns = expand_locate_turns(turns)  # "Locate: x" reaches the model as its grounding ask
        details: dict[str, str] = {}
        if not images:
            turns = tuple(replace(t, images=()) for t in turns)
            for message in history:
                for a in message.attachments:
                    if a.kind is AttachmentKind.IMAGE and a.sha256 in statuses:
                        statuses[a.sha256] = AttachmentStatus.SKIPPED
                        details[a.sha256] = TEXT_ONLY
        history = self._record_statuses(history, statuses, details)
        if not history or history[-1].role is not Role.USER:
            return None
        return OpenedAnswer(history, turns, self.begin_answer(session_id))

    def begin_answer(self, session_id: str) -> AnswerWriter:
        """Open an answer whose prompt the caller builds (chunk by chunk, a video clip).

        Raises:
            StoreError: the answer could not be opened.
        """
        return AnswerWriter(self.store, self.store.begin_assistant_message(session_id))

    def _record_statuses(
        self,
        history: Sequence[Message],
        statuses: dict[str, AttachmentStatus],
        details: dict[str, str],
    ) -> list[Message]:
        """Write used/skipped (and why) onto the attachments that changed; the new history."""
        updated = []
        for message in history:
            new = tuple(
                replace(a, status=statuses[a.sha256], detail=details.get(a.sha256 or "", a.detail))
                if a.sha256 in statuses
                and (a.status, a.detail) != (statuses[a.sha256], details.get(a.sha256, a.detail))
                else a
                for a in message.attachments
            )
            if new != message.attachments:
                self.store.update_attachments(message.id, new)
                message = replace(message, attachments=new)
            updated.append(message)
        return updated


def request_for(
    turns: Sequence[ChatTurn], settings: Settings, max_new_tokens: int | None = None
) -> GenerationRequest:
    """The generation request for `turns` with the sampling settings in force."""
    return GenerationRequest(
        turns=tuple(turns),
        max_new_tokens=max_new_tokens or settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )


def stream_answer(
    engine: Engine,
    request: GenerationRequest,
    writer: AnswerWriter,
    cancel: CancelToken,
    *,
    on_chunk: Callable[[str], None] | None = None,
    on_deferred: Callable[[], None] | None = None,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
) -> GenerationResult:
    """Generate into `writer`, checkpointing about once a second, on the caller's thread.

    The stream is always closed on the way out, which stops and joins the engine's generation
    thread: a `StoreError` (disk full) must not leave it running when the process exits.

    Args:
        engine: a loaded engine.
        request: what to answer.
        writer: the open answer.
        cancel: stops the answer within a decode step.
        on_chunk: sees each chunk as it comes (printing it).
        on_deferred: called when a checkpoint found the database locked by another program.
        checkpoint_every_s: seconds between checkpoints.

    Returns:
        How generation ended; `finish` is left to the caller (it adds the load time).

    Raises:
        EngineError: generation failed.
        StoreError: a checkpoint could not be saved.
    """
    stream: Generator[str, None, GenerationResult] = engine.generate(request, cancel)
    last = time.monotonic()
    try:
        while True:
            try:
                chunk = next(stream)
            except StopIteration as stop:
                return stop.value
            writer.add(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
            if time.monotonic() - last >= checkpoint_every_s:
                last = time.monotonic()
                if writer.checkpoint() is Checkpoint.DEFERRED and on_deferred is not None:
                    on_deferred()
    finally:
        stream.close()
