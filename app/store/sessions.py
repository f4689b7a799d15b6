"""The session store: chats, their messages and attachments, search, and the trash."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from app.core.messages import (
    Attachment,
    Box,
    Message,
    Role,
    SearchHit,
    SessionInfo,
    StopReason,
    Timings,
)
from app.store.blobs import BlobStore
from app.store.db import (
    BUSY_TIMEOUT_S,
    StoreError,
    connect,
    environment_errors,
    migrate,
    transaction,
)
from app.store.files import ensure_private_file, ensure_writable_folder
from app.store.leases import LEASES_DIR, WriterLease, claim_if_gone, sweep_orphans
from app.store.reads import read_messages, read_sessions, search_messages
from app.store.references import companion_shas
from app.store.rows import ATTACHMENT_INSERT, attachment_values, boxes_to_json, timings_to_json

# Log ids and reasons only: message text and titles are the user's private words.
log = logging.getLogger(__name__)

DB_NAME = "sessions.sqlite3"
BLOBS_DIR = "blobs"
DEFAULT_TITLE = "New chat"
#: The error note of an answer that was still streaming when the program died.
INTERRUPTED = "interrupted: Scout Desk closed before this answer finished"
_TITLE_CHARS = 60
#: A checkpoint waits at most this long for the write lock: the answer keeps its text and the
#: next checkpoint (a second later) tries again, so waiting longer would only stall the caller.
CHECKPOINT_PATIENCE_S = 1.0


class NotFoundError(StoreError):
    """No session or message has the id asked for."""


class AnswerClosedError(StoreError):
    """A checkpoint found its answer no longer open for this store: the text was not saved."""


def _new_id() -> str:
    return uuid.uuid4().hex


def derive_title(text: str, attachments: Sequence[Attachment] = ()) -> str | None:
    """Title a chat after its first message: its first line, else its first attachment's name.

    Args:
        text: the first user message.
        attachments: its attachments.

    Returns:
        A title of at most 60 characters, or None when there is nothing to go on.
    """
    for line in text.splitlines():
        words = " ".join(line.split())
        if words:
            return words if len(words) <= _TITLE_CHARS else words[: _TITLE_CHARS - 1] + "…"
    return attachments[0].name[:_TITLE_CHARS] if attachments else None


class SessionStore:
    """All chats of one data folder. Use from one thread; open it with `SessionStore.open`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        blobs: BlobStore,
        lease: WriterLease,
        lock_patience_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        """Wrap an open, migrated connection (call `open` instead)."""
        self._conn = conn
        self.path = path
        self.blobs = blobs
        self._lease = lease
        self._lock_patience_s = lock_patience_s

    @classmethod
    def open(cls, data_dir: Path | str, *, lock_patience_s: float = BUSY_TIMEOUT_S) -> SessionStore:
        """Open (creating when new) the store in `data_dir`.

        Answers left mid-stream by a process that has since ended (a crash, a kill) are finalised
        as cancelled, keeping their partial text. An answer another open store is streaming
        right now, in this process or another, is left alone: it is recognised by its writer's
        lease (`app/store/leases.py`), never by being unfinished.

        Args:
            data_dir: the data folder; `sessions.sqlite3` and `blobs/` live in it.
            lock_patience_s: how long a write keeps retrying (with back-off) while another
                program holds the database; the window keeps the default so it never stalls
                long, a command line run can afford to wait out a large import.

        Returns:
            The open store.

        Raises:
            StoreError: the folder is read-only, or the database is damaged, locked or written
                by a newer Scout Desk. An existing database is never replaced by an empty one.
        """
        data_dir = Path(data_dir)
        ensure_writable_folder(data_dir)
        db_path = data_dir / DB_NAME
        if db_path.exists() and not db_path.is_file():
            raise StoreError(f"{db_path} is not a regular file; move it aside and try again.")
        ensure_private_file(db_path)
        conn = connect(db_path)  # first: a damaged database is refused before anything is made
        try:
            lease = WriterLease(data_dir / LEASES_DIR)
        except BaseException:
            conn.close()
            raise
        try:
            migrate(conn, db_path)
            store = cls(conn, db_path, BlobStore(data_dir / BLOBS_DIR), lease, lock_patience_s)
            store._finalise_interrupted()
        except BaseException:
            conn.close()
            lease.release()
            raise
        sweep_orphans(data_dir / LEASES_DIR)
        return store

    def close(self) -> None:
        """Close the database and give up the writer lease (idempotent)."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._lease.release()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _writing(self, patience_s: float | None = None) -> Iterator[sqlite3.Connection]:
        patience = self._lock_patience_s if patience_s is None else patience_s
        with environment_errors(self.path), transaction(self._conn, patience_s=patience) as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with environment_errors(self.path):
            yield self._conn

    def _finalise_interrupted(self) -> None:
        """Close the unfinished answers of writers that are gone; leave live writers' alone."""
        with self._reading() as conn:
            writers = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT writer FROM messages WHERE role = ? AND stop_reason IS NULL",
                    (Role.ASSISTANT.value,),
                )
            ]
        count = 0
        for writer in writers:
            if writer is None:  # streamed by a Scout Desk older than leases: none is alive now
                count += self._finalise_writer("writer IS NULL", ())
            elif writer != self._lease.id:
                with claim_if_gone(self.path.parent / LEASES_DIR, str(writer)) as gone:
                    if gone:
                        count += self._finalise_writer("writer = ?", (writer,))
        if count:
            log.warning("finalised %d answer(s) interrupted by an earlier exit", count)

    def _finalise_writer(self, where: str, params: tuple[object, ...]) -> int:
        with self._writing() as conn:
            return conn.execute(
                "UPDATE messages SET stop_reason = ?, error = ?, writer = NULL "
                f"WHERE role = ? AND stop_reason IS NULL AND {where}",
                (StopReason.CANCELLED.value, INTERRUPTED, Role.ASSISTANT.value, *params),
            ).rowcount

    # -- sessions -------------------------------------------------------------------------------

    def create_session(self, title: str = DEFAULT_TITLE) -> SessionInfo:
        """Start an empty chat.

        Args:
            title: its title; the default is replaced by one derived from the first message.

        Returns:
            The new session.
        """
        title = title.strip() or DEFAULT_TITLE
        now = time.time()
        sid = _new_id()
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO sessions (id, title, auto_title, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (sid, title, int(title == DEFAULT_TITLE), now, now),
            )
        return SessionInfo(id=sid, title=title, created_at=now, updated_at=now)

    def list_sessions(self, trashed: bool = False) -> list[SessionInfo]:
        """Return the chats (or the trash), most recently updated first.

        A row that cannot be decoded is logged and skipped; the others are still returned.
        """
        where = "s.trashed_at IS NOT NULL" if trashed else "s.trashed_at IS NULL"
        with self._reading() as conn:
            return read_sessions(conn, where)

    def get_session(self, session_id: str) -> SessionInfo | None:
        """Return one chat (trashed or not), or None when there is none readable by that id."""
        with self._reading() as conn:
            found = read_sessions(conn, "s.id = ?", (session_id,))
        return found[0] if found else None

    def _update_session(self, session_id: str, sql: str, params: tuple[object, ...]) -> None:
        with self._writing() as conn:
            if conn.execute(sql, (*params, session_id)).rowcount == 0:
                raise NotFoundError(f"There is no session with id {session_id!r}.")

    def rename_session(self, session_id: str, title: str) -> None:
        """Give a chat a title of the user's choice (a blank one becomes "New chat")."""
        title = title.strip() or DEFAULT_TITLE
        self._update_session(
            session_id, "UPDATE sessions SET title = ?, auto_title = 0 WHERE id = ?", (title,)
        )

    def trash_session(self, session_id: str) -> None:
        """Move a chat to the trash (undo with `restore_session`)."""
        self._update_session(
            session_id, "UPDATE sessions SET trashed_at = ? WHERE id = ?", (time.time(),)
        )

    def restore_session(self, session_id: str) -> None:
        """Bring a chat back from the trash."""
        self._update_session(session_id, "UPDATE sessions SET trashed_at = NULL WHERE id = ?", ())

    def empty_trash(self) -> int:
        """Delete every trashed chat for good, and the attachment files nothing else uses.

        Returns:
            How many chats were deleted.
        """
        with self._writing() as conn:
            candidates = self._with_companions(
                conn.execute(
                    "SELECT DISTINCT a.kind, a.sha256 FROM message_attachments a "
                    "JOIN messages m ON m.id = a.message_id JOIN sessions s ON s.id = m.session_id "
                    "WHERE s.trashed_at IS NOT NULL AND a.sha256 IS NOT NULL"
                )
            )
            count = conn.execute("DELETE FROM sessions WHERE trashed_at IS NOT NULL").rowcount
            still_used = self._with_companions(
                conn.execute(
                    "SELECT DISTINCT kind, sha256 FROM message_attachments WHERE sha256 IS NOT NULL"
                )
            )
        removed = self.blobs.collect(candidates, still_used)
        log.info("emptied trash: %d session(s), %d blob(s)", count, removed)
        return count

    def _with_companions(self, rows: Iterable[tuple[str, str]]) -> list[str]:
        """The blobs of (kind, sha) rows plus those their content names (a document's PDF)."""
        shas: list[str] = []
        for kind, sha in rows:
            shas.append(sha)
            shas.extend(companion_shas(kind, sha, self.blobs))
        return shas

    # -- messages -------------------------------------------------------------------------------

    def _check_blobs(self, attachments: Sequence[Attachment]) -> None:
        """Refuse rows naming blobs that are not durably stored (the row must never dangle)."""
        for a in attachments:
            if a.sha256 is not None and not self.blobs.has(a.sha256):
                raise StoreError(
                    f"The attachment {a.name!r} is no longer in the attachment folder "
                    f"({self.blobs.path(a.sha256)}); attach the file again."
                )

    def _insert_message(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        role: Role,
        text: str,
        attachments: Sequence[Attachment],
        created_at: float,
    ) -> str:
        mid = _new_id()
        conn.execute(
            "INSERT INTO messages (id, session_id, role, text, created_at) VALUES (?, ?, ?, ?, ?)",
            (mid, session_id, role.value, text, created_at),
        )
        conn.executemany(
            ATTACHMENT_INSERT, [attachment_values(mid, i, a) for i, a in enumerate(attachments)]
        )
        conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (created_at, session_id))
        return mid

    def _session_row(self, conn: sqlite3.Connection, session_id: str) -> tuple[int, bool]:
        """Return (auto_title, has any message) for a session, or raise `NotFoundError`."""
        row = conn.execute(
            "SELECT auto_title, EXISTS (SELECT 1 FROM messages WHERE session_id = ?) "
            "FROM sessions WHERE id = ?",
            (session_id, session_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"There is no session with id {session_id!r}.")
        return row[0], bool(row[1])

    def add_user_message(
        self, session_id: str, text: str, attachments: Sequence[Attachment] = ()
    ) -> Message:
        """Save what the user sent; it is committed to disk when this returns.

        Args:
            session_id: the chat.
            text: the message.
            attachments: its attachments; their blobs must already be in `self.blobs`.

        Returns:
            The stored message. The first message of an untitled chat also titles it.
        """
        self._check_blobs(attachments)
        now = time.time()
        with self._writing() as conn:
            auto_title, has_messages = self._session_row(conn, session_id)
            mid = self._insert_message(conn, session_id, Role.USER, text, attachments, now)
            title = derive_title(text, attachments) if auto_title and not has_messages else None
            if title:
                conn.execute(
                    "UPDATE sessions SET title = ?, auto_title = 0 WHERE id = ?",
                    (title, session_id),
                )
        return Message(mid, session_id, Role.USER, text, now, attachments=tuple(attachments))

    def begin_assistant_message(self, session_id: str) -> Message:
        """Start an answer (empty, `stop_reason` None) that streaming checkpoints will fill.

        The answer is stamped with this store's writer lease: while this store is open, no
        other store finalises it as interrupted.
        """
        now = time.time()
        with self._writing() as conn:
            self._session_row(conn, session_id)
            mid = self._insert_message(conn, session_id, Role.ASSISTANT, "", (), now)
            conn.execute("UPDATE messages SET writer = ? WHERE id = ?", (self._lease.id, mid))
        return Message(mid, session_id, Role.ASSISTANT, "", now)

    def checkpoint_message(self, message_id: str, text: str) -> None:
        """Save the text streamed so far (about once a second) so a crash loses at most that.

        Raises:
            NotFoundError: no message has that id.
            AnswerClosedError: the answer is finished, or is not this store's to write (begun
                by another store); the text was not saved. Never silent: a caller that went on
                streaming would lose everything after this point.
            StoreLockedError: another program held the database for `CHECKPOINT_PATIENCE_S`;
                nothing was written, and the next checkpoint can save the text.
        """
        with self._writing(min(self._lock_patience_s, CHECKPOINT_PATIENCE_S)) as conn:
            changed = conn.execute(
                "UPDATE messages SET text = ? WHERE id = ? AND stop_reason IS NULL AND writer = ?",
                (text, message_id, self._lease.id),
            ).rowcount
            if not changed:
                self._message_session(conn, message_id)  # raises for an unknown id
                raise AnswerClosedError(
                    f"The answer {message_id} in {self.path} is already finished or is being "
                    "written by another Scout Desk; this checkpoint was not saved."
                )

    def finish_message(
        self,
        message_id: str,
        text: str,
        stop_reason: StopReason,
        timings: Timings | None = None,
        error: str = "",
        boxes: Sequence[Box] = (),
    ) -> None:
        """Finalise an answer with its full text, why it ended, how fast it came and its boxes.

        Args:
            message_id: the answer.
            text: its full text.
            stop_reason: why it ended.
            timings: how fast it came.
            error: a note on a failure or interruption.
            boxes: the regions parsed from it (integer pixels of the question's images).

        Raises:
            ValueError: a box is not a region (negative, empty or reversed).
        """
        encoded = boxes_to_json(boxes)
        now = time.time()
        with self._writing() as conn:
            session_id = self._message_session(conn, message_id)
            conn.execute(
                "UPDATE messages SET text = ?, stop_reason = ?, timings = ?, error = ?, boxes = ?, "
                "writer = NULL WHERE id = ?",
                (
                    text,
                    StopReason(stop_reason).value,
                    timings_to_json(timings),
                    error,
                    encoded,
                    message_id,
                ),
            )
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))

    def set_boxes(self, message_id: str, boxes: Sequence[Box]) -> None:
        """Replace a message's boxes (a Locate run on an old answer, or the user clearing them).

        Raises:
            NotFoundError: no message has that id.
            ValueError: a box is not a region (negative, empty or reversed).
        """
        encoded = boxes_to_json(boxes)
        with self._writing() as conn:
            self._message_session(conn, message_id)
            conn.execute("UPDATE messages SET boxes = ? WHERE id = ?", (encoded, message_id))

    def update_attachments(self, message_id: str, attachments: Sequence[Attachment]) -> None:
        """Replace a message's attachments (e.g. their statuses once the prompt was built)."""
        self._check_blobs(attachments)
        with self._writing() as conn:
            self._message_session(conn, message_id)
            conn.execute("DELETE FROM message_attachments WHERE message_id = ?", (message_id,))
            conn.executemany(
                ATTACHMENT_INSERT,
                [attachment_values(message_id, i, a) for i, a in enumerate(attachments)],
            )

    def _message_session(self, conn: sqlite3.Connection, message_id: str) -> str:
        row = conn.execute("SELECT session_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no message with id {message_id!r}.")
        return str(row[0])

    def messages(self, session_id: str) -> list[Message]:
        """Return a chat's visible messages in order (superseded ones are left out).

        A row that cannot be decoded is logged and skipped; the others are still returned.
        """
        with self._reading() as conn:
            return read_messages(conn, session_id)

    def supersede_from(self, message_id: str) -> int:
        """Hide this message and every later one of its chat (regenerate, edit & resend).

        The rows stay in the database; nothing the user wrote or read is ever deleted here.

        Returns:
            How many messages were hidden.
        """
        now = time.time()
        with self._writing() as conn:
            row = conn.execute(
                "SELECT session_id, seq FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"There is no message with id {message_id!r}.")
            hidden = conn.execute(
                "UPDATE messages SET superseded_at = ? "
                "WHERE session_id = ? AND seq >= ? AND superseded_at IS NULL",
                (now, row[0], row[1]),
            ).rowcount
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, row[0]))
        return hidden

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Find visible messages of untrashed chats containing every word of `query`.

        Any text is safe (quotes, operators, `*`, unicode); the last word matches as a prefix.

        Args:
            query: what the user typed.
            limit: the most hits to return, best first.

        Returns:
            Hits with a snippet in which matches are marked «like this», and the chat's title.
        """
        with self._reading() as conn:
            return search_messages(conn, query, limit)

    def add_session(
        self,
        title: str,
        messages: Sequence[Message],
        created_at: float | None = None,
        updated_at: float | None = None,
    ) -> SessionInfo:
        """Create a chat holding copies of `messages` under new ids, in one transaction (import).

        Args:
            title: the chat's title.
            messages: what to copy; their `id` and `session_id` are ignored. An answer without
                a stop reason is stored as cancelled. Their blobs must already be stored.
            created_at: the chat's creation time (now when None).
            updated_at: its last update (the last message's time when None).

        Returns:
            The new session.
        """
        for message in messages:
            self._check_blobs(message.attachments)
        now = time.time()
        created = now if created_at is None else created_at
        sid = _new_id()
        title = title.strip() or DEFAULT_TITLE
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO sessions (id, title, auto_title, created_at, updated_at) "
                "VALUES (?, ?, 0, ?, ?)",
                (sid, title, created, created),
            )
            for m in messages:
                mid = self._insert_message(conn, sid, m.role, m.text, m.attachments, m.created_at)
                stop = m.stop_reason or (StopReason.CANCELLED if m.role is Role.ASSISTANT else None)
                conn.execute(
                    "UPDATE messages SET stop_reason = ?, timings = ?, error = ?, boxes = ? "
                    "WHERE id = ?",
                    (
                        stop and stop.value,
                        timings_to_json(m.timings),
                        m.error,
                        boxes_to_json(m.boxes),
                        mid,
                    ),
                )
            last = (
                updated_at
                if updated_at is not None
                else max([created, *(m.created_at for m in messages)])
            )
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (last, sid))
        info = self.get_session(sid)
        assert info is not None  # just written in this thread
        return info
