"""Export a chat as Markdown, HTML or a versioned JSON document, and import that JSON back."""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from app import __version__
from app.core.messages import Message, SessionInfo
from app.store.db import StoreError
from app.store.export_pages import BlobReader, render_html, render_markdown
from app.store.files import write_atomically
from app.store.import_schema import FORMAT, VERSION, ImportRefusedError, read_export
from app.store.references import companion_shas
from app.store.rows import box_to_dict
from app.store.sessions import NotFoundError, SessionStore

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "VERSION", "ImportRefusedError", "export_session", "import_session"]

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
                blob = read_blob(sha)
                if blob is not None:
                    document["blobs"].setdefault(sha, base64.b64encode(blob).decode("ascii"))
        # allow_nan=False: the rows read back finite, and a file with NaN would not import.
        data = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")
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


def import_session(store: SessionStore, src: Path) -> SessionInfo:
    """Import a JSON export as a new chat (new ids, so importing twice never overwrites).

    Args:
        store: the open store.
        src: a file written by `export_session(..., "json", ...)`.

    Returns:
        The new session.

    Raises:
        StoreError: the file cannot be read.
        ImportRefusedError: it is not a Scout Desk export, is from a newer version, or a field
            breaks the format's schema (`app.store.import_schema`); the sentence names the file
            and the first problem by its JSON path. Nothing is stored.
    """
    src = Path(src)
    try:
        raw = src.read_bytes()
    except OSError as exc:
        raise StoreError(f"Cannot read {src}: {exc.strerror or exc}.") from exc
    document = read_export(raw, src)
    messages = [m.to_message() for m in document.messages]
    # Everything is checked before anything is written. Blobs first, durably: the rows naming
    # them commit afterwards.
    for data in (document.blobs or {}).values():
        store.blobs.put_bytes(data)
    session = document.session
    info = store.add_session(
        session.title, messages, created_at=session.created_at, updated_at=session.updated_at
    )
    log.info("imported %s as session %s (%d messages)", src, info.id, len(messages))
    return info
