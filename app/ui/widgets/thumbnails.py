"""Small pictures of image attachments for the chat's chips, read once and cached by blob."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImageReader, QPixmap

from app.core.messages import Attachment, AttachmentKind

THUMB_SIZE = QSize(96, 96)  # drawn at 48 logical pixels, sharp on 2x screens


class ThumbnailCache:
    """Reads each image blob's thumbnail once (scaled while decoding) and keeps it.

    Args:
        blob_path: maps a blob's SHA-256 to its file.
    """

    def __init__(self, blob_path: Callable[[str], Path]) -> None:
        self._blob_path = blob_path
        self._thumbs: dict[str, QPixmap | None] = {}

    def __call__(self, attachment: Attachment) -> QPixmap | None:
        """A small picture of an image attachment, or None for other kinds (and unreadable ones).

        Args:
            attachment: the attachment.

        Returns:
            A pixmap with device pixel ratio 2, or None.
        """
        sha = attachment.sha256
        if attachment.kind is not AttachmentKind.IMAGE or not sha:
            return None
        if sha not in self._thumbs:
            reader = QImageReader(str(self._blob_path(sha)))
            size = reader.size()
            if size.isValid():
                reader.setScaledSize(size.scaled(THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            pixmap = None if image.isNull() else QPixmap.fromImage(image)
            if pixmap is not None:
                pixmap.setDevicePixelRatio(2.0)
            self._thumbs[sha] = pixmap
        return self._thumbs[sha]
