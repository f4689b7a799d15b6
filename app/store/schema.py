"""The database schema as a list of migrations; `MIGRATIONS[i]` takes schema i to i + 1."""

from __future__ import annotations

# Why a message_attachments table rather than a JSON column on messages:
# - empty_trash() must find blobs nobody references any more; an index on sha256 answers that
#   with one query instead of decoding every message's JSON;
# - update_attachments() rewrites one message's statuses in place, row by row;
# - one unreadable attachment row is skipped on its own without hiding its message.
#
# messages.seq is the INTEGER PRIMARY KEY (the rowid): it orders a session's messages and is the
# FTS5 external-content key. Timings are a JSON column: they are read and written whole and grow
# fields over time, which JSON absorbs without a migration.
_V1 = (
    """
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        auto_title  INTEGER NOT NULL DEFAULT 1,  -- 1 until a title is chosen or derived
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        trashed_at  REAL
    )
    """,
    "CREATE INDEX sessions_by_update ON sessions (trashed_at, updated_at)",
    """
    CREATE TABLE messages (
        seq           INTEGER PRIMARY KEY,
        id            TEXT NOT NULL UNIQUE,
        session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        role          TEXT NOT NULL,
        text          TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL,
        stop_reason   TEXT,          -- NULL while an assistant answer is streaming
        timings       TEXT,          -- JSON object of app.core.messages.Timings, or NULL
        error         TEXT NOT NULL DEFAULT '',
        superseded_at REAL           -- set by supersede_from(): hidden, never deleted
    )
    """,
    "CREATE INDEX messages_by_session ON messages (session_id, seq)",
    """
    CREATE TABLE message_attachments (
        message_id  TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '',
        sha256      TEXT,
        mime        TEXT NOT NULL,
        size        INTEGER NOT NULL DEFAULT 0,
        width       INTEGER,
        height      INTEGER,
        source_path TEXT NOT NULL DEFAULT '',
        tokens      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (message_id, position)
    )
    """,
    "CREATE INDEX attachments_by_blob ON message_attachments (sha256)",
    # External-content FTS5 index over messages.text, kept in step by the three triggers below.
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        text, content='messages', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END
    """,
    """
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END
    """,
    """
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END
    """,
)

# v2: the regions an answer located (grounding). A JSON column rather than a message_boxes table:
# boxes are written whole (finish_message / set_boxes) and read whole with their message, never
# queried one by one, and are few (the parser caps them at 100); like `timings`, the list grows
# fields without a migration. Reading decodes each element on its own, so one malformed box is
# skipped (and logged) without hiding the others, let alone the message. NULL means no boxes.
_V2 = ("ALTER TABLE messages ADD COLUMN boxes TEXT",)

# v3: which open store (its writer lease, `app/store/leases.py`) is streaming an unfinished
# answer, so that opening the store in a second process finalises only answers whose writer is
# gone, never one another live process is still writing. NULL: written before v3 (or finished).
_V3 = ("ALTER TABLE messages ADD COLUMN writer TEXT",)

#: Every migration, oldest first; the schema version this code writes is `len(MIGRATIONS)`.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
