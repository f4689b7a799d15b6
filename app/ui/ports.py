"""What one UI feature may ask of another, as protocols: features never import each other.

The main window (the composition root) builds every feature and hands each the objects it
needs; a feature that needs the chat is typed against `ChatPort`, which `ChatController`
satisfies, so `app.ui.documents` or `app.ui.video` never import `app.ui.chat` (an
import-linter contract checks it). Signals are wired by the window, not reached for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from app.core.messages import Attachment, Message
    from app.ui.tasks.inference_worker import InferenceWorker

#: Says why a send must wait (a sentence), or None when it may go.
SendGuard = Callable[[], "str | None"]


class AnswerRun(Protocol):
    """An answer the chat streams and saves but does not prompt for (chunk by chunk).

    It streams text into the answer's bubble with `text_streamed` and ends once with
    `finished(AnswerOutcome)`; `cancel` asks it to stop soon (it still sends `finished`).
    """

    text_streamed: SignalInstance
    finished: SignalInstance

    def start(self) -> None:
        """Begin (the chat has saved the question and opened the answer)."""

    def cancel(self) -> None:
        """Stop as soon as possible; what was written is kept."""


#: Builds the run for a saved question: (the question, the answer's message id) → the run.
AnswerRunFactory = Callable[["Message", str], AnswerRun]


class ChatPort(Protocol):
    """The chat as other features see it: the chat shown, the engine, and sending."""

    @property
    def session_id(self) -> str | None:
        """The chat shown (None: a new chat, not saved yet)."""

    def open_session(self, session_id: str | None) -> None:
        """Show a chat."""

    def refusal(self) -> str | None:
        """Why nothing can be asked of the model now (an answer runs, no model), or None."""

    def engine(self) -> InferenceWorker | None:
        """The inference worker, started if it was not (None when it cannot start)."""

    def announce_sessions_changed(self) -> None:
        """Say that a chat was created or changed, so the list reloads."""

    def history_for_draft(self) -> list[Message]:
        """The messages a send from the composer would follow."""

    def send_text(self, text: str, attachments: Sequence[Attachment] = ()) -> bool:
        """Send a message that is not in the composer; True when an answer started."""

    def send_run(self, prepare: Callable[[Message], Message], make_run: AnswerRunFactory) -> bool:
        """Send the composer's question and let `make_run` write the answer."""
