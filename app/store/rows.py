"""Turn database rows into the shared dataclasses, refusing anything that does not decode."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, fields
from enum import Enum
from typing import Any, TypeVar

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Box,
    Message,
    Role,
    SessionInfo,
    StopReason,
    Timings,
)

SESSION_COLUMNS = "s.id, s.title, s.created_at, s.updated_at, s.trashed_at"
MESSAGE_COLUMNS = "id, session_id, role, text, created_at, stop_reason, timings, error, boxes"
ATTACHMENT_COLUMNS = (
    "message_id, name, kind, status, detail, sha256, mime, size, width, height, source_path, tokens"
)


E = TypeVar("E", bound=Enum)

# Log ids and reasons only: labels are the model's words about the user's pictures.
log = logging.getLogger(__name__)


class BadRowError(ValueError):
    """A stored row that cannot become a dataclass (logged and skipped by the caller)."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRowError(f"{what} is {type(value).__name__}, not text")
    return value


def _number(value: Any, what: str) -> float:
    # SQLite is dynamically typed: a REAL column can still hold text after a raw write.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRowError(f"{what} is {type(value).__name__}, not a number")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRowError(f"{what} is {type(value).__name__}, not an integer")
    return value


def _enum(kind: type[E], value: Any, what: str) -> E:
    # The value stays out of the message: after a damaged write it could be message text.
    try:
        return kind(value)
    except ValueError:
        raise BadRowError(f"{what} is not a known {kind.__name__}") from None


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def session_from_row(row: sqlite3.Row | tuple[Any, ...], message_count: int) -> SessionInfo:
    """Decode `SESSION_COLUMNS` (+ a visible message count) into a `SessionInfo`.

    Raises:
        BadRowError: a value has the wrong type.
    """
    sid, title, created, updated, trashed = row
    return SessionInfo(
        id=_text(sid, "id"),
        title=_text(title, "title"),
        created_at=_number(created, "created_at"),
        updated_at=_number(updated, "updated_at"),
        message_count=message_count,
        trashed_at=None if trashed is None else _number(trashed, "trashed_at"),
    )


def timings_to_json(timings: Timings | None) -> str | None:
    """Encode timings for the JSON column."""
    return None if timings is None else json.dumps(asdict(timings))


def timings_from_json(value: Any) -> Timings | None:
    """Decode the timings JSON column.

    Raises:
        BadRowError: the JSON is broken or has unknown fields.
    """
    if value is None:
        return None
    try:
        data = json.loads(_text(value, "timings"))
    except json.JSONDecodeError as exc:
        raise BadRowError(f"timings are not valid JSON ({exc.msg})") from exc
    return timings_from_dict(data)


def timings_from_dict(data: Any) -> Timings:
    """Build `Timings` from a plain dict, checking every field's type.

    Raises:
        BadRowError: not an object, an unknown field, or a wrong type.
    """
    if not isinstance(data, dict):
        raise BadRowError("timings are not an object")
    known = {f.name: f.type for f in fields(Timings)}
    unknown = set(data) - set(known)
    if unknown:
        raise BadRowError(f"timings have unknown fields {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _int(value, name) if known[name] == "int" else _number(value, name)
    return Timings(**values)


def attachment_from_row(row: tuple[Any, ...]) -> tuple[str, Attachment]:
    """Decode `ATTACHMENT_COLUMNS` into (message id, `Attachment`).

    Raises:
        BadRowError: a value has the wrong type or an unknown kind/status.
    """
    mid, name, kind, status, detail, sha, mime, size, width, height, source, tokens = row
    return _text(mid, "message_id"), Attachment(
        name=_text(name, "name"),
        kind=_enum(AttachmentKind, kind, "kind"),
        status=_enum(AttachmentStatus, status, "status"),
        detail=_text(detail, "detail"),
        sha256=None if sha is None else _text(sha, "sha256"),
        mime=_text(mime, "mime"),
        size=_int(size, "size"),
        width=_optional_int(width, "width"),
        height=_optional_int(height, "height"),
        source_path=_text(source, "source_path"),
        tokens=_int(tokens, "tokens"),
    )


def attachment_values(message_id: str, position: int, a: Attachment) -> tuple[Any, ...]:
    """Return the INSERT values for one attachment row (see `ATTACHMENT_INSERT`)."""
    return (
        message_id, position, a.name, AttachmentKind(a.kind).value,
        AttachmentStatus(a.status).value, a.detail, a.sha256, a.mime, a.size, a.width, a.height,
        a.source_path, a.tokens,
    )  # fmt: skip


ATTACHMENT_INSERT = (
    "INSERT INTO message_attachments (message_id, position, name, kind, status, detail, sha256,"
    " mime, size, width, height, source_path, tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def message_from_row(row: tuple[Any, ...], attachments: tuple[Attachment, ...]) -> Message:
    """Decode `MESSAGE_COLUMNS` into a `Message`.

    Boxes that do not decode are left out (and logged by `boxes_from_json`); they never make
    the message unreadable.

    Raises:
        BadRowError: a bad role or stop reason, broken timings JSON, or a wrong type.
    """
    mid, sid, role, text, created, stop, timings, error, boxes = row
    return Message(
        id=_text(mid, "id"),
        session_id=_text(sid, "session_id"),
        role=_enum(Role, role, "role"),
        text=_text(text, "text"),
        created_at=_number(created, "created_at"),
        attachments=attachments,
        stop_reason=None if stop is None else _enum(StopReason, stop, "stop_reason"),
        timings=timings_from_json(timings),
        error=_text(error, "error"),
        boxes=boxes_from_json(boxes, mid),
    )


def check_box(box: Box) -> Box:
    """Refuse a box that breaks the grounding invariant as far as it can be checked here.

    The image's size is not known to the store, so only types, order and sign are checked.

    Raises:
        ValueError: a sentence naming the box and the problem.
    """
    numbers = (box.image, box.x1, box.y1, box.x2, box.y2)
    if not isinstance(box.label, str) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in numbers
    ):
        raise ValueError(f"The box {box!r} needs a text label and integer coordinates.")
    if box.image < 0 or box.x1 < 0 or box.y1 < 0 or box.x2 <= box.x1 or box.y2 <= box.y1:
        raise ValueError(f"The box {box.label!r} is not a region: {box!r}.")
    return box


def box_to_dict(box: Box) -> dict[str, Any]:
    """A box as a plain dict (the JSON column, exports and `ask --json` share this shape)."""
    return {"label": box.label, "image": box.image, "x1": box.x1, "y1": box.y1, "x2": box.x2,
            "y2": box.y2}  # fmt: skip


def box_from_dict(data: Any) -> Box:
    """Build a `Box` from a plain dict, checking every field.

    Raises:
        BadRowError: not an object, a missing field, a wrong type or not a region.
    """
    if not isinstance(data, dict):
        raise BadRowError("box is not an object")
    box = Box(
        label=_text(data.get("label"), "label"),
        image=_int(data.get("image"), "image"),
        x1=_int(data.get("x1"), "x1"),
        y1=_int(data.get("y1"), "y1"),
        x2=_int(data.get("x2"), "x2"),
        y2=_int(data.get("y2"), "y2"),
    )
    try:
        return check_box(box)
    except ValueError:
        # The sentence would quote the label: keep the model's words out of the log.
        raise BadRowError("box is not a region (negative, empty or reversed)") from None


def boxes_to_json(boxes: Sequence[Box]) -> str | None:
    """Encode boxes for the JSON column (None for none).

    Raises:
        ValueError: a box is not a region (see `check_box`).
    """
    if not boxes:
        return None
    return json.dumps([box_to_dict(check_box(b)) for b in boxes], ensure_ascii=False)


def boxes_from_json(value: Any, message_id: Any = "?") -> tuple[Box, ...]:
    """Decode the boxes column, skipping (and logging) whatever does not decode."""
    if value is None:
        return ()
    try:
        items = json.loads(value) if isinstance(value, str) else None
    except (json.JSONDecodeError, RecursionError):
        items = None
    if not isinstance(items, list):
        log.warning("skipped unreadable boxes of message %r", message_id)
        return ()
    boxes = []
    for position, item in enumerate(items):
        try:
            boxes.append(box_from_dict(item))
        except BadRowError as exc:
            log.warning("skipped box %d of message %r: %s", position, message_id, exc)
    return tuple(boxes)
