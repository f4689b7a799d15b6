"""Turn database rows into the shared dataclasses, refusing anything that does not decode.

A value of the right type but outside the range the store keeps (see `LATEST_TIME`, `MAX_COUNT`)
is read back clamped or as unknown, with a log line: older versions imported such values, and one
must never make a chat unlistable or unexportable.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
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


#: The span of times the store keeps, in epoch seconds: 1970 up to 9999-12-30 UTC, a day short of
#: the last one `datetime` can show, so that the local time in every zone still fits.
EARLIEST_TIME = 0.0
LATEST_TIME = 253_402_128_000.0
#: The largest count, pixel size or index the store keeps (tokens, image sides, box corners): no
#: real value comes near it, and Qt and Pillow hold these in 32-bit ints.
MAX_COUNT = 2**31 - 1
#: SQLite's largest INTEGER (attachment sizes in bytes).
MAX_INTEGER = 2**63 - 1

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


def _time(value: Any, what: str, row_id: Any) -> float:
    """A stored time, clamped into EARLIEST_TIME..LATEST_TIME (NaN reads as the earliest)."""
    number = _number(value, what)
    if EARLIEST_TIME <= number <= LATEST_TIME:
        return number
    clamped = LATEST_TIME if number > LATEST_TIME else EARLIEST_TIME
    log.warning("row %r: %s is out of range; read as %s", row_id, what, clamped)
    return clamped


def _in_range(value: int | float | None, low: float, high: float, what: str, row_id: Any) -> bool:
    """Whether a decoded number lies in low..high (None passes); logs the ones that do not."""
    if value is None or low <= value <= high:  # False for NaN
        return True
    log.warning("row %r: %s is out of range; read as unknown", row_id, what)
    return False


def session_from_row(row: sqlite3.Row | tuple[Any, ...], message_count: int) -> SessionInfo:
    """Decode `SESSION_COLUMNS` (+ a visible message count) into a `SessionInfo`.

    Raises:
        BadRowError: a value has the wrong type.
    """
    sid, title, created, updated, trashed = row
    return SessionInfo(
        id=_text(sid, "id"),
        title=_text(title, "title"),
        created_at=_time(created, "created_at", sid),
        updated_at=_time(updated, "updated_at", sid),
        message_count=message_count,
        trashed_at=None if trashed is None else _time(trashed, "trashed_at", sid),
    )


def timings_to_json(timings: Timings | None) -> str | None:
    """Encode timings for the JSON column."""
    return None if timings is None else json.dumps(asdict(timings))


def timings_from_json(value: Any, message_id: Any = "?") -> Timings | None:
    """Decode the timings JSON column.

    Raises:
        BadRowError: the JSON is broken or has unknown fields.
    """
    if value is None:
        return None
    try:
        data = json.loads(_text(value, "timings"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadRowError("timings are not valid JSON") from exc
    return timings_from_dict(data, message_id)


def timings_from_dict(data: Any, message_id: Any = "?") -> Timings:
    """Build `Timings` from a plain dict, checking every field's type.

    A negative, non-finite or absurd figure (older versions stored them) reads as 0, unknown.

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
        whole = known[name] == "int"
        number = _int(value, name) if whole else _number(value, name)
        high = MAX_COUNT if whole else sys.float_info.max  # floats: finite
        fits = _in_range(number, 0, high, f"timings.{name}", message_id)
        values[name] = number if fits else type(number)(0)
    return Timings(**values)


def attachment_from_row(row: tuple[Any, ...]) -> tuple[str, Attachment]:
    """Decode `ATTACHMENT_COLUMNS` into (message id, `Attachment`).

    Raises:
        BadRowError: a value has the wrong type or an unknown kind/status.
    """
    mid, name, kind, status, detail, sha, mime, size, width, height, source, tokens = row
    size, tokens = _int(size, "size"), _int(tokens, "tokens")
    width, height = _optional_int(width, "width"), _optional_int(height, "height")
    return _text(mid, "message_id"), Attachment(
        name=_text(name, "name"),
        kind=_enum(AttachmentKind, kind, "kind"),
        status=_enum(AttachmentStatus, status, "status"),
        detail=_text(detail, "detail"),
        sha256=None if sha is None else _text(sha, "sha256"),
        mime=_text(mime, "mime"),
        size=size if _in_range(size, 0, MAX_INTEGER, "size", mid) else 0,
        width=width if _in_range(width, 0, MAX_COUNT, "width", mid) else None,
        height=height if _in_range(height, 0, MAX_COUNT, "height", mid) else None,
        source_path=_text(source, "source_path"),
        tokens=tokens if _in_range(tokens, 0, MAX_COUNT, "tokens", mid) else 0,
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
        created_at=_time(created, "created_at", mid),
        attachments=attachments,
        stop_reason=None if stop is None else _enum(StopReason, stop, "stop_reason"),
        timings=timings_from_json(timings, mid),
        error=_text(error, "error"),
        boxes=boxes_from_json(boxes, mid),
    )


def check_box(box: Box) -> Box:
    """Refuse a box that breaks the grounding invariant as far as it can be checked here.

    The image's size is not known to the store, so only types, order, sign and `MAX_COUNT` are
    checked.

    Raises:
        ValueError: a sentence naming the box and the problem.
    """
    numbers = (box.image, box.x1, box.y1, box.x2, box.y2)
    if not isinstance(box.label, str) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in numbers
    ):
        raise ValueError(f"The box {box!r} needs a text label and integer coordinates.")
    across = 0 <= box.x1 < box.x2 <= MAX_COUNT
    down = 0 <= box.y1 < box.y2 <= MAX_COUNT
    if not (across and down and 0 <= box.image <= MAX_COUNT):
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
        raise BadRowError("box is not a region (negative, empty, reversed or huge)") from None


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
