"""Ask Scout for boxes the way it was taught, and read the composer's `/locate` prefix."""

from __future__ import annotations

import re

#: What the user types in the composer to ask for boxes ("/locate the ruler").
LOCATE_PREFIX = "/locate"
_PREFIX = re.compile(r"^\s*/locate(?=\s|$)", re.IGNORECASE)


def locate_prompt(query: str, image_count: int = 1) -> str:
    """The grounding instruction for "where is <query>?", in the form Llama 4 was shown.

    Meta's own grounding example (the "Building with Llama 4" course's image-grounding lesson
    and meta-llama/llama-cookbook getting-started/build_with_llama_api_image_grounding.ipynb)
    asks "Which tools in the image can be used for measuring length? Provide bounding boxes for
    every recognized item." and Scout answers with each item's name in bold and a
    `<BBOX>x1,y1,x2,y2</BBOX>` tag normalised to 0-1. The instruction keeps Meta's sentence and
    spells out that answer format, which `parse_boxes` reads first.

    Args:
        query: what to find ("the ruler", "every damaged part"); blank asks for every object.
        image_count: how many images the question carries (above 1, each box names its image).

    Returns:
        The text to send as the user's message.
    """
    what = " ".join(query.split()).rstrip("?.!").strip() or "every distinct object"
    where = "the image" if image_count <= 1 else "the images"
    prompt = (
        f"Locate {what} in {where}. Provide bounding boxes for every recognized item. "
        "Write each item's name in bold, followed by its box as <BBOX>x1,y1,x2,y2</BBOX> "
        "with coordinates normalized to 0-1 (x to the right, y down, from the top-left corner)."
    )
    if image_count > 1:
        prompt += " Before the boxes of each image, write which image it is (Image 1, Image 2, …)."
    return prompt


def strip_locate_prefix(text: str) -> tuple[bool, str]:
    """Recognise a composer message that starts with `/locate`.

    Args:
        text: what the user typed.

    Returns:
        (True, the query after the prefix) for "/locate the ruler"; (False, text unchanged)
        otherwise ("/locateX" and "please /locate" are ordinary text).
    """
    match = _PREFIX.match(text)
    if match is None:
        return False, text
    return True, text[match.end() :].strip()
