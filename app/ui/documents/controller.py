"""Documents in the window: the context meter, PDF options, reports, chunked answers, citations."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtWidgets import QDialog, QDockWidget

from app.core.cited_source import CitedSource, conversation_sources, find_source, source_files
from app.core.document_selection import (
    default_page_images,
    selectable_keys,
    trim_document,
    trimmed_detail,
)
from app.core.documents import Document, load_document, parse_page_image_name
from app.core.messages import Attachment, AttachmentKind, Message, Role
from app.core.settings import Settings
from app.inference.context_count import PROMPT_OVERHEAD, TURN_OVERHEAD, ContextInputs
from app.inference.engine import EngineStatus
from app.store.sessions import SessionStore
from app.ui.composer.chips import ComposerChip
from app.ui.composer.composer import Composer
from app.ui.documents.chunk_progress import ChunkProgress
from app.ui.documents.chunked_answers import ChunkedAnswers
from app.ui.documents.context_meter import ContextMeter, ContextMeterBar
from app.ui.documents.report import DocumentReport
from app.ui.documents.source_view import SourceView
from app.ui.ports import ChatPort
from app.ui.tasks.ingest_pool import IngestPool
from app.ui.tasks.pool import TaskPool
from app.ui.transcript.citation_links import parse_cite_url
from app.ui.transcript.view import ChatView
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage
from app.ui.widgets.dock_present import present_dock

if TYPE_CHECKING:  # ingest is imported where it runs, on the pool threads
    from app.core.ingest.common import BlobSink

log = logging.getLogger(__name__)

#: Chunk size used when no model folder says what fits.
DEFAULT_CHUNK_CAPACITY = 8192
_MIN_CHUNK_TOKENS = 256

AttachmentsDone = Callable[[list[Attachment]], None]


class DocumentsController(QObject):
    """Connects the composer's documents, the context meter, chunked answers and citations.

    The window connects the chat's signals to the `on_chat_*` slots.

    Args:
        store: the session store (blobs).
        chat: the chat (its history, and it saves chunked answers).
        view: the transcript.
        composer: the composer (chips, meter, progress row).
        ingest: the pool that reads files (and renders PDF pages).
        viewer: the image viewer a cited PDF page is shown in.
        dock: the dock that holds the viewer.
        settings: the settings in force.
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
        ingest: IngestPool,
        viewer: ImageViewer,
        dock: QDockWidget,
        settings: Callable[[], Settings],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._chat = chat
        self._view = view
        self._composer = composer
        self._ingest = ingest
        self._viewer = viewer
        self._dock = dock
        self._settings = settings
        self._free_bytes: int | None = None
        self._server_context: int | None = None  # a server's max_model_len, once connected
        self._tasks = TaskPool(1, self)
        self._jobs: dict[int, AttachmentsDone] = {}
        self._files: dict[str, frozenset[str]] = {}  # attachment sha → the files it holds
        #: The last report and source view opened (tests look at them).
        self.report: DocumentReport | None = None
        self.source_view: SourceView | None = None
        #: The context meter's row and the chunk-by-chunk progress row, in the composer.
        self.meter_bar = ContextMeterBar(composer)
        self.chunk_progress = ChunkProgress(composer)
        composer.add_row(self.meter_bar)
        composer.add_row(self.chunk_progress)
        self.meter = ContextMeter(self.meter_bar, self._inputs, store.blobs.path, self)
        self.chunked = ChunkedAnswers(
            store=store, chat=chat, composer=composer, progress=self.chunk_progress,
            settings=settings, tasks=self._tasks, parent=self,
        )  # fmt: skip
        self.chunk_progress.cancel_requested.connect(composer.stop_requested)
        ingest.ingest_finished.connect(self._on_ingest_finished)
        composer.draft_changed.connect(self.meter.schedule)
        self.meter_bar.chunked_requested.connect(self.answer_chunk_by_chunk)
        self.meter_bar.drop_requested.connect(self.open_largest_report)
        chips = composer.chips
        chips.report_requested.connect(self.open_report)
        chips.pdf_mode_requested.connect(self.set_pdf_mode)
        chips.pages_requested.connect(self.choose_pages)
        view.message_inserted.connect(self._on_view_message_inserted)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop counting and join the pools."""
        self.meter.shutdown(timeout_ms)
        self._tasks.shutdown(timeout_ms)

    # -- the meter and chunked answers -------------------------------------------------------

    def _inputs(self) -> ContextInputs | None:
        history = tuple(self._chat.history_for_draft())
        text = self._composer.text()
        attachments = tuple(self._composer.chips.ready_attachments())
        if not history and not text.strip() and not attachments:
            return None
        settings = self._settings()
        server = settings.backend == "server"
        return ContextInputs(
            history, text, attachments, settings.max_new_tokens,
            "" if server else settings.model_dir, self._free_bytes,
            self._server_context if server else None,
        )  # fmt: skip

    def answer_chunk_by_chunk(self) -> bool:
        """Start a chunk-by-chunk answer sized to the usable context.

        Returns:
            True when it started.
        """
        estimate = self.meter.estimate
        capacity = estimate.capacity if estimate and estimate.capacity else DEFAULT_CHUNK_CAPACITY
        room = capacity - self._settings().max_new_tokens - TURN_OVERHEAD - PROMPT_OVERHEAD
        if room < _MIN_CHUNK_TOKENS:
            self._composer.show_notice(
                f"The answer length ({self._settings().max_new_tokens:,} tokens) leaves no room "
                f"for document text in a context of {capacity:,}: lower it in Settings.",
                kind="error",
            )
            return False
        return self.chunked.send(room)

    # -- reports and PDF options -------------------------------------------------------------

    def open_largest_report(self) -> None:
        """Open the report of the biggest attached document (to drop files or pages)."""
        chips = self._composer.chips.document_chips()
        if not chips:
            self._composer.show_notice(
                "Remove attachments (×) or images to make room.", kind="info"
            )
            return
        self.open_report(max(chips, key=lambda c: c.attachment.size if c.attachment else 0))

    def open_report(self, chip: ComposerChip, images_first: bool = False) -> None:
        """Show what a document chip read, with ticks to choose its files or pages.

        Args:
            chip: a ready document chip.
            images_first: scroll the PDF's page images column into view (Choose pages…).
        """
        original = chip.original or chip.attachment
        current = chip.attachment
        if original is None or current is None:
            return
        blob_path = self._store.blobs.path

        def load() -> tuple[Document | None, Document | None]:
            return load_document(original, blob_path), load_document(current, blob_path)

        self._tasks.run(
            load, lambda docs: self._show_report(chip, original, *docs, images_first=images_first)
        )

    def choose_pages(self, chip: ComposerChip) -> None:
        """Choose which pages of a PDF go in as images (the report, images column)."""
        self.open_report(chip, images_first=True)

    def set_pdf_mode(self, chip: ComposerChip, mode: str) -> None:
        """Send a PDF as text, page images or both; images start with `default_page_images`."""
        chip.pdf_mode = mode
        chips = self._composer.chips
        if mode == "text":
            chips.set_page_images(chip, [])
        elif not chips.page_chips(chip) and chip.attachment is not None:
            attachment, blob_path = chip.attachment, self._store.blobs.path

            def pages() -> list[int]:
                document = load_document(attachment, blob_path)
                return default_page_images(document) if document else []

            self._tasks.run(pages, lambda found: self._render_pages(chip, found))
        chip.refresh()
        chips.changed.emit()

    def _show_report(
        self,
        chip: ComposerChip,
        original: Attachment,
        document: Document | None,
        current: Document | None,
        *,
        images_first: bool = False,
    ) -> None:
        if document is None or chip not in self._composer.chips.chips():
            self.message_posted.emit("That document's report could not be read.")
            return
        kept = selectable_keys(current or document)
        images = [
            parsed[1]
            for page_chip in self._composer.chips.page_chips(chip)
            if page_chip.attachment and (parsed := parse_page_image_name(page_chip.attachment.name))
        ]
        dialog = DocumentReport(document, kept, images, self._view.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.finished.connect(
            lambda result: self._on_report_finished(dialog, chip, original, document, result)
        )
        self.report = dialog
        if images_first and dialog.tree.topLevelItemCount():
            dialog.tree.setCurrentItem(dialog.tree.topLevelItem(0), 2)
        dialog.open()

    def _on_report_finished(
        self,
        dialog: DocumentReport,
        chip: ComposerChip,
        original: Attachment,
        document: Document,
        result: int,
    ) -> None:
        if self.report is dialog:
            self.report = None
        if result != QDialog.DialogCode.Accepted or chip not in self._composer.chips.chips():
            return
        kept, pages = dialog.kept(), dialog.image_pages()
        if chip.is_pdf:
            chip.pdf_mode = "images" if pages and not kept else "both" if pages else "text"
            self._render_pages(chip, pages)
        if not kept and not pages:
            self._composer.show_notice(
                f"Nothing of {original.name} is ticked: remove its chip (×) instead.", kind="info"
            )
            return
        if kept == set(selectable_keys(document)):
            self._composer.chips.replace_attachment(chip, original)
            return
        if not kept:
            chip.refresh()
            return
        trimmed = trim_document(document, kept)
        detail = trimmed_detail(original, trimmed)

        def store(blobs: BlobSink) -> list[Attachment]:
            from app.core.ingest.common import document_attachment

            made = document_attachment(
                trimmed,
                detail,
                original.mime,
                original.source_path,
                blobs,
            )
            return [made]

        def done(found: list[Attachment]) -> None:
            chip.original = original
            self._composer.chips.replace_attachment(chip, found[0])

        self._submit(original.name, store, done)

    def _render_pages(self, chip: ComposerChip, pages: Sequence[int]) -> None:
        attachment = chip.attachment
        chips = self._composer.chips
        if not pages or attachment is None:
            chips.set_page_images(chip, [])
            chip.refresh()
            return
        blob_path = self._store.blobs.path

        def render(blobs: BlobSink) -> list[Attachment]:
            from app.core.ingest import render_pdf_pages

            document = load_document(attachment, blob_path)
            if document is None or not document.original_sha256:
                return []
            return render_pdf_pages(
                blob_path(document.original_sha256), pages, blobs,
                name=document.name, source_path=attachment.source_path,
            )  # fmt: skip

        def done(found: list[Attachment]) -> None:
            if chip in chips.chips():
                chips.set_page_images(chip, found)
                chip.refresh()

        self._submit(attachment.name, render, done)

    def _submit(
        self, name: str, work: Callable[[BlobSink], list[Attachment]], done: AttachmentsDone
    ) -> None:
        self._jobs[self._ingest.submit_call(name, work)] = done

    def _on_ingest_finished(self, job_id: int, attachments: object) -> None:
        done = self._jobs.pop(job_id, None)
        if done is not None:
            done(list(attachments))  # type: ignore[call-overload]

    # -- citations ---------------------------------------------------------------------------

    def open_citation(self, message_id: str, url: QUrl) -> bool:
        """Open the source a citation link names: a PDF page in the viewer, a file in a view.

        Args:
            message_id: the answer the link is in.
            url: the `scout-cite:` link.

        Returns:
            False when the link is not a citation link.
        """
        place = parse_cite_url(url)
        if place is None:
            return False
        sources = conversation_sources(self._view.messages(), upto=message_id)
        blob_path = self._store.blobs.path

        def find() -> CitedSource | None:
            return find_source(place.file, place.page, place.line, sources, blob_path)

        self._tasks.run(find, lambda found: self._show_source(place.file, found))
        return True

    def _show_source(self, file: str, source: CitedSource | None) -> None:
        if source is None:
            self.message_posted.emit(f"{file} is not among this chat's attachments any more.")
            return
        if source.pdf_path is not None and source.page is not None:
            pdf_path, page = source.pdf_path, source.page

            def render(blobs: BlobSink) -> list[Attachment]:
                from app.core.ingest import render_pdf_pages

                return render_pdf_pages(
                    pdf_path, [page], blobs, name=source.pdf_name,
                    source_path=source.source_path,
                )  # fmt: skip

            self._submit(source.pdf_name, render, lambda found: self._show_page(source, found))
            return
        self._open_text(source)

    def _show_page(self, source: CitedSource, found: list[Attachment]) -> None:
        image = next((a for a in found if a.kind is AttachmentKind.IMAGE and a.sha256), None)
        if image is None or image.status.value == "error":
            reason = found[0].detail if found else "it could not be rendered"
            self.message_posted.emit(f"Showing the text of {source.title}: {reason}")
            self._open_text(source)
            return
        self._viewer.show_images([ViewerImage(image.name, self._store.blobs.path(image.sha256))])
        present_dock(self._dock)
        self.message_posted.emit(f"Showing {source.title}.")

    def _open_text(self, source: CitedSource) -> None:
        view = SourceView(source.title, source.text, source.first_line, source.line,
                          self._view.window())  # fmt: skip
        self.source_view = view
        view.show()

    def _link(self, message: Message) -> None:
        """Make an answer's citations links, once the files its documents hold are known."""
        widget = self._view.message_widget(message.id)
        if widget is None or message.role is not Role.ASSISTANT or message.stop_reason is None:
            return
        sources = conversation_sources(self._view.messages(), upto=message.id)
        missing = [a for a in sources if a.sha256 not in self._files]
        if not missing:
            files = (
                set().union(*(self._files[a.sha256 or ""] for a in sources)) if sources else set()
            )
            widget.set_citations(files)
            return
        blob_path = self._store.blobs.path

        def load() -> dict[str, frozenset[str]]:
            return {a.sha256 or "": source_files(a, blob_path) for a in missing}

        def done(found: dict[str, frozenset[str]]) -> None:
            self._files.update(found)
            if self._view.message_widget(message.id) is widget:
                self._link(message)

        self._tasks.run(load, done)

    # -- slots -------------------------------------------------------------------------------

    def _on_view_message_inserted(self, message_id: str) -> None:
        widget = self._view.message_widget(message_id)
        if widget is None:
            return
        widget.citation_activated.connect(self.open_citation)
        self._link(widget.message)

    def on_chat_answer_finished(self, message: Message) -> None:
        """An answer was saved: link its citations, count the context again."""
        self.chunked.end()
        self._link(message)
        self.meter.schedule()

    def on_chat_generating_changed(self, generating: bool) -> None:
        """An answer started or ended: no chunked answer while one is written."""
        self.meter_bar.chunked_button.setEnabled(not generating)
        if not generating:
            self.chunked.end()

    def on_chat_changed(self, _session_id: object = None) -> None:
        """Another chat is shown, or the chats changed: count the context again."""
        self.meter.schedule()

    def on_chat_engine_status_changed(self, status: EngineStatus | None) -> None:
        """The model was loaded (with its free memory) or unloaded: the budget changes."""
        free = None
        if status is not None and status.memory_total_bytes is not None:
            free = status.memory_total_bytes - (status.memory_used_bytes or 0)
        self._free_bytes = free
        self._server_context = status.context_tokens if status is not None else None
        self.chunked.on_server = status is not None and status.device == "server"
        self.meter.schedule()
