"""Grounding steps of a conversation (no widgets): Locate questions in, boxes out of answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from app.core.grounding import (
    answer_images,
    image_sizes,
    locate_prompt,
    parse_boxes_with_notes,
    strip_locate_prefix,
)
from app.core.grounding.images import question_images
from app.core.messages import Attachment, Box, ChatTurn, Message, Role
from app.store.db import StoreError

log = logging.getLogger(__name__)

#: How a Locate question reads in the chat (and in search and exports); the model gets
#: `locate_prompt` instead, built when the prompt is composed.
LOCATE_LABEL = "Locate: "
_VISIBLE = re.compile(r"^Locate: (?P<thing>[^\n]+)$")

NO_THING = "Say what to find after /locate, for example “/locate the ruler”."
NO_IMAGE = "Locate needs an image: attach one (Ctrl+O) or ask in a chat that has one."


def locate_text(thing: str) -> str:
    """The visible text of a Locate question ("Locate: the ruler")."""
    return LOCATE_LABEL + " ".join(thing.split())


def locate_target(text: str) -> str | None:
    """What a stored Locate question asks for, or None when the text is no Locate question."""
    match = _VISIBLE.match(text.strip())
    return match.group("thing").strip() if match else None


def prepare_question(
    text: str, attachments: Sequence[Attachment], history: Sequence[Message]
) -> tuple[str, str | None]:
    """Turn "/locate the ruler" into the visible "Locate: the ruler" (other text is kept).

    Args:
        text: what the user sent.
        attachments: the images and files sent with it.
        history: the chat's messages so far (a Locate may use an image sent earlier).

    Returns:
        (text to store, None) or (text, a sentence saying why it cannot be sent).
    """
    is_locate, thing = strip_locate_prefix(text)
    if not is_locate:
        return text, None
    if not thing.strip():
        return text, NO_THING
    has_image = bool(question_images(attachments)) or any(
        question_images(m.attachments) for m in history if m.role is Role.USER
    )
    return locate_text(thing), None if has_image else NO_IMAGE


def expand_locate_turns(turns: Sequence[ChatTurn]) -> tuple[ChatTurn, ...]:
    """Give the model the grounding instruction wherever a user turn is a Locate question.

    Args:
        turns: the composed conversation.

    Returns:
        The turns, with each "Locate: …" user turn replaced by `locate_prompt`.
    """
    out = []
    for turn in turns:
        thing = locate_target(turn.text) if turn.role is Role.USER else None
        if thing is not None:
            turn = replace(turn, text=locate_prompt(thing, max(1, len(turn.images))))
        out.append(turn)
    return tuple(out)


def detect_boxes(
    history: Sequence[Message], answer_id: str, text: str
) -> tuple[list[Box], list[str]]:
    """Find the boxes in a finished answer, in pixels of the images of the question it answers.

    Args:
        history: the chat's visible messages, the answer among them.
        answer_id: the answer's id.
        text: the answer's final text.

    Returns:
        (boxes, notes); nothing when the answer is not in `history` or no image came before it.
    """
    index = next((i for i, m in enumerate(history) if m.id == answer_id), None)
    if index is None:
        return [], []
    sizes = image_sizes(answer_images(history, index))
    if not sizes or not text:
        return [], []
    return parse_boxes_with_notes(text, sizes)


def answer_boxes(messages: Callable[[str], list[Message]], answer: Message) -> tuple[Box, ...]:
    """The boxes of a finished answer; a store that cannot be read only costs the boxes.

    Args:
        messages: reads a session's visible messages (`SessionStore.messages`).
        answer: the answer, with its final text.

    Returns:
        The boxes found (none when the history cannot be read).
    """
    try:
        history = messages(answer.session_id)
    except StoreError as exc:
        log.warning("boxes of message %s not parsed: %s", answer.id, exc.message)
        return ()
    return tuple(detect_boxes(history, answer.id, answer.text)[0])
