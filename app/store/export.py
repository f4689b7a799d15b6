"""Export a chat as Markdown, HTML or a versioned JSON document, and import that JSON back."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from app import __version__
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Message,
    Role,
    SessionInfo,
    StopReason,
)
from app.store.db import StoreError
from app.store.export_pages import BlobReader, render_html, render_markdown
from app.store.files import write_atomically
from app.store.references import companion_shas
from app.store.rows import BadRowError, box_from_dict, box_to_dict, timings_from_dict
from app.store.sessions import NotFoundError, SessionStore

log = logging.getLogger(__name__)

#: The `format` marker of a JSON export, and the newest document version this code reads.
FORMAT = "scout-desk-session"
VERSION = 2  # 2: messages carry "boxes" (version 1 files import with none)
_SHA256 = re.compile(r"[0-9a-f]{64}")

ExportFormat = Literal["md", "html", "json"]


def export_session(
    store: SessionStore, session_id: str, fmt: ExportFormat | str, dest: Path
) -> None:
    """Write one chat to a file, atomically.

    Args:
        store: the open store.
        session_id: the chat.
        fmt: "md" (images as data URIs), "html" (standalone, all text escaped) or "json"
            (everything, blobs in base64, for `import_session`).
        dest: the file to write (replaced if it exists).

    Raises:
        StoreError: an unknown chat or format, or `dest` cannot be written.
    """
    session = store.get_session(session_id)
    if session is None:
        raise NotFoundError(f"There is no session with id {session_id!r}.")
    messages = store.messages(session_id)

    def read_blob(sha: str) -> bytes | None:
        try:
            return store.blobs.read(sha)
        except (StoreError, ValueError) as exc:
            log.warning("export of %s: blob %s unreadable: %s", session_id, sha, exc)
            return None

    if fmt == "md":
        data = render_markdown(session, messages, read_blob).encode("utf-8")
    elif fmt == "html":
        data = render_html(session, messages, read_blob).encode("utf-8")
    elif fmt == "json":
        document = _json_document(session, messages, read_blob)
        # A document's PDF is named inside its JSON, not by an attachment: carry it along so
        # page images still render after an import.
        for a in (a for m in messages for a in m.attachments):
            for sha in companion_shas(a.kind, a.sha256, store.blobs):
                data = read_blob(sha)
                if data is not None:
                    document["blobs"].setdefault(sha, base64.b64encode(data).decode("ascii"))
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
    else:
        raise StoreError(f"Unknown export format {fmt!r}; use md, html or json.")
    write_atomically(Path(dest), data)


def _json_document(
    session: SessionInfo, messages: list[Message], read_blob: BlobReader
) -> dict[str, Any]:
    """Build the JSON export document (see `import_session` for the reader)."""
    blobs: dict[str, str] = {}
    out_messages = []
    for m in messages:
        attachments = []
        for a in m.attachments:
            sha = a.sha256
            if sha is not None and sha not in blobs:
                data = read_blob(sha)
                if data is None:
                    sha = None  # the file is gone: export the record, honestly without content
                else:
                    blobs[sha] = base64.b64encode(data).decode("ascii")
            # source_path stays out: where a file lay on this machine is private.
            attachments.append(
                {
                    "name": a.name,
                    "kind": a.kind.value,
                    "status": a.status.value,
                    "detail": a.detail,
                    "sha256": sha,
                    "mime": a.mime,
                    "size": a.size,
                    "width": a.width,
                    "height": a.height,
                    "tokens": a.tokens,
                }
            )
        out_messages.append(
            {
                "role": m.role.value,
                "text": m.text,
                "created_at": m.created_at,
                "stop_reason": m.stop_reason.value if m.stop_reason else None,
                "timings": None if m.timings is None else asdict(m.timings),
                "error": m.error,
                "attachments": attachments,
                "boxes": [box_to_dict(b) for b in m.boxes],
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "app_version": __version__,
        "exported_at": time.time(),
        "session": {
            "title": session.title,
            "created_at": session.created_at,
            "updated_at": session.updated_at,
        },
        "messages": out_messages,
        "blobs": blobs,
    }


class _InvalidError(ValueError):
    """A JSON export that does not have the expected shape (says where)."""


def _get(obj: dict, key: str, kind: type, where: str, optional: bool = False) -> Any:
    """Return `obj[key]` checked to be a `kind` (ints pass as floats); None only if optional."""
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise _InvalidError(f"{where}.{key} is missing")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _InvalidError(f"{where}.{key} should be {kind.__name__}, not {type(value).__name__}")
    return value


def _attachment(obj: Any, where: str) -> Attachment:
    if not isinstance(obj, dict):
        raise _InvalidError(f"{where} is not an object")
    try:
        kind = AttachmentKind(_get(obj, "kind", str, where))
        status = AttachmentStatus(_get(obj, "status", str, where))
    except ValueError as exc:
        raise _InvalidError(f"{where}: {exc}") from exc
    sha = _get(obj, "sha256", str, where, optional=True)
    if sha is not None and not _SHA256.fullmatch(sha):
        raise _InvalidError(f"{where}.sha256 is not a SHA-256 hex digest")
    return Attachment(
        name=_get(obj, "name", str, where),
        kind=kind,
        status=status,
        detail=_get(obj, "detail", str, where, optional=True) or "",
        sha256=sha,
        mime=_get(obj, "mime", str, where, optional=True) or "application/octet-stream",
        size=_get(obj, "size", int, where, optional=True) or 0,
        width=_get(obj, "width", int, where, optional=True),
        height=_get(obj, "height", int, where, optional=True),
        tokens=_get(obj, "tokens", int, where, optional=True) or 0,
    )


def _message(obj: Any, where: str) -> Message:
    if not isinstance(obj, dict):
        raise _InvalidError(f"{where} is not an object")
    try:
        role = Role(_get(obj, "role", str, where))
        stop = _get(obj, "stop_reason", str, where, optional=True)
        stop_reason = None if stop is None else StopReason(stop)
        timings_obj = _get(obj, "timings", dict, where, optional=True)
        timings = None if timings_obj is None else timings_from_dict(timings_obj)
    except (ValueError, BadRowError) as exc:
        raise _InvalidError(f"{where}: {exc}") from exc
    raw_attachments = _get(obj, "attachments", list, where, optional=True) or []
    raw_boxes = _get(obj, "boxes", list, where, optional=True) or []
    boxes = []
    for i, item in enumerate(raw_boxes):
        try:
            boxes.append(box_from_dict(item))
        except BadRowError as exc:
            raise _InvalidError(f"{where}.boxes[{i}]: {exc}") from exc
    return Message(
        id="",
        session_id="",
        role=role,
        text=_get(obj, "text", str, where),
        created_at=_get(obj, "created_at", float, where),
        attachments=tuple(
            _attachment(a, f"{where}.attachments[{i}]") for i, a in enumerate(raw_attachments)
        ),
        stop_reason=stop_reason,
        timings=timings,
        error=_get(obj, "error", str, where, optional=True) or "",
        boxes=tuple(boxes),
    )


def _blobs(document: dict, messages: list[Message], src: Path) -> dict[str, bytes]:
    """Decode every blob of the file, checking each one's SHA-256 and that none named is missing.

    Blobs no attachment names are kept too: a document attachment refers to its PDF from inside
    its own content.
    """
    raw = _get(document, "blobs", dict, "document", optional=True) or {}
    needed = {a.sha256 for m in messages for a in m.attachments if a.sha256 is not None}
    out: dict[str, bytes] = {}
    for sha in sorted(needed | {k for k in raw if isinstance(k, str)}):
        encoded = raw.get(sha)
        if not isinstance(encoded, str):
            raise _InvalidError(f"the content of attachment blob {sha[:12]}… is missing")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _InvalidError(f"attachment blob {sha[:12]}… is not valid base64") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(
                f"{src} is damaged: attachment blob {sha[:12]}… does not match its checksum."
            )
        out[sha] = data
    return out


def import_session(store: SessionStore, src: Path) -> SessionInfo:
    """Import a JSON export as a new chat (new ids, so importing twice never overwrites).

    Args:
        store: the open store.
        src: a file written by `export_session(..., "json", ...)`.

    Returns:
        The new session.

    Raises:
        StoreError: the file cannot be read, is not a Scout Desk export, is from a newer
            version, or is damaged (the sentence names the file).
    """
    src = Path(src)
    try:
        raw = src.read_bytes()
    except OSError as exc:
        raise StoreError(f"Cannot read {src}: {exc.strerror or exc}.") from exc
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StoreError(f"{src} is not a Scout Desk session export (not JSON: {exc}).") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StoreError(f"{src} is not a Scout Desk session export.")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StoreError(f"{src} is not a valid Scout Desk session export (bad version).")
    if version > VERSION:
        raise StoreError(
            f"{src} was written by a newer Scout Desk (export version {version}; this version "
            f"reads up to {VERSION}). Update Scout Desk to import it."
        )
    try:
        session = _get(document, "session", dict, "document")
        title = _get(session, "title", str, "session")
        created_at = _get(session, "created_at", float, "session", optional=True)
        updated_at = _get(session, "updated_at", float, "session", optional=True)
        raw_messages = _get(document, "messages", list, "document")
        messages = [_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages)]
        blobs = _blobs(document, messages, src)
    except _InvalidError as exc:
        raise StoreError(f"{src} is not a valid Scout Desk session export: {exc}.") from exc
    # Blobs first, durably: the rows naming them commit afterwards.
    for data in blobs.values():
        store.blobs.put_bytes(data)
    info = store.add_session(title, messages, created_at=created_at, updated_at=updated_at)
    log.info("imported %s as session %s (%d messages)", src, info.id, len(messages))
    return info
