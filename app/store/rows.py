"""Turn database rows into the shared dataclasses, refusing anything that does not decode."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, fields
from enum import Enum
from typing import Any, TypeVar

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Message,
    Role,
    SessionInfo,
    StopReason,
    Timings,
)

SESSION_COLUMNS = "s.id, s.title, s.created_at, s.updated_at, s.trashed_at"
MESSAGE_COLUMNS = "id, session_id, role, text, created_at, stop_reason, timings, error"
ATTACHMENT_COLUMNS = (
    "message_id, name, kind, status, detail, sha256, mime, size, width, height, source_path, tokens"
)


E = TypeVar("E", bound=Enum)


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

    Raises:
        BadRowError: a bad role or stop reason, broken timings JSON, or a wrong type.
    """
    mid, sid, role, text, created, stop, timings, error = row
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
    )
