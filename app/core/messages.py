"""Plain data that every layer shares: sessions, messages, attachments and how answers ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    """Who wrote a message."""

    USER = "user"
    ASSISTANT = "assistant"


class StopReason(StrEnum):
    """Why an answer ended (the values are part of the CLI JSON contract)."""

    EOS = "eos"
    LENGTH = "length"
    TIME = "time"
    CANCELLED = "cancelled"
    ERROR = "error"


class AttachmentKind(StrEnum):
    """What a dropped file turned out to be, judged by its content."""

    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    TEXT = "text"


class AttachmentStatus(StrEnum):
    """What became of an attachment; shown on its chip and in `ask --json`."""

    READY = "ready"  # ingested, not yet sent
    USED = "used"  # went into a prompt
    SKIPPED = "skipped"  # deliberately left out (over a limit, too many images, ...)
    ERROR = "error"  # unusable; `detail` says why


@dataclass(frozen=True)
class Attachment:
    """One file attached to a message.

    Attributes:
        name: the file name the user saw (no directories: paths stay private on export).
        kind: what the content is.
        status: what became of it.
        detail: a plain sentence for the user ("corrupt PNG: ...", "6th image: Scout takes 5").
        sha256: key of the stored blob (None when nothing usable was stored).
        mime: the sniffed media type.
        size: bytes of the stored blob.
        width: pixels of the upright image (images only).
        height: pixels of the upright image (images only).
        source_path: where the file came from on this machine (kept for the CLI's JSON).
        tokens: prompt tokens it cost, once known.
    """

    name: str
    kind: AttachmentKind
    status: AttachmentStatus
    detail: str = ""
    sha256: str | None = None
    mime: str = "application/octet-stream"
    size: int = 0
    width: int | None = None
    height: int | None = None
    source_path: str = ""
    tokens: int = 0


@dataclass(frozen=True)
class Timings:
    """How fast an answer came, as the status bar and `ask --json` report it."""

    load_s: float = 0.0
    ttft_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Box:
    """A region the model located, in integer pixels of the upright original image.

    Invariant (the grounding contract): 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height.

    Attributes:
        label: what the box shows, in the model's words.
        image: index among the message's images (0 when there is one).
    """

    label: str
    image: int
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Message:
    """One message of a session, as stored."""

    id: str
    session_id: str
    role: Role
    text: str
    created_at: float
    attachments: tuple[Attachment, ...] = ()
    stop_reason: StopReason | None = None  # None while an answer is still streaming
    timings: Timings | None = None
    error: str = ""
    boxes: tuple[Box, ...] = ()  # regions located in this (assistant) message's images


@dataclass(frozen=True)
class SessionInfo:
    """A row of the session list."""

    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0
    trashed_at: float | None = None


@dataclass(frozen=True)
class SearchHit:
    """A message that matched a full-text search, with a short highlighted snippet."""

    session_id: str
    message_id: str
    session_title: str
    snippet: str


@dataclass(frozen=True)
class ChatTurn:
    """One turn of the conversation as the engine sees it.

    Attributes:
        role: who spoke.
        text: what was said (document text already inlined by the composer).
        images: upright RGB image files (stored blobs) that belong to this turn, in order.
    """

    role: Role
    text: str
    images: tuple[Path, ...] = ()
