"""Saved chats that use every part of the export format, for export and import tests."""

from __future__ import annotations

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Box, StopReason, Timings
from app.store.sessions import SessionStore


def save_full_chat(store: SessionStore) -> str:
    """Save a chat with an attachment, an answer with timings and a box; return its id."""
    session = store.create_session("Ruler photo")
    data = b"a ruler, 30 cm\n"
    notes = Attachment(
        name="notes.txt",
        kind=AttachmentKind.TEXT,
        status=AttachmentStatus.USED,
        sha256=store.blobs.put_bytes(data),
        mime="text/plain",
        size=len(data),
        width=8,
        height=6,
        tokens=12,
    )
    store.add_user_message(session.id, "Where is the ruler?", [notes])
    answer = store.begin_assistant_message(session.id)
    store.finish_message(
        answer.id,
        "On the left.",
        StopReason.EOS,
        Timings(1.0, 0.5, 20.0, 300, 12),
        boxes=[Box("ruler", 0, 1, 1, 5, 4)],
    )
    return session.id
