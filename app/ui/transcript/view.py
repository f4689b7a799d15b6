"""The chat transcript: message bubbles in a scroll area that follows a streaming answer."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from app.core.messages import Message, Role
from app.ui.transcript.attachment_badge import ThumbnailFor
from app.ui.transcript.message_widget import MessageWidget
from app.ui.widgets.stream_throttle import StreamThrottle

EMPTY_TEXT = "Ask about an image, a video or a document…"

# How close to the end (pixels) still counts as "at the bottom" when the user scrolls.
_BOTTOM_SLACK_PX = 8


class ChatView(QScrollArea):
    """A vertical list of `MessageWidget`s with an empty-state hint.

    While an answer streams it stays scrolled to the bottom if the user was there, and leaves the
    scroll position alone once they scroll up to read. Streamed chunks go through a
    `StreamThrottle`, so the transcript relays out at most ~60 times a second.

    Args:
        parent: the usual widget parent.
    """

    #: str: the id of the assistant message to answer again.
    regenerate_requested = Signal(str)
    #: str: the id of the user message to edit and send again.
    edit_requested = Signal(str)
    #: Attachment: the user clicked an attachment chip.
    attachment_activated = Signal(object)
    #: Attachment: "Locate in this image…" was chosen on a message's image.
    locate_requested = Signal(object)
    #: str: the id of the answer whose boxes the user wants to see.
    boxes_requested = Signal(str)
    #: (str, int): an answer's id and the box whose words are under the pointer (-1: none).
    box_hovered = Signal(str, int)
    #: str: the id of a message whose bubble was just added.
    message_inserted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._widgets: dict[str, MessageWidget] = {}
        self._throttles: dict[str, StreamThrottle] = {}
        self._thumbnail_for: ThumbnailFor | None = None
        self._follow = True  # whether to keep the view pinned to the bottom
        self.setObjectName("chatView")
        self.setAccessibleName("Conversation")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        content = QWidget()
        content.setObjectName("chatContent")
        self._layout = QVBoxLayout(content)
        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setObjectName("chatEmptyState")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._layout.addWidget(self._empty, 1)
        self._layout.addStretch(0)
        self.setWidget(content)

        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scroll_bar_value_changed)
        bar.rangeChanged.connect(self._on_scroll_bar_range_changed)

    def set_messages(
        self, messages: Sequence[Message], thumbnail_for: ThumbnailFor | None = None
    ) -> None:
        """Show a whole conversation, replacing what was shown.

        Args:
            messages: the visible messages, in order.
            thumbnail_for: gives attachment thumbnails (kept for messages added later).
        """
        self.clear()
        self._thumbnail_for = thumbnail_for
        for message in messages:
            self._insert(message)
        self._update_actions()
        self.scroll_to_bottom()

    def add_message(self, message: Message) -> None:
        """Append one finished message (the user's, usually) and scroll to it.

        Args:
            message: the message to show.
        """
        self._insert(message)
        self._update_actions()
        self.scroll_to_bottom()

    def begin_stream(self, message: Message) -> None:
        """Add the bubble an answer will stream into, and scroll to it.

        Args:
            message: the assistant message just begun (no stop reason yet).
        """
        self._drop_throttle(message.id)
        widget = self._widgets.get(message.id) or self._insert(message)
        widget.finish(message)  # resets a reused bubble to the message's (streaming) state
        throttle = StreamThrottle(parent=self)
        throttle.flushed.connect(widget.append_text)
        self._throttles[message.id] = throttle
        self._update_actions()
        self.scroll_to_bottom()

    def append_stream(self, message_id: str, text: str) -> None:
        """Queue streamed text for a bubble; it appears with the next throttled flush.

        Args:
            message_id: the streaming message.
            text: the chunk (ignored when that message is not streaming here).
        """
        throttle = self._throttles.get(message_id)
        if throttle is not None:
            throttle.push(text)

    def finish_stream(self, message: Message) -> None:
        """End a stream: show the stored message, rendered once, with its footer.

        Args:
            message: the finished message (its text replaces what streamed).
        """
        self._drop_throttle(message.id)
        widget = self._widgets.get(message.id)
        if widget is None:
            self._insert(message)
        else:
            widget.finish(message)
        self._update_actions()

    def clear(self) -> None:
        """Remove every message and show the empty-state hint."""
        for message_id in list(self._throttles):
            self._drop_throttle(message_id)
        for widget in self._widgets.values():
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self._widgets.clear()
        self._empty.setVisible(True)
        self._follow = True

    def message_widget(self, message_id: str) -> MessageWidget | None:
        """Return the bubble showing a message, or None."""
        return self._widgets.get(message_id)

    def message_ids(self) -> list[str]:
        """Return the ids of the messages shown, in order."""
        return list(self._widgets)

    def messages(self) -> list[Message]:
        """Return the messages shown, in order (as their bubbles last got them)."""
        return [widget.message for widget in self._widgets.values()]

    def is_streaming(self) -> bool:
        """Whether an answer is streaming into this view."""
        return bool(self._throttles)

    def scroll_to_bottom(self) -> None:
        """Jump to the end and follow the text from now on."""
        self._follow = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _insert(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message, self._thumbnail_for, self.widget())
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.edit_requested.connect(self.edit_requested)
        widget.attachment_activated.connect(self.attachment_activated)
        widget.locate_requested.connect(self.locate_requested)
        widget.boxes_requested.connect(self.boxes_requested)
        widget.box_hovered.connect(self.box_hovered)
        # Before the trailing stretch, which keeps short chats at the top.
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self._widgets[message.id] = widget
        self._empty.setVisible(False)
        self.message_inserted.emit(message.id)
        return widget

    def _update_actions(self) -> None:
        busy = self.is_streaming()
        last_assistant = next(
            (w for w in reversed(self._widgets.values()) if w.message.role is Role.ASSISTANT),
            None,
        )
        for widget in self._widgets.values():
            widget.set_actions_enabled(not busy)
            widget.set_regenerate_available(widget is last_assistant and not widget.streaming)

    def _drop_throttle(self, message_id: str) -> None:
        throttle = self._throttles.pop(message_id, None)
        if throttle is not None:
            # The finished message's text replaces the stream, so pending chunks are not needed.
            throttle.discard()
            throttle.deleteLater()

    def _on_scroll_bar_value_changed(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - _BOTTOM_SLACK_PX

    def _on_scroll_bar_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
