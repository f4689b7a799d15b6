"""Turning engine turns into Llama 4 model inputs with the processor's own chat template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.messages import ChatTurn
from app.inference.engine import BadInputError

log = logging.getLogger(__name__)

MAX_IMAGES = 5  # Meta tested Llama 4 with up to 5 images a prompt


@dataclass
class Prompt:
    """A rendered conversation, ready for the model.

    Attributes:
        ids: token ids of the whole prompt (ends with the assistant header).
        pixel_values: every image's tiles, in prompt order (None without images).
        image_count: images in the prompt.
    """

    ids: list[int]
    pixel_values: Any
    image_count: int


def limit_images(turns: Sequence[ChatTurn], max_images: int = MAX_IMAGES) -> tuple[ChatTurn, ...]:
    """Keep only the most recent `max_images` images (the composer already does; this makes sure).

    Args:
        turns: the conversation.
        max_images: how many images may stay.

    Returns:
        The turns with the oldest surplus images removed.
    """
    total = sum(len(t.images) for t in turns)
    drop = max(0, total - max_images)
    if not drop:
        return tuple(turns)
    log.warning("dropping the %d oldest of %d images (Llama 4 takes %d)", drop, total, max_images)
    kept: list[ChatTurn] = []
    for turn in turns:
        cut = min(drop, len(turn.images))
        drop -= cut
        kept.append(ChatTurn(turn.role, turn.text, turn.images[cut:]) if cut else turn)
    return tuple(kept)


def render(processor: Any, turns: Sequence[ChatTurn]) -> str:
    """Render turns as Llama 4 chat text ending with the assistant header (images: `<|image|>`)."""
    messages = []
    for turn in turns:
        content: list[dict[str, str]] = [{"type": "image"} for _ in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": str(turn.role), "content": content})
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def open_images(turns: Sequence[ChatTurn]) -> list[Any]:
    """Open every image of the turns as RGB (ingest already made them upright).

    Raises:
        BadInputError: an image is missing or unreadable, naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    images = []
    for turn in turns:
        for path in turn.images:
            try:
                with Image.open(Path(path)) as image:
                    images.append(image.convert("RGB"))
            except FileNotFoundError:
                raise BadInputError(f"The image {Path(path).name} is no longer on disk.") from None
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise BadInputError(f"The image {Path(path).name} cannot be read: {exc}") from None
    return images


def build_prompt(processor: Any, turns: Sequence[ChatTurn], dtype: Any) -> Prompt:
    """Render, tokenize and preprocess a conversation.

    Args:
        processor: the model folder's `Llama4Processor`.
        turns: the conversation, ending with the user's new turn.
        dtype: the vision tower's dtype (the image processor returns bf16 regardless).

    Returns:
        The prompt.
    """
    turns = limit_images(turns)
    text = render(processor, turns)
    images = open_images(turns)
    # The template already starts with <|begin_of_text|>; the tokenizer must not add another.
    inputs = processor(
        text=text, images=images or None, add_special_tokens=False, return_tensors="pt"
    )
    pixel_values = inputs.get("pixel_values")
    if pixel_values is not None:
        pixel_values = pixel_values.to(dtype)
    return Prompt(inputs["input_ids"][0].tolist(), pixel_values, len(images))
