"""Runs `app.core.ingest` on the task pool so reading files never blocks the GUI thread."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.ui.tasks.pool import TaskPool

if TYPE_CHECKING:  # ingest itself is imported on the pool threads (see `_ingest`)
    from app.core.ingest.common import BlobFolder
    from app.core.settings import IngestLimits

log = logging.getLogger(__name__)


class IngestPool(QObject):
    """Queue files (or a pasted image) for ingest; each job answers once with `ingest_finished`.

    Args:
        blobs: where ingest stores content (`app.store.blobs.BlobStore` or any `BlobFolder`).
        max_threads: pool size; reading is I/O and decoding bound, two or three is plenty.
    """

    #: (job_id, list[Attachment]) — what the path turned into (error attachments included).
    ingest_finished = Signal(int, object)

    def __init__(
        self, blobs: BlobFolder, max_threads: int = 3, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._blobs = blobs
        self._tasks = TaskPool(max_threads, self)
        self._next_id = 0
        self._pending: set[int] = set()

    def submit_path(
        self, path: Path, password: str | None = None, limits: IngestLimits | None = None
    ) -> int:
        """Ingest a file or a folder in the background (reading and decoding happen there).

        Args:
            path: what the user dropped, pasted or picked.
            password: for an encrypted PDF, once the user gave it.
            limits: the text file and folder limits set in Settings (None: the defaults).

        Returns:
            The job id `ingest_finished` will carry.
        """
        blobs = self._blobs
        return self._submit(path.name or str(path), lambda: _ingest(path, blobs, password, limits))

    def submit_call(self, name: str, work: Callable[[BlobFolder], list[Attachment]]) -> int:
        """Run other attachment work on the pool (render PDF pages, store a trimmed document).

        Args:
            name: what the work is about, for the error attachment if it raises.
            work: called with the blob sink on a pool thread; returns attachments.

        Returns:
            The job id `ingest_finished` will carry.
        """
        blobs = self._blobs
        return self._submit(name, lambda: list(work(blobs)))

    def submit_image(self, image: QImage) -> int:
        """Save a pasted clipboard image as PNG and ingest it in the background.

        Args:
            image: the clipboard's image (QImage is safe to use off the GUI thread).

        Returns:
            The job id `ingest_finished` will carry.
        """
        name = time.strftime("pasted-image-%Y%m%d-%H%M%S.png")
        copy = QImage(image)  # detach from the clipboard's buffer before crossing threads
        blobs = self._blobs
        return self._submit(name, lambda: _ingest_image(copy, name, blobs))

    def pending(self) -> int:
        """How many jobs have not answered yet."""
        return len(self._pending)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Drop queued jobs and wait for running ones; True when the pool is idle."""
        return self._tasks.shutdown(timeout_ms)

    def _submit(self, name: str, work: Callable[[], list[Attachment]]) -> int:
        """Run `work`; it always answers, with attachments or with an error attachment."""
        self._next_id += 1
        job_id = self._next_id
        self._pending.add(job_id)

        def failed(sentence: str) -> None:
            # Ingest reports bad files as error attachments; this is a full disk or a bug,
            # and the chip must still say what became of the file.
            self._answer(job_id, [_error_attachment(name, f"{name} could not be read: {sentence}")])

        self._tasks.run(work, lambda found: self._answer(job_id, found), failed)
        return job_id

    def _answer(self, job_id: int, attachments: list[Attachment]) -> None:
        self._pending.discard(job_id)
        self.ingest_finished.emit(job_id, attachments)


def _ingest(
    path: Path,
    blobs: BlobFolder,
    password: str | None = None,
    limits: IngestLimits | None = None,
) -> list[Attachment]:
    # Imported here, on the pool thread: ingest pulls in Pillow and friends, which start-up
    # does not need.
    from app.core.ingest import ingest_path

    return list(ingest_path(path, blobs, password=password, limits=limits))


def _ingest_image(image: QImage, name: str, blobs: BlobFolder) -> list[Attachment]:
    with tempfile.TemporaryDirectory(prefix="scout-desk-paste-") as folder:
        target = Path(folder) / name
        if image.isNull() or not image.save(str(target), "PNG"):
            return [_error_attachment(name, "The pasted image could not be saved as PNG.")]
        return _ingest(target, blobs)


def _error_attachment(name: str, detail: str) -> Attachment:
    return Attachment(
        name=name, kind=AttachmentKind.TEXT, status=AttachmentStatus.ERROR, detail=detail
    )
