"""One chat bubble: who wrote it, its attachments, its text, how it ended, and its actions."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chunk_notes import split_chunk_notes
from app.core.grounding.colours import colour_of, label_colours
from app.core.messages import Attachment, AttachmentKind, Message, Role, StopReason
from app.core.timings_text import timing_parts
from app.ui.transcript.answer_links import AnswerLinker
from app.ui.transcript.attachment_badge import AttachmentBadge, ThumbnailFor
from app.ui.transcript.citation_links import link_citations
from app.ui.widgets.flow_layout import FlowLayout
from app.ui.widgets.markdown_view import SafeMarkdownView
from app.ui.widgets.theme import is_dark

_NOTE_HEADS = re.compile(r"^\*\*\d+\. ", re.MULTILINE)  # "**3. report.pdf pp. 25–36**"
_STOP_WORDS = {
    StopReason.LENGTH: "cut at max tokens",
    StopReason.TIME: "stopped at the time limit",
    StopReason.CANCELLED: "stopped",
    StopReason.ERROR: "failed",
}


def role_label(role: Role) -> str:
    """Name the author of a message as the bubble shows it."""
    return "You" if role is Role.USER else "Scout"


def footer_text(message: Message) -> str:
    """Describe how an answer ended and how fast it came ("12.3 tok/s · first token 0.42 s").

    Args:
        message: the message; user messages and unfinished answers get "".

    Returns:
        Parts joined with " · ", or "" when there is nothing to say.
    """
    if message.role is not Role.ASSISTANT or message.stop_reason is None:
        return ""
    parts = [_STOP_WORDS[message.stop_reason]] if message.stop_reason in _STOP_WORDS else []
    parts.extend(timing_parts(message.timings, load_label="model load"))
    return " · ".join(parts)


class MessageWidget(QFrame):
    """A message bubble. Finished text is rendered markdown; a streaming answer is plain text
    appended at the end (no re-render per chunk) and rendered once when `finish` is called —
    off the GUI thread when long, and not at all past the view's size policy unless asked.

    Args:
        message: what to show; an assistant message with no stop reason starts streaming.
        thumbnail_for: gives a thumbnail for an attachment chip, or None for a name-only chip.
        parent: the usual widget parent.
    """

    #: str: the message id whose answer the user wants again.
    regenerate_requested = Signal(str)
    #: str: the id of the user message to edit and send again.
    edit_requested = Signal(str)
    #: Attachment: the user clicked one of this message's attachment chips.
    attachment_activated = Signal(object)
    #: Attachment: "Locate in this image…" was chosen on an image chip.
    locate_requested = Signal(object)
    #: str: the message id whose boxes the user wants to see ("Show boxes").
    boxes_requested = Signal(str)
    #: (str, int): the message id and the box whose words are under the pointer (-1: none).
    box_hovered = Signal(str, int)
    #: (str, QUrl): the message id and the citation link clicked in it (scout-cite:).
    citation_activated = Signal(str, QUrl)

    def __init__(
        self,
        message: Message,
        thumbnail_for: ThumbnailFor | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._message = message
        self._thumbnail_for = thumbnail_for
        self._parts: list[str] = []
        self._streaming = False
        self._linker: AnswerLinker | None = None
        # Kept so the links can be put on again when the text is re-rendered off the GUI thread.
        self._grounding: tuple[Sequence[tuple[int, int, int]], Sequence[str]] = ((), ())
        self._known_files: frozenset[str] = frozenset()
        self._answer_text = ""  # what the main view shows (the chunk notes are folded apart)
        self._notes_text = ""
        self.citations = 0
        self.setObjectName("messageBubble")
        self.setProperty("role", str(message.role))
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self._role_label = QLabel(role_label(message.role))
        self._role_label.setObjectName("messageRole")
        self._copy_button = self._action_button("Copy", "Copy message text", self._on_copy_clicked)
        self._edit_button = self._action_button(
            "Edit && resend", "Edit and resend message", self._on_edit_clicked
        )
        self._regenerate_button = self._action_button(
            "Regenerate", "Regenerate answer", self._on_regenerate_clicked
        )
        self._boxes_button = self._action_button(
            "Show boxes", "Show boxes on the image", self._on_boxes_clicked
        )
        self._boxes_button.setObjectName("showBoxesButton")
        self._edit_button.setVisible(message.role is Role.USER)
        self._regenerate_button.setVisible(False)

        header = QHBoxLayout()
        header.addWidget(self._role_label)
        header.addStretch(1)
        buttons = (self._boxes_button, self._copy_button, self._edit_button)
        for button in (*buttons, self._regenerate_button):
            header.addWidget(button)

        self._chips_box = QWidget(self)
        self._chips = FlowLayout(self._chips_box)
        self._view = SafeMarkdownView(self)
        # The notes of an answer given chunk by chunk, folded under a button.
        self._chunk_toggle = QPushButton(self)
        self._chunk_toggle.setObjectName("chunkNotesToggle")
        self._chunk_toggle.setFlat(True)
        self._chunk_toggle.setCheckable(True)
        self._chunk_toggle.toggled.connect(self._on_chunk_toggle_toggled)
        self._chunk_view = SafeMarkdownView(self)
        self._chunk_view.setObjectName("chunkNotes")
        self._chunk_view.setAccessibleName("Notes taken chunk by chunk")
        for view in (self._view, self._chunk_view):
            view.citation_activated.connect(self._on_view_citation_activated)
            view.markdown_rendered.connect(self._on_view_markdown_rendered)
            if is_dark():  # a light code background would glare in a dark window
                view.code_style = "monokai"
        self._footer = QLabel()
        self._footer.setObjectName("messageFooter")
        self._error = QLabel()
        self._error.setObjectName("messageError")
        self._notes = QLabel()
        self._notes.setObjectName("messageNotes")
        self._notes.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        for label in (self._footer, self._error, self._notes):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self._chips_box)
        layout.addWidget(self._view)
        layout.addWidget(self._chunk_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self._chunk_view)
        layout.addWidget(self._notes)
        layout.addWidget(self._footer)
        layout.addWidget(self._error)
        self._show(message)

    @property
    def message(self) -> Message:
        """The message as last given (streamed text is not in it until `finish`)."""
        return self._message

    @property
    def message_id(self) -> str:
        """The id of the message shown."""
        return self._message.id

    @property
    def text(self) -> str:
        """The raw text shown: the message's markdown, or what has streamed in so far."""
        return "".join(self._parts)

    @property
    def streaming(self) -> bool:
        """Whether an answer is still arriving."""
        return self._streaming

    @property
    def view(self) -> SafeMarkdownView:
        """The text view (for tests and for the chat to measure)."""
        return self._view

    def append_text(self, chunk: str) -> None:
        """Add streamed text at the end; costs the chunk's length, not the message's.

        Args:
            chunk: the next piece of the answer.
        """
        if not chunk:
            return
        self._parts.append(chunk)
        self._view.append_plain(chunk)

    def finish(self, message: Message) -> None:
        """Show the final message: its text rendered as markdown once, its footer and error.

        Args:
            message: the stored message (its text wins over what was streamed).
        """
        self._show(message)

    def set_regenerate_available(self, available: bool) -> None:
        """Show Regenerate (only the last answer of a chat offers it).

        Args:
            available: whether to show the button; user messages never show it.
        """
        self._regenerate_button.setVisible(available and self._message.role is Role.ASSISTANT)

    def set_actions_enabled(self, enabled: bool) -> None:
        """Enable or disable Regenerate and Edit & resend (off while another answer streams).

        Args:
            enabled: the new state; Copy always stays enabled.
        """
        self._edit_button.setEnabled(enabled)
        self._regenerate_button.setEnabled(enabled)

    def set_grounding(self, spans: Sequence[tuple[int, int, int]], notes: Sequence[str]) -> None:
        """Link the answer's words to its boxes and say which boxes were left out.

        Args:
            spans: `box_spans` of the text (box index, start, end); empty: no linking.
            notes: sentences about boxes that were dropped (shown small, under the text).
        """
        self._grounding = (tuple(spans), tuple(notes))
        self._drop_linker()
        if spans and not self._streaming:
            boxes = self._message.boxes
            palette = label_colours(box.label for box in boxes)
            colours = {i: QColor(colour_of(box.label, palette)) for i, box in enumerate(boxes)}
            self._linker = AnswerLinker(self._view, self.text, spans, colours)
            self._linker.box_hovered.connect(self._on_linker_box_hovered)
        self._notes.setText("\n".join(f"⚠ {note}" for note in notes))
        self._notes.setVisible(bool(notes))

    def set_citations(self, known_files: Collection[str]) -> int:
        """Make the answer's citations of these files links that open the source.

        Args:
            known_files: the files of the documents attached in the conversation.

        Returns:
            How many citations were linked (kept when the message is shown again).
        """
        self._known_files = frozenset(known_files)
        return self._link_citations()

    @property
    def chunk_notes_view(self) -> SafeMarkdownView:
        """The folded notes of an answer given chunk by chunk (hidden until unfolded)."""
        return self._chunk_view

    @property
    def chunk_notes_toggle(self) -> QPushButton:
        """The button that unfolds the chunk notes."""
        return self._chunk_toggle

    @property
    def linker(self) -> AnswerLinker | None:
        """What links this answer's words to its boxes (None: no boxes linked)."""
        return self._linker

    def highlight_box(self, index: int | None) -> None:
        """Highlight the words of one of this answer's boxes (None clears).

        Args:
            index: the box's index in the message.
        """
        if self._linker is not None:
            self._linker.highlight(index)

    def chip_menu(self, attachment: Attachment) -> QMenu:
        """The right-click menu of an attachment chip (image chips offer Locate).

        Args:
            attachment: the chip's attachment.

        Returns:
            A menu, not shown yet.
        """
        menu = QMenu(self)
        show = menu.addAction("Open in viewer")
        show.triggered.connect(lambda: self.attachment_activated.emit(attachment))
        if attachment.kind is AttachmentKind.IMAGE and attachment.sha256:
            locate = menu.addAction("Locate in this image…")
            locate.triggered.connect(lambda: self.locate_requested.emit(attachment))
        return menu

    def copy_to_clipboard(self) -> None:
        """Put the raw markdown text on the clipboard."""
        QGuiApplication.clipboard().setText(self.text)

    def _show(self, message: Message) -> None:
        self._message = message
        self._parts = [message.text] if message.text else []
        self._streaming = message.role is Role.ASSISTANT and message.stop_reason is None
        self._set_chips(message)
        self._answer_text, self._notes_text = message.text, ""
        if self._streaming:
            self._view.set_plain(message.text)
        else:
            self._answer_text, self._notes_text = split_chunk_notes(message.text)
            self._view.set_markdown(self._answer_text)
        self._show_chunk_notes()
        self._link_citations()
        footer = footer_text(message)
        self._footer.setText(footer)
        self._footer.setVisible(bool(footer))
        self._error.setText(message.error)
        self._error.setVisible(bool(message.error))
        self.set_grounding((), ())
        count = len(message.boxes) if not self._streaming else 0
        self._boxes_button.setText(f"Show boxes ({count})")
        self._boxes_button.setVisible(count > 0)

    def _set_chips(self, message: Message) -> None:
        while self._chips.count():
            item = self._chips.takeAt(0)
            if (widget := item.widget()) is not None:
                widget.deleteLater()
        for attachment in message.attachments:
            thumbnail = self._thumbnail_for(attachment) if self._thumbnail_for else None
            chip = AttachmentBadge(attachment, thumbnail, self._chips_box)
            chip.activated.connect(self.attachment_activated)
            chip.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            chip.customContextMenuRequested.connect(
                lambda pos, c=chip: self._on_chip_context_menu_requested(c, pos)
            )
            self._chips.addWidget(chip)
        self._chips_box.setVisible(bool(message.attachments))

    def _show_chunk_notes(self) -> None:
        has_notes = bool(self._notes_text)
        self._chunk_toggle.setVisible(has_notes)
        if has_notes:
            count = len(_NOTE_HEADS.findall(self._notes_text))
            self._chunk_toggle.setText(f"▸ Notes taken on each chunk ({count})")
            self._chunk_view.set_markdown(self._notes_text)
        self._chunk_toggle.blockSignals(True)
        self._chunk_toggle.setChecked(False)
        self._chunk_toggle.blockSignals(False)
        self._chunk_view.setVisible(False)

    def _link_citations(self) -> int:
        if self._streaming or not self._known_files:
            self.citations = 0
            return 0
        linked = link_citations(self._view, self._answer_text, self._known_files)
        if self._notes_text:
            linked += link_citations(self._chunk_view, self._notes_text, self._known_files)
        self.citations = len(linked)
        return self.citations

    def _on_chunk_toggle_toggled(self, shown: bool) -> None:
        self._chunk_view.setVisible(shown)
        arrow = "▾" if shown else "▸"
        self._chunk_toggle.setText(arrow + self._chunk_toggle.text()[1:])

    def _on_view_citation_activated(self, url: QUrl) -> None:
        self.citation_activated.emit(self._message.id, url)

    def _on_view_markdown_rendered(self) -> None:
        # The formatted document replaced the plain one: links and box ranges pointed into it.
        self._link_citations()
        self.set_grounding(*self._grounding)

    def _action_button(self, text: str, accessible: str, slot: object) -> QPushButton:
        button = QPushButton(text, self)
        button.setFlat(True)
        button.setAccessibleName(accessible)
        button.setToolTip(accessible)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        button.clicked.connect(slot)
        return button

    def _on_copy_clicked(self) -> None:
        self.copy_to_clipboard()

    def _on_edit_clicked(self) -> None:
        self.edit_requested.emit(self._message.id)

    def _on_regenerate_clicked(self) -> None:
        self.regenerate_requested.emit(self._message.id)

    def _on_boxes_clicked(self) -> None:
        self.boxes_requested.emit(self._message.id)

    def _on_linker_box_hovered(self, index: int) -> None:
        self.box_hovered.emit(self._message.id, index)

    def _on_chip_context_menu_requested(self, chip: AttachmentBadge, pos: QPoint) -> None:
        menu = self.chip_menu(chip.attachment)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(chip.mapToGlobal(pos))

    def _drop_linker(self) -> None:
        if self._linker is not None:
            self._linker.detach()
            self._linker.deleteLater()
            self._linker = None
