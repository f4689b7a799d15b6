"""Turning engine turns into Llama 4 model inputs with the processor's own chat template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.messages import ChatTurn
from app.inference.engine import BadInputError, Cancelled, CancelToken, ModelError
from app.inference.model_json import one_line
from app.inference.template_guard import TimeLimitExceeded, call_with_time_limit

log = logging.getLogger(__name__)

MAX_IMAGES = 5  # Meta tested Llama 4 with up to 5 images a prompt
#: Seconds a chat template may take to render: Meta's takes milliseconds, a loop takes forever.
TEMPLATE_TIME_LIMIT_S = 2.0


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


def render(processor: Any, turns: Sequence[ChatTurn], *, cancel: CancelToken | None = None) -> str:
    """Render turns as Llama 4 chat text ending with the assistant header (images: `<|image|>`).

    The chat template is the model folder's own Jinja code, so it runs under a time limit and
    the user's Stop, and whatever it raises becomes one sentence about the model folder.

    Args:
        processor: the model folder's processor (its `apply_chat_template`).
        turns: the conversation.
        cancel: the user's Stop, polled while the template runs (None: none).

    Returns:
        The prompt text.

    Raises:
        ModelError: the template took longer than `TEMPLATE_TIME_LIMIT_S`, is not valid Jinja,
            broke the sandbox's rules, called `raise_exception`, or failed otherwise.
        Cancelled: `cancel` was set while it rendered.
    """
    messages = []
    for turn in turns:
        content: list[dict[str, str]] = [{"type": "image"} for _ in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": str(turn.role), "content": content})

    def apply() -> str:
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    try:
        return call_with_time_limit(apply, TEMPLATE_TIME_LIMIT_S, cancel)
    except Cancelled:
        raise
    except TimeLimitExceeded:
        problem = (
            f"took longer than {TEMPLATE_TIME_LIMIT_S:g} s to render; the template is broken or "
            "hostile"
        )
    except Exception as exc:  # the inputs are our own plain strings: any failure is the template's
        problem = _template_problem(exc)
    raise ModelError(f"The chat template {_template_source(processor)} {problem}.")


def _template_problem(exc: Exception) -> str:
    """What went wrong in the template's own words, as the end of one sentence."""
    from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

    detail = one_line(exc, 200).rstrip(".")
    if isinstance(exc, TemplateSyntaxError):
        return f"is not a valid Jinja template (line {exc.lineno}: {detail})"
    if isinstance(exc, SecurityError):
        return f"tried something the template sandbox forbids ({detail}); it is broken or hostile"
    if isinstance(exc, TemplateError):  # the template's own raise_exception(...), mostly
        return f"refused this conversation: {detail}"
    if isinstance(exc, RecursionError):
        return "recurses without end; the template is broken or hostile"
    log.debug("chat template failed", exc_info=exc)  # the sentence is for the user; this for us
    return f"failed to render ({type(exc).__name__}: {detail})"


def _template_source(processor: Any) -> str:
    """The file the chat template came from, as precisely as the processor tells."""
    folder = getattr(getattr(processor, "tokenizer", None), "name_or_path", None)
    if not folder or not Path(folder).is_dir():
        return "of the model folder"
    for name in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return f"of {folder}"


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


def build_prompt(
    processor: Any,
    turns: Sequence[ChatTurn],
    dtype: Any,
    *,
    cancel: CancelToken | None = None,
) -> Prompt:
    """Render, tokenize and preprocess a conversation.

    Args:
        processor: the model folder's `Llama4Processor`.
        turns: the conversation, ending with the user's new turn.
        dtype: the vision tower's dtype (the image processor returns bf16 regardless).
        cancel: the user's Stop, honoured while the chat template renders.

    Returns:
        The prompt.

    Raises:
        ModelError: the chat template fails or runs too long (see `render`).
        Cancelled: `cancel` was set while the template rendered.
        BadInputError: an image cannot be read.
    """
    turns = limit_images(turns)
    text = render(processor, turns, cancel=cancel)
    images = open_images(turns)
    # The template already starts with <|begin_of_text|>; the tokenizer must not add another.
    inputs = processor(
        text=text, images=images or None, add_special_tokens=False, return_tensors="pt"
    )
    pixel_values = inputs.get("pixel_values")
    if pixel_values is not None:
        pixel_values = pixel_values.to(dtype)
    return Prompt(inputs["input_ids"][0].tolist(), pixel_values, len(images))
