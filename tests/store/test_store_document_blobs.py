"""A document's stored PDF lives and dies with the attachment that names it inside its JSON."""

from __future__ import annotations

import os
from pathlib import Path

from app.core.documents import load_document
from app.core.ingest import ingest_path
from app.store.export import export_session, import_session
from app.store.sessions import SessionStore
from tests.helpers.pdf_samples import text_pdf


def _chat_with_pdf(store: SessionStore, tmp_path: Path, title: str) -> tuple[str, str, str]:
    pdf = tmp_path / f"{title}.pdf"
    pdf.write_bytes(text_pdf([f"{title} page one", f"{title} page two"]))
    [attachment] = ingest_path(pdf, store.blobs)
    document = load_document(attachment, store.blobs.path)
    assert document is not None and document.original_sha256
    session = store.create_session(title)
    store.add_user_message(session.id, "Summarise it", [attachment])
    return session.id, attachment.sha256, document.original_sha256


def test_json_export_carries_the_pdf_and_import_restores_it(tmp_path):
    source = SessionStore.open(tmp_path / "a")
    session_id, doc_sha, pdf_sha = _chat_with_pdf(source, tmp_path, "report")
    export_session(source, session_id, "json", tmp_path / "chat.json")
    source.close()

    target = SessionStore.open(tmp_path / "b")
    try:
        import_session(target, tmp_path / "chat.json")
        assert target.blobs.has(doc_sha)
        assert target.blobs.has(pdf_sha)  # page images can still be rendered after import
    finally:
        target.close()


def test_emptying_the_trash_removes_the_pdf_unless_another_chat_uses_it(tmp_path):
    store = SessionStore.open(tmp_path / "data")
    try:
        gone_id, gone_doc, gone_pdf = _chat_with_pdf(store, tmp_path, "old")
        _, kept_doc, kept_pdf = _chat_with_pdf(store, tmp_path, "kept")
        store.trash_session(gone_id)
        # Blobs written within the last hour are spared (a file may sit unsent in the composer),
        # so age them as if the chat were days old.
        for sha in (gone_doc, gone_pdf, kept_doc, kept_pdf):
            path = store.blobs.path(sha)
            os.utime(path, (1_000_000, 1_000_000))
        assert store.empty_trash() == 1
        assert not store.blobs.has(gone_doc) and not store.blobs.has(gone_pdf)
        assert store.blobs.has(kept_doc) and store.blobs.has(kept_pdf)
    finally:
        store.close()
