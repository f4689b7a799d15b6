"""Grounding in the window: Locate questions, the image viewer dock and word ↔ box hover links."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget, QInputDialog, QWidget

from app.conversation.grounding import NO_IMAGE
from app.core.grounding import answer_images, box_spans, image_sizes, parse_boxes_with_notes
from app.core.grounding.images import question_images
from app.core.messages import Attachment, Message, Role
from app.store.sessions import SessionStore
from app.ui.composer.composer import Composer
from app.ui.ports import ChatPort
from app.ui.transcript.view import ChatView
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage
from app.ui.widgets.dock_present import present_dock

#: Asks what to locate: (parent) → the words typed, or None when cancelled.
AskTarget = Callable[[QWidget | None], str | None]


def ask_locate_target(parent: QWidget | None) -> str | None:
    """The default `AskTarget`: a small dialog asking what Scout should find.

    Args:
        parent: the dialog's parent.

    Returns:
        The words typed, or None when cancelled or blank.
    """
    text, ok = QInputDialog.getText(
        parent, "Locate", "What should Scout find in the image? (for example: the ruler)"
    )
    return text.strip() if ok and text.strip() else None


class GroundingController(QObject):
    """Shows answers' boxes in the viewer dock and links them with the answers' words.

    The window connects the chat's `answer_finished` and `session_opened` to the `on_chat_*`
    slots.

    Args:
        store: the session store (blob paths).
        chat: the chat (sends Locate questions).
        view: the transcript.
        composer: where Locate takes attached images from and shows refusals.
        viewer: the image viewer inside `dock`.
        dock: the dock that holds the viewer.

    Attributes:
        ask_target: asks what to locate; tests replace it to answer without a dialog.
    """

    #: str: a sentence for the status bar.
    message_posted = Signal(str)

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        view: ChatView,
        composer: Composer,
        viewer: ImageViewer,
        dock: QDockWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._chat = chat
        self._view = view
        self._composer = composer
        self._viewer = viewer
        self._dock = dock
        self.ask_target: AskTarget = ask_locate_target
        view.message_inserted.connect(self._on_view_message_inserted)
        view.boxes_requested.connect(self.show_boxes)
        view.box_hovered.connect(self._on_view_box_hovered)
        view.locate_requested.connect(self.locate)
        view.attachment_activated.connect(self.show_attachment)
        viewer.box_hovered.connect(self._on_viewer_box_hovered)
        viewer.message_posted.connect(self.message_posted)
        composer.locate_requested.connect(self.locate)

    # -- Locate ------------------------------------------------------------------------------

    def locate(self, attachment: Attachment | None = None, thing: str | None = None) -> bool:
        """Ask Scout where something is: in `attachment`, the composer's images or the chat's.

        Args:
            attachment: the image to look in (from a thumbnail's menu); None uses the images
                attached in the composer, or else the chat's latest ones.
            thing: what to find; None asks with `ask_target`.

        Returns:
            True when the question was sent.
        """
        composer_images = list(question_images(self._composer.chips.ready_attachments()))
        images = [attachment] if attachment is not None else composer_images
        if not images and not self._chat_has_image():
            self._composer.show_notice(NO_IMAGE, kind="error")
            return False
        if thing is None:
            thing = self.ask_target(self._view.window())
        if not thing or not thing.strip():
            return False
        sent = self._chat.send_text(f"/locate {thing}", images)
        if sent and attachment is None and composer_images:
            self._composer.chips.clear()  # they went with the question
        return sent

    # -- viewer ------------------------------------------------------------------------------

    def show_boxes(self, message_id: str, image_sha: str | None = None) -> bool:
        """Open the viewer on an answer's images and boxes.

        Args:
            message_id: the answer shown in the transcript.
            image_sha: the image to show first (None: the first one with a box).

        Returns:
            False when the answer is not shown or refers to no image.
        """
        history = self._view.messages()
        index = next((i for i, m in enumerate(history) if m.id == message_id), None)
        if index is None:
            return False
        images = answer_images(history, index)
        if not images:
            return False
        boxes = history[index].boxes
        shas = [a.sha256 for a in images]
        first = min((b.image for b in boxes), default=0)
        current = shas.index(image_sha) if image_sha in shas else first
        self._viewer.show_images(
            self._viewer_images(images), boxes, current=current, message_id=message_id
        )
        self._present()
        return True

    def show_attachment(self, attachment: Attachment | None) -> bool:
        """Open a message's image in the viewer, with the boxes of the latest answer about it.

        Args:
            attachment: the clicked attachment (non-images are ignored).

        Returns:
            True when the viewer shows it.
        """
        if attachment is None or not question_images([attachment]):
            return False
        history = self._view.messages()
        for index in range(len(history) - 1, -1, -1):
            answer = history[index]
            if answer.role is not Role.ASSISTANT or not answer.boxes:
                continue
            if attachment.sha256 in [a.sha256 for a in answer_images(history, index)]:
                return self.show_boxes(answer.id, attachment.sha256)
        self._viewer.show_images(self._viewer_images([attachment]))
        self._present()
        return True

    # -- internals ---------------------------------------------------------------------------

    def _viewer_images(self, images: Sequence[Attachment]) -> list[ViewerImage]:
        return [ViewerImage(a.name, self._store.blobs.path(a.sha256 or "")) for a in images]

    def _present(self) -> None:
        present_dock(self._dock)

    def _chat_has_image(self) -> bool:
        return any(
            question_images(m.attachments) for m in self._view.messages() if m.role is Role.USER
        )

    def _link(self, message_id: str) -> None:
        """Give an answer's bubble its word ↔ box links and the notes about dropped boxes."""
        widget = self._view.message_widget(message_id)
        history = self._view.messages()
        index = next((i for i, m in enumerate(history) if m.id == message_id), None)
        if widget is None or index is None:
            return
        message = history[index]
        if message.role is not Role.ASSISTANT or message.stop_reason is None or not message.text:
            return
        sizes = image_sizes(answer_images(history, index))
        if not sizes:
            return
        boxes, notes = parse_boxes_with_notes(message.text, sizes)
        # Link only when today's parse is what was stored, so every index names the right box.
        linked = boxes and boxes == list(message.boxes)
        widget.set_grounding(box_spans(message.text, sizes) if linked else (), notes)

    def _on_view_message_inserted(self, message_id: str) -> None:
        self._link(message_id)

    def on_chat_answer_finished(self, message: Message) -> None:
        """An answer was saved: show its boxes when it is the one on screen."""
        if self._view.message_widget(message.id) is None:
            return  # another chat is shown; its boxes are stored and drawn when it is opened
        if self._viewer.message_id not in (None, *self._view.message_ids()):
            self._viewer.clear()  # its answer was replaced (regenerate, edit & resend)
        self._link(message.id)
        if message.boxes:
            self.show_boxes(message.id)

    def on_chat_session_opened(self, _session_id: str | None) -> None:
        """Another chat is shown: the viewer follows it to its latest boxes."""
        if self._viewer.message_id in self._view.message_ids():
            return
        latest = next((m for m in reversed(self._view.messages()) if m.boxes), None)
        if latest is not None and self._dock.isVisible():
            self.show_boxes(latest.id)
        else:
            self._viewer.clear()
            self._dock.hide()

    def _on_view_box_hovered(self, message_id: str, index: int) -> None:
        if message_id == self._viewer.message_id:
            self._viewer.highlight_box(None if index < 0 else index)

    def _on_viewer_box_hovered(self, index: int) -> None:
        message_id = self._viewer.message_id
        widget = self._view.message_widget(message_id) if message_id else None
        if widget is not None:
            widget.highlight_box(None if index < 0 else index)
