"""A video ask's chat side: its question and answers saved as the CLI saves them, and shown."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.conversation.pipeline import Conversation
from app.core.messages import Attachment, Message, Role, StopReason, Timings
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.transcript.view import ChatView

if TYPE_CHECKING:
    from app.core.video.data import FrameResult


class AskRecords:
    """Saves a video question and its answers in the chat, and shows them when it is shown.

    Args:
        store: the session store.
        chat: the chat (the chat shown, opening another, announcing changes).
        view: the transcript (each saved message is added as it comes).
        post: shows a sentence in the status bar (an answer that could not be saved).
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        view: ChatView,
        post: Callable[[str], None],
    ) -> None:
        self._store = store
        self._chat = chat
        self._view = view
        self._post = post
        self._opening_own_session = False

    @property
    def opening_own_session(self) -> bool:
        """Whether the chat is being switched to the chat a question was just saved in."""
        return self._opening_own_session

    def save_question(self, text: str, attachments: Sequence[Attachment]) -> tuple[str, Message]:
        """Commit the question to the chat shown (a new chat when none is).

        Args:
            text: the question.
            attachments: the video and its frames, saved as USED attachments.

        Returns:
            The chat it was saved in and the saved message.

        Raises:
            StoreError: it could not be saved.
        """
        saved = Conversation(self._store).save_question(
            self._chat.session_id, text, attachments, used=True
        )
        return saved.session_id, saved.message

    def show_question(self, session_id: str, question: Message) -> None:
        """Show a question just saved: open its chat if another is shown, else add it."""
        if session_id != self._chat.session_id:
            # Opening the chat would otherwise restore its (older) run over the frames asked.
            self._opening_own_session = True
            try:
                self._chat.open_session(session_id)  # shows the question just saved
            finally:
                self._opening_own_session = False
        else:
            self._view.add_message(question)
        self._chat.announce_sessions_changed()

    def is_latest_question(self, session_id: str, question_id: str) -> bool:
        """Whether `question_id` is the chat's latest user message (False when unreadable)."""
        try:
            messages = self._store.messages(session_id)
        except StoreError:
            return False
        users = [m for m in messages if m.role is Role.USER]
        return bool(users) and users[-1].id == question_id

    def save_frame_answer(self, session_id: str, result: FrameResult) -> str:
        """Save one frame's answer.

        Returns:
            The saved message's id, or "" when it could not be saved (the status bar says so).
        """
        from app.core.video.run import save_frame_answer

        try:
            return save_frame_answer(self._store, session_id, result)
        except StoreError as exc:
            self._post(f"A frame's answer could not be saved: {exc.message}")
            return ""

    def show_frame_answer(self, session_id: str, message_id: str, result: FrameResult) -> None:
        """Add a saved frame's answer to the transcript when its chat is shown."""
        from app.core.video.run import frame_answer_text

        if message_id and self._chat.session_id == session_id:
            text = frame_answer_text(result.time_s, result.answer)
            self._view.add_message(Message(message_id, session_id, Role.ASSISTANT, text,
                                           time.time(), stop_reason=result.stop_reason,
                                           boxes=result.boxes))  # fmt: skip

    def save_summary_on_close(self, session_id: str, text: str) -> None:
        """Save a summary cut short by closing the window (as cancelled; errors are dropped)."""
        from app.core.video.run import save_summary

        with contextlib.suppress(StoreError):  # closing: no one left to tell
            save_summary(self._store, session_id, text, StopReason.CANCELLED)

    def save_reply(
        self,
        kind: str,
        session_id: str,
        text: str,
        reason: StopReason,
        timings: Timings | None,
        error: str = "",
    ) -> bool:
        """Save a clip answer or a summary and show it in the chat (when that chat is shown).

        The caller announces the change once it has updated what the panel shows.

        Args:
            kind: "clip" or "summary".
            session_id: the chat it belongs to.
            text: what was written.
            reason: why it ended.
            timings: the engine's timings, or None.
            error: the failure's sentence, or "".

        Returns:
            True when it was saved (an empty cancelled summary is not; a store error is not).
        """
        from app.core.video.run import save_summary, summary_text

        try:
            if kind == "summary":
                if not text and reason is StopReason.CANCELLED:
                    return False  # nothing was written: no empty summary in the chat
                message_id = save_summary(self._store, session_id, text, reason, timings)
                stored, boxes = summary_text(text), ()
            else:
                writer = Conversation(self._store).begin_answer(session_id)
                final, _notes = writer.finish(reason, timings, error, text=text)
                message_id, stored, boxes = final.id, text, final.boxes
        except StoreError as exc:
            self._post(f"The answer could not be saved: {exc.message}")
            return False
        if self._chat.session_id == session_id:
            self._view.add_message(Message(message_id, session_id, Role.ASSISTANT, stored,
                                           time.time(), stop_reason=reason, timings=timings,
                                           error=error, boxes=boxes))  # fmt: skip
        return True
