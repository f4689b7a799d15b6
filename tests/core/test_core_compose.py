"""Composing engine turns from stored messages: inlined text files, image limits, statuses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from app.core.compose import build_turns, format_text_attachment
from app.core.documents import (
    Document,
    DocumentSource,
    EntryStatus,
    ManifestEntry,
    Section,
    document_to_json,
    page_image_name,
)
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    ChatTurn,
    Message,
    Role,
    StopReason,
)
from app.store.blobs import BlobStore

READY = AttachmentStatus.READY


def _image(blobs: BlobStore, shade: int, status: AttachmentStatus = READY) -> Attachment:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (shade, 0, 0)).save(buffer, "PNG")
    sha = blobs.put_bytes(buffer.getvalue())
    return Attachment(f"img{shade}.png", AttachmentKind.IMAGE, status, sha256=sha, mime="image/png")


def _text(blobs: BlobStore, name: str, content: str) -> Attachment:
    sha = blobs.put_bytes(content.encode("utf-8"))
    return Attachment(name, AttachmentKind.TEXT, READY, sha256=sha, mime="text/plain")


def _msg(role: Role, text: str, *attachments: Attachment, n: int = 0) -> Message:
    stop = StopReason.EOS if role is Role.ASSISTANT else None
    return Message(f"m{n}", "s1", role, text, float(n), tuple(attachments), stop_reason=stop)


def test_plain_conversation_keeps_roles_and_order(blobs: BlobStore) -> None:
    history = [
        _msg(Role.USER, "Hi", n=1),
        _msg(Role.ASSISTANT, "Hello!", n=2),
        _msg(Role.USER, "How are you?", n=3),
    ]

    turns, statuses = build_turns(history, blobs.path)

    assert turns == (
        ChatTurn(Role.USER, "Hi"),
        ChatTurn(Role.ASSISTANT, "Hello!"),
        ChatTurn(Role.USER, "How are you?"),
    )
    assert statuses == {}


def test_text_files_are_inlined_under_their_names(blobs: BlobStore) -> None:
    notes = _text(blobs, "notes.md", "# Plan\nship it\n")
    data = _text(blobs, "data.csv", "a,b\n1,2")

    turns, statuses = build_turns([_msg(Role.USER, "Summarise", notes, data)], blobs.path)

    assert turns[0].text == (
        "Summarise"
        "\n\n--- file: notes.md ---\n# Plan\nship it\n--- end of notes.md ---"
        "\n\n--- file: data.csv ---\na,b\n1,2\n--- end of data.csv ---"
    )
    assert statuses == {notes.sha256: AttachmentStatus.USED, data.sha256: AttachmentStatus.USED}


def test_a_message_of_only_a_file_starts_with_its_header(blobs: BlobStore) -> None:
    notes = _text(blobs, "a.txt", "body")

    turns, _ = build_turns([_msg(Role.USER, "", notes)], blobs.path)

    assert turns[0].text == "--- file: a.txt ---\nbody\n--- end of a.txt ---"
    assert format_text_attachment("a.txt", "body\n\n") == "\n\n" + turns[0].text


def test_only_the_newest_images_go_in(blobs: BlobStore) -> None:
    images = [_image(blobs, shade) for shade in range(10, 80, 10)]  # 7 distinct images
    history = [
        _msg(Role.USER, "first", images[0], images[1], images[2], n=1),
        _msg(Role.ASSISTANT, "ok", n=2),
        _msg(Role.USER, "second", images[3], images[4], n=3),
        _msg(Role.ASSISTANT, "ok", n=4),
        _msg(Role.USER, "third", images[5], images[6], n=5),
    ]

    turns, statuses = build_turns(history, blobs.path, max_images=5)

    assert turns[0].images == (blobs.path(images[2].sha256),)
    assert turns[2].images == tuple(blobs.path(i.sha256) for i in images[3:5])
    assert turns[4].images == tuple(blobs.path(i.sha256) for i in images[5:7])
    assert all(path.is_file() for turn in turns for path in turn.images)
    assert [statuses[i.sha256] for i in images] == [AttachmentStatus.SKIPPED] * 2 + [
        AttachmentStatus.USED
    ] * 5


def test_max_images_zero_skips_every_image(blobs: BlobStore) -> None:
    image = _image(blobs, 1)

    turns, statuses = build_turns([_msg(Role.USER, "look", image)], blobs.path, max_images=0)

    assert turns[0].images == ()
    assert statuses == {image.sha256: AttachmentStatus.SKIPPED}


def test_negative_max_images_is_a_programming_error(blobs: BlobStore) -> None:
    with pytest.raises(ValueError, match="max_images"):
        build_turns([], blobs.path, max_images=-1)


def test_unusable_attachments_are_left_out(blobs: BlobStore) -> None:
    broken = Attachment("bad.png", AttachmentKind.IMAGE, AttachmentStatus.ERROR, "damaged")
    video = Attachment("v.mp4", AttachmentKind.VIDEO, AttachmentStatus.SKIPPED, "later")
    already_skipped = _image(blobs, 5, AttachmentStatus.SKIPPED)
    used_before = _image(blobs, 6, AttachmentStatus.USED)

    turns, statuses = build_turns(
        [_msg(Role.USER, "q", broken, video, already_skipped, used_before)], blobs.path
    )

    assert turns[0].images == (blobs.path(used_before.sha256),)
    assert statuses == {used_before.sha256: AttachmentStatus.USED}


def test_a_damaged_document_blob_is_reported_skipped(blobs: BlobStore) -> None:
    sha = blobs.put_bytes(b"%PDF-1.7")  # not a document blob
    doc = Attachment("a.pdf", AttachmentKind.DOCUMENT, READY, sha256=sha)

    turns, statuses = build_turns([_msg(Role.USER, "q", doc)], blobs.path)

    assert turns[0].text == "q"
    assert statuses == {sha: AttachmentStatus.SKIPPED}


def _document(blobs: BlobStore, document: Document, mime: str) -> Attachment:
    sha = blobs.put_bytes(document_to_json(document))
    return Attachment(document.name, AttachmentKind.DOCUMENT, READY, sha256=sha, mime=mime)


def test_pdf_pages_are_inlined_under_citable_headers(blobs: BlobStore) -> None:
    pages = (
        Section("report.pdf", "Revenue rose.\n", page=1),
        Section("report.pdf", "", page=2),  # a scanned page: no text, no header
        Section("report.pdf", "Costs fell.", page=3),
    )
    pdf = _document(blobs, Document("report.pdf", DocumentSource.PDF, pages), "application/pdf")

    turns, statuses = build_turns([_msg(Role.USER, "Summarise.", pdf)], blobs.path)

    assert turns[0].text.startswith(
        "Summarise.\n\n"
        "--- file: report.pdf, page 1 ---\nRevenue rose.\n"
        "--- file: report.pdf, page 3 ---\nCosts fell.\n"
        "--- end of report.pdf ---\n\n"
        "When you use the documents above, cite where each fact comes from in square brackets "
        "right after it, like [report.pdf p. 1]:"
    )
    assert statuses == {pdf.sha256: AttachmentStatus.USED}


def test_folder_files_are_inlined_under_their_paths(blobs: BlobStore) -> None:
    folder = Document(
        "proj",
        DocumentSource.FOLDER,
        (Section("src/app/main.py", "def main():\n    pass\n"), Section("README.md", "# Proj")),
        (
            ManifestEntry("src/app/main.py", EntryStatus.USED, "", 22),
            ManifestEntry("README.md", EntryStatus.USED, "", 6),
            ManifestEntry("logo.png", EntryStatus.SKIPPED, "an image", 90),
        ),
    )
    att = _document(blobs, folder, "inode/directory")

    turns, _ = build_turns([_msg(Role.USER, "", att)], blobs.path, number_lines=True)

    assert turns[0].text.startswith(
        "--- folder: proj (2 files) ---\n"
        "--- file: src/app/main.py ---\n1: def main():\n2:     pass\n"
        "--- file: README.md ---\n1: # Proj\n"
        "--- end of folder proj ---\n\n"
        "When you use the documents above"
    )
    assert "[src/app/main.py:12]" in turns[0].text


def test_page_images_are_named_in_the_turn(blobs: BlobStore) -> None:
    page = _image(blobs, 1)
    page = Attachment(
        page_image_name("report.pdf", 7), AttachmentKind.IMAGE, READY, sha256=page.sha256
    )
    photo = _image(blobs, 2)

    turns, _ = build_turns([_msg(Role.USER, "What is in the table?", page, photo)], blobs.path)

    assert turns[0].images == (blobs.path(page.sha256), blobs.path(photo.sha256))
    assert turns[0].text == (
        "What is in the table?\n\n"
        "(The images above are, in order — 1: report.pdf, page 7; 2: img2.png.)"
    )


def test_documents_in_assistant_turns_get_no_instruction(blobs: BlobStore) -> None:
    doc = Document("n.docx", DocumentSource.DOCX, (Section("n.docx", "Hello"),))
    att = _document(blobs, doc, "application/msword")

    turns, _ = build_turns([_msg(Role.ASSISTANT, "Here:", att)], blobs.path)

    assert turns[0].text == "Here:\n\n--- file: n.docx ---\nHello\n--- end of n.docx ---"


def test_empty_assistant_answers_are_dropped(blobs: BlobStore) -> None:
    failed = Message("m2", "s1", Role.ASSISTANT, "  \n", 2.0, stop_reason=StopReason.ERROR)
    history = [_msg(Role.USER, "a", n=1), failed, _msg(Role.USER, "again", n=3)]

    turns, _ = build_turns(history, blobs.path)

    assert [t.role for t in turns] == [Role.USER, Role.USER]
    assert [t.text for t in turns] == ["a", "again"]


def test_the_same_image_twice_counts_as_used(blobs: BlobStore) -> None:
    same = _image(blobs, 9)
    other = _image(blobs, 8)
    history = [_msg(Role.USER, "old", same, n=1), _msg(Role.USER, "new", other, same, n=2)]

    turns, statuses = build_turns(history, blobs.path, max_images=2)

    assert turns[0].images == ()
    assert statuses[same.sha256] is AttachmentStatus.USED
    assert statuses[other.sha256] is AttachmentStatus.USED


def test_a_missing_text_blob_is_skipped_not_fatal(blobs: BlobStore, tmp_path: Path) -> None:
    ghost = Attachment("lost.txt", AttachmentKind.TEXT, READY, sha256="0" * 64)

    turns, statuses = build_turns([_msg(Role.USER, "q", ghost)], blobs.path)

    assert turns[0].text == "q"
    assert statuses == {"0" * 64: AttachmentStatus.SKIPPED}


def test_video_frames_carry_their_times_and_mark_the_clip_used(tmp_path):
    frames = []
    for i, when in enumerate(["00:01.000", "00:03.500"]):
        path = tmp_path / f"f{i}.jpg"
        path.write_bytes(b"jpeg")
        frames.append(
            Attachment(
                f"clip.mp4 @ {when}",
                AttachmentKind.IMAGE,
                AttachmentStatus.READY,
                sha256=f"{i}" * 64,
            )
        )
    clip = Attachment("clip.mp4", AttachmentKind.VIDEO, AttachmentStatus.READY, sha256="c" * 64)
    lonely = Attachment("other.mp4", AttachmentKind.VIDEO, AttachmentStatus.READY, sha256="d" * 64)
    message = Message("m", "s", Role.USER, "What happens?", 0.0, (clip, lonely, *frames))

    [turn], statuses = build_turns([message], lambda sha: tmp_path / f"{sha[0]}.jpg")

    assert len(turn.images) == 2
    assert "clip.mp4 @ 00:01.000" in turn.text and "clip.mp4 @ 00:03.500" in turn.text
    assert statuses["c" * 64] is AttachmentStatus.USED  # seen through its frames
    assert statuses["d" * 64] is AttachmentStatus.SKIPPED  # no frames: the model never saw it
