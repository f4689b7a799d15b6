"""Read queries that tolerate damage: a row that does not decode is logged and skipped."""

from __future__ import annotations

import logging
import sqlite3

from app.core.messages import Attachment, Message, SearchHit, SessionInfo
from app.store.rows import (
    ATTACHMENT_COLUMNS,
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    BadRowError,
    attachment_from_row,
    message_from_row,
    session_from_row,
)
from app.store.search import ELLIPSIS, MATCH_END, MATCH_START, SNIPPET_TOKENS, fts_query

# Log ids and reasons only: message text and titles are the user's private words.
log = logging.getLogger(__name__)

_COUNT_VISIBLE = (
    "(SELECT count(*) FROM messages m WHERE m.session_id = s.id AND m.superseded_at IS NULL)"
)


def read_sessions(
    conn: sqlite3.Connection, where: str, params: tuple[object, ...] = ()
) -> list[SessionInfo]:
    """Return the sessions matching `where` (SQL over alias `s`), most recently updated first.

    Args:
        conn: the database.
        where: a fixed SQL condition (never user text: pass that through `params`).
        params: its parameters.

    Returns:
        Every decodable row; the others are logged and skipped.
    """
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS}, {_COUNT_VISIBLE} FROM sessions s WHERE {where} "
        "ORDER BY s.updated_at DESC, s.rowid DESC",
        params,
    ).fetchall()
    sessions = []
    for row in rows:
        try:
            sessions.append(session_from_row(row[:5], row[5]))
        except BadRowError as exc:
            log.warning("skipped unreadable session row %r: %s", row[0], exc)
    return sessions


def read_messages(conn: sqlite3.Connection, session_id: str) -> list[Message]:
    """Return a session's visible (not superseded) messages in order, with their attachments.

    Args:
        conn: the database.
        session_id: the chat.

    Returns:
        Every decodable message; an undecodable message or attachment row is logged and
        skipped without hiding the rest.
    """
    visible = "session_id = ? AND superseded_at IS NULL"
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {visible} ORDER BY seq", (session_id,)
    ).fetchall()
    attachment_rows = conn.execute(
        f"SELECT {ATTACHMENT_COLUMNS} FROM message_attachments WHERE message_id IN "
        f"(SELECT id FROM messages WHERE {visible}) ORDER BY message_id, position",
        (session_id,),
    ).fetchall()
    attachments: dict[str, list[Attachment]] = {}
    for row in attachment_rows:
        try:
            mid, attachment = attachment_from_row(row)
        except BadRowError as exc:
            log.warning("skipped unreadable attachment of message %r: %s", row[0], exc)
            continue
        attachments.setdefault(mid, []).append(attachment)
    messages = []
    for row in rows:
        try:
            messages.append(message_from_row(row, tuple(attachments.get(row[0], ()))))
        except BadRowError as exc:
            log.warning("skipped unreadable message row %r: %s", row[0], exc)
    return messages


def search_messages(conn: sqlite3.Connection, query: str, limit: int) -> list[SearchHit]:
    """Full-text search over visible messages of chats not in the trash.

    Args:
        conn: the database.
        query: what the user typed (any text; see `fts_query`).
        limit: the most hits to return, best first.

    Returns:
        Hits whose snippet marks each match «like this».
    """
    match = fts_query(query)
    if match is None:
        return []
    rows = conn.execute(
        "SELECT m.session_id, m.id, s.title, snippet(messages_fts, 0, ?, ?, ?, ?) "
        "FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid "
        "JOIN sessions s ON s.id = m.session_id "
        "WHERE messages_fts MATCH ? AND s.trashed_at IS NULL AND m.superseded_at IS NULL "
        "ORDER BY rank LIMIT ?",
        (MATCH_START, MATCH_END, ELLIPSIS, SNIPPET_TOKENS, match, max(1, int(limit))),
    ).fetchall()
    hits = []
    for row in rows:
        if all(isinstance(v, str) for v in row):
            hits.append(SearchHit(*row))
        else:
            log.warning("skipped unreadable search hit in message %r", row[1])
    return hits
