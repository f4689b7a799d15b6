"""A badge showing one attachment of a sent message: thumbnail or name, and what became of it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QToolButton, QWidget

from app.core.messages import Attachment, AttachmentStatus
from app.ui.widgets.plain_text import plain_button_text, plain_html

ThumbnailFor = Callable[[Attachment], QPixmap | None]

_THUMBNAIL_SIZE = QSize(48, 48)
_MAX_CHIP_CHARS = 40  # longer names and details are cut on the chip; the tooltip has them whole


def status_text(attachment: Attachment) -> str:
    """Say in a few words what became of an attachment ("used", "skipped: 6th image ...").

    Args:
        attachment: the attachment.

    Returns:
        The status word, followed by the detail sentence for skipped and failed ones.
    """
    word = str(attachment.status)
    if (
        attachment.status in (AttachmentStatus.SKIPPED, AttachmentStatus.ERROR)
        and attachment.detail
    ):
        return f"{word}: {attachment.detail}"
    return word


class AttachmentBadge(QToolButton):
    """A flat button with the attachment's thumbnail (when there is one), name and status.

    Args:
        attachment: what to show.
        thumbnail: a small picture of it, or None.
        parent: the usual widget parent.
    """

    #: Attachment: the user clicked the chip (to open the image viewer, say).
    activated = Signal(object)

    def __init__(
        self,
        attachment: Attachment,
        thumbnail: QPixmap | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.attachment = attachment
        status = status_text(attachment)
        self.setObjectName("attachmentBadge")
        self.setProperty("status", str(attachment.status))
        self.setAutoRaise(True)
        self.setText(plain_button_text(f"{_shorten(attachment.name)}\n{_shorten(status)}"))
        self.setToolTip(plain_html(f"{attachment.name}: {attachment.detail or status}"))
        self.setAccessibleName(f"Attachment {attachment.name}, {status}")
        if thumbnail is not None and not thumbnail.isNull():
            self.setIcon(QIcon(thumbnail))
            self.setIconSize(_THUMBNAIL_SIZE)
            self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        else:
            self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.clicked.connect(self._on_self_clicked)

    def _on_self_clicked(self) -> None:
        self.activated.emit(self.attachment)


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_CHIP_CHARS else text[: _MAX_CHIP_CHARS - 1] + "…"
