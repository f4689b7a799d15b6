"""Which images an answer's boxes refer to: `Box.image` indexes these, in order."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role

# Images the model never saw cannot be pointed at, so they do not take an index.
_UNSEEN = (AttachmentStatus.SKIPPED, AttachmentStatus.ERROR)


def question_images(attachments: Sequence[Attachment]) -> tuple[Attachment, ...]:
    """The images of one question that the model saw, in order (what `Box.image` indexes).

    Args:
        attachments: the user message's attachments.

    Returns:
        Image attachments with a stored blob and a size, neither skipped nor failed.
    """
    return tuple(
        a
        for a in attachments
        if a.kind is AttachmentKind.IMAGE
        and a.status not in _UNSEEN
        and a.sha256 is not None
        and a.width
        and a.height
    )


def answer_images(messages: Sequence[Message], answer_index: int) -> tuple[Attachment, ...]:
    """The images an assistant message's boxes refer to.

    These are the images of the nearest earlier user message that has any (a follow-up
    question without images is about the same pictures).

    Args:
        messages: a session's visible messages, in order.
        answer_index: the position of the answer in `messages`.

    Returns:
        The images, in order (empty when none came before).
    """
    for message in reversed(messages[:answer_index]):
        if message.role is Role.USER:
            images = question_images(message.attachments)
            if images:
                return images
    return ()


def image_sizes(images: Sequence[Attachment]) -> list[tuple[int, int]]:
    """(width, height) of each image, as the parser and exporters take them."""
    return [(a.width or 0, a.height or 0) for a in images]
