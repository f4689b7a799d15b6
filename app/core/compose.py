"""Turn the visible chat history into engine turns, deciding which attachments go in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from app.core.citations import citation_instruction
from app.core.documents import Document, format_document, load_document, parse_page_image_name
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    ChatTurn,
    Message,
    Role,
)

log = logging.getLogger(__name__)

#: Images per conversation Scout was tested with; older ones are left out beyond this.
DEFAULT_MAX_IMAGES = 5

_USABLE = (AttachmentStatus.READY, AttachmentStatus.USED)


def format_text_attachment(name: str, content: str) -> str:
    """The block a text file becomes in its message, fenced by its name so the model can cite it.

    Args:
        name: the file name the user saw.
        content: the file's text.

    Returns:
        The block, starting with a blank line so it can follow the message text directly.
    """
    return f"\n\n--- file: {name} ---\n{content.rstrip(chr(10))}\n--- end of {name} ---"


def build_turns(
    messages: Sequence[Message],
    blob_path: Callable[[str], Path],
    max_images: int = DEFAULT_MAX_IMAGES,
    *,
    number_lines: bool = False,
) -> tuple[tuple[ChatTurn, ...], dict[str, AttachmentStatus]]:
    """Compose engine turns from the visible history.

    Text attachments are inlined under a file-name header; documents (PDF, Word, folders) are
    inlined section by section under headers that name the page or file to cite
    ("--- file: report.pdf, page 12 ---", "--- file: src/app/main.py ---"), followed by an
    instruction to cite them. Images become paths to their upright blobs, and only the
    `max_images` most recent images of the whole conversation are kept; a turn with PDF page
    images says which page each image is. Only attachments that are READY or USED take part;
    the rest (errors, videos) are ignored. Assistant messages without text are dropped.

    Args:
        messages: the session's visible messages, oldest first.
        blob_path: maps a blob's SHA-256 to its file (`BlobStore.path`).
        max_images: how many images, counted from the newest, go into the prompt.
        number_lines: inline folder and Word text with line numbers, so answers can cite lines.

    Returns:
        The turns, and a map from each considered attachment's SHA-256 to USED or SKIPPED.

    Raises:
        ValueError: `max_images` is negative.
    """
    if max_images < 0:
        raise ValueError(f"max_images must be 0 or more, not {max_images}")
    kept_images = _newest_images(messages, max_images)
    statuses: dict[str, AttachmentStatus] = {}

    def mark(sha: str, status: AttachmentStatus) -> None:
        # One blob attached twice is USED if any of its copies went in.
        if statuses.get(sha) is not AttachmentStatus.USED:
            statuses[sha] = status

    turns: list[ChatTurn] = []
    for message_index, message in enumerate(messages):
        if message.role is Role.ASSISTANT and not message.text.strip():
            continue
        text = message.text
        images: list[Path] = []
        image_names: list[str] = []
        documents: list[Document] = []
        for attachment_index, attachment in enumerate(message.attachments):
            sha = attachment.sha256
            if attachment.status not in _USABLE or sha is None:
                continue
            if attachment.kind is AttachmentKind.IMAGE:
                if (message_index, attachment_index) in kept_images:
                    images.append(blob_path(sha))
                    image_names.append(attachment.name)
                    mark(sha, AttachmentStatus.USED)
                else:
                    mark(sha, AttachmentStatus.SKIPPED)
            elif attachment.kind is AttachmentKind.TEXT:
                content = _read_text(attachment, blob_path)
                if content is None:
                    mark(sha, AttachmentStatus.SKIPPED)
                else:
                    text += format_text_attachment(attachment.name, content)
                    mark(sha, AttachmentStatus.USED)
            elif attachment.kind is AttachmentKind.DOCUMENT:
                document = load_document(attachment, blob_path)
                if document is None:
                    mark(sha, AttachmentStatus.SKIPPED)
                else:
                    text += format_document(document, number_lines=number_lines)
                    documents.append(document)
                    mark(sha, AttachmentStatus.USED)
            elif attachment.kind is AttachmentKind.VIDEO:
                # A clip reaches the model as frames sampled from it (image attachments of the
                # same message named "clip.mp4 @ 00:12.400"); without any, it is left out.
                framed = attachment.name in _videos_with_frames(message)
                mark(sha, AttachmentStatus.USED if framed else AttachmentStatus.SKIPPED)
            else:
                mark(sha, AttachmentStatus.SKIPPED)
        if message.role is Role.USER:
            text += citation_instruction(documents, number_lines=number_lines)
            text += _image_caption(image_names)
        if not message.text:
            text = text.lstrip("\n")
        turns.append(ChatTurn(role=message.role, text=text, images=tuple(images)))
    return tuple(turns), statuses


def _videos_with_frames(message: Message) -> set[str]:
    """Names of the videos that have sampled frames among this message's usable images."""
    from app.core.video.timecode import parse_frame_name  # the video package is heavy to import

    found = set()
    for attachment in message.attachments:
        if attachment.kind is AttachmentKind.IMAGE and attachment.status in _USABLE:
            parsed = parse_frame_name(attachment.name)
            if parsed:
                found.add(parsed[0])
    return found


def _image_caption(image_names: Sequence[str]) -> str:
    """Which PDF page or video frame each image is, when any is one.

    The engine puts a turn's images before its text, so without this the model could not tell
    page 12 from page 3, or the frame at 00:40 from the one at 00:05.
    """
    from app.core.video.timecode import parse_frame_name

    if not any(parse_page_image_name(n) or parse_frame_name(n) for n in image_names):
        return ""
    listed = "; ".join(f"{i}: {name}" for i, name in enumerate(image_names, 1))
    return f"\n\n(The images above are, in order — {listed}.)"


def _newest_images(messages: Sequence[Message], max_images: int) -> set[tuple[int, int]]:
    """(message index, attachment index) of the `max_images` most recent usable images."""
    found = [
        (message_index, attachment_index)
        for message_index, message in enumerate(messages)
        if not (message.role is Role.ASSISTANT and not message.text.strip())
        for attachment_index, attachment in enumerate(message.attachments)
        if attachment.kind is AttachmentKind.IMAGE
        and attachment.status in _USABLE
        and attachment.sha256 is not None
    ]
    return set(found[-max_images:]) if max_images else set()


def _read_text(attachment: Attachment, blob_path: Callable[[str], Path]) -> str | None:
    """The stored text of a text attachment, or None (logged) when its blob is unreadable."""
    assert attachment.sha256 is not None
    try:
        return blob_path(attachment.sha256).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("text attachment %s unreadable: %s", attachment.name, exc)
        return None
