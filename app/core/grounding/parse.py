"""Parse the boxes in a Llama 4 answer into integer pixels of the upright original image."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from app.core.grounding.candidates import Candidate, find_candidates
from app.core.grounding.labels import image_cues, label_candidates
from app.core.messages import Box

#: The most boxes kept from one answer; more are dropped with a note.
MAX_BOXES = 100
#: The most box-like pieces of text examined in one answer (the rest is not read).
MAX_CANDIDATES = 1000
#: The most "left out" sentences given for one answer (then one sentence counts the rest).
MAX_NOTES = 20
#: How far outside the image (a fraction of its side) a box may reach and still be clamped.
CLAMP_TOLERANCE = 0.05
#: Answers longer than this are only searched up to here (a real answer is far shorter).
MAX_TEXT = 200_000

_THOUSAND_CUE = re.compile(
    r"0\s*(?:-|–|to)\s*1000\b|/\s*1000\b|(?:normali[sz]ed|scaled)\s+to\s+(?:0\s*-\s*)?1000\b"
    r"|\bout\s+of\s+1000\b",
    re.IGNORECASE,
)
_PIXEL_CUE = re.compile(r"\"units?\"\s*:\s*\"(?:px|pixels?)\"", re.IGNORECASE)


class Scale(Enum):
    """How an answer's coordinates are written."""

    NORMALISED = "0-1"  # Llama 4's own convention
    THOUSAND = "0-1000"
    PIXELS = "pixels"


@dataclass(frozen=True)
class ParsedBox:
    """A box that passed every check, with the text spans it came from."""

    box: Box
    spans: tuple[tuple[int, int], ...]


def _corners(c: Candidate) -> tuple[float, float, float, float]:
    x1, y1, a, b = c.numbers
    return (x1, y1, x1 + a, y1 + b) if c.xywh else (x1, y1, a, b)


def choose_scale(
    text: str, candidates: Sequence[Candidate], images: Sequence[int], sizes: Sequence[tuple]
) -> Scale:
    """Decide, once per answer, what the numbers mean.

    The rule (models mix conventions, so one answer is read one way throughout):
    an explicit cue wins ("0-1000", `"units": "pixels"`); otherwise every value <= 1 (give or
    take the clamp tolerance, or below 2 with fractions) means normalised 0-1, Llama 4's
    convention; otherwise a value
    beyond its image's width or height, with none above 1000, means 0-1000; otherwise pixels.
    Ambiguity left: 0-1000 numbers for an image wider and taller than 1000 px read as pixels.

    Args:
        text: the answer.
        candidates: the well-formed ones.
        images: each candidate's image index.
        sizes: (width, height) of each image.

    Returns:
        The scale.
    """
    values = [abs(v) for c in candidates for v in _corners(c)]
    if not values:
        return Scale.NORMALISED
    if _PIXEL_CUE.search(text):
        return Scale.PIXELS
    top = max(values)
    if _THOUSAND_CUE.search(text) and top <= 1000 * (1 + CLAMP_TOLERANCE):
        return Scale.THOUSAND
    if top <= 1 + CLAMP_TOLERANCE:
        return Scale.NORMALISED
    # Fractions below 2 are 0-1 coordinates with a box overshooting, never pixels of a 2 px box.
    if top < 2 and any(v != int(v) for v in values):
        return Scale.NORMALISED
    if top <= 1000 * (1 + CLAMP_TOLERANCE):
        for c, index in zip(candidates, images, strict=True):
            width, height = sizes[index]
            x1, y1, x2, y2 = _corners(c)
            too_wide = max(x1, x2) > width * (1 + CLAMP_TOLERANCE)
            if too_wide or max(y1, y2) > height * (1 + CLAMP_TOLERANCE):
                return Scale.THOUSAND
    return Scale.PIXELS


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def _to_pixels(
    c: Candidate, scale: Scale, size: tuple[int, int]
) -> tuple[int, int, int, int] | str:
    """The clamped integer box, or the reason it is refused."""
    width, height = size
    x1, y1, x2, y2 = _corners(c)
    if scale is Scale.NORMALISED:
        x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
    elif scale is Scale.THOUSAND:
        x1, x2, y1, y2 = (
            x1 * width / 1000,
            x2 * width / 1000,
            y1 * height / 1000,
            y2 * height / 1000,
        )
    if x2 <= x1 or y2 <= y1:
        return "its second corner is not below and right of its first"
    slack_x, slack_y = width * CLAMP_TOLERANCE, height * CLAMP_TOLERANCE
    if x1 < -slack_x or y1 < -slack_y or x2 > width + slack_x or y2 > height + slack_y:
        return f"it lies outside the {width}×{height} image"
    left, top = _round(min(max(x1, 0.0), width)), _round(min(max(y1, 0.0), height))
    right, bottom = _round(min(max(x2, 0.0), width)), _round(min(max(y2, 0.0), height))
    # A real but sub-pixel box must not vanish in rounding: give it one pixel, inside the image.
    if right <= left:
        right, left = (left + 1, left) if left < width else (width, width - 1)
    if bottom <= top:
        bottom, top = (top + 1, top) if top < height else (height, height - 1)
    return left, top, right, bottom


def _valid_sizes(image_sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]] | None:
    sizes = []
    try:
        for width, height in image_sizes:
            if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
                return None
            sizes.append((width, height))
    except (TypeError, ValueError):
        return None
    return sizes


def _shown(text: str, c: Candidate) -> str:
    written = " ".join(text[c.start : c.end].split())
    return written if len(written) <= 60 else written[:57] + "..."


def _json_images_one_based(candidates: Sequence[Candidate], count: int) -> bool:
    """JSON "image" numbers are 0-based (as Scout Desk writes them) unless they read 1..count."""
    written = [c.image for c in candidates if c.image is not None]
    return bool(written) and 0 not in written and max(written) == count


def parse_all(
    text: str, image_sizes: Sequence[tuple[int, int]]
) -> tuple[list[ParsedBox], list[str]]:
    """Parse every box with its text spans, and a note for each one left out.

    Args:
        text: the answer.
        image_sizes: (width, height) of each upright image of the message, in order.

    Returns:
        The kept boxes (at most `MAX_BOXES`) and the notes, one plain sentence each.
    """
    if not isinstance(text, str) or not text:
        return [], []
    text = text[:MAX_TEXT]
    candidates = find_candidates(text, MAX_CANDIDATES + 1)
    overflow = len(candidates) > MAX_CANDIDATES
    candidates = candidates[:MAX_CANDIDATES]
    if not candidates:
        return [], []
    sizes = _valid_sizes(image_sizes)
    if not sizes:
        return [], [f"{len(candidates)} box(es) were ignored: the message has no usable image."]
    label_candidates(text, candidates)
    cues = image_cues(text, candidates, len(sizes))
    one_based = _json_images_one_based(candidates, len(sizes))
    notes: list[tuple[int, str]] = []
    usable: list[tuple[int, Candidate, int]] = []
    for number, (c, cue) in enumerate(zip(candidates, cues, strict=True), start=1):
        where = f"Box {number} ({_shown(text, c)})"
        if c.problem:
            notes.append((number, f"{where} was left out: it {c.problem}, not 4."))
            continue
        if not all(math.isfinite(v) for v in c.numbers):
            notes.append((number, f"{where} was left out: a coordinate is not a number."))
            continue
        if c.image is not None:
            index = c.image - 1 if one_based else c.image
        else:
            index = cue - 1 if cue is not None else 0
        if not 0 <= index < len(sizes):
            notes.append((number, f"{where} was left out: the message has no image {index + 1}."))
            continue
        usable.append((number, c, index))
    scale = choose_scale(text, [c for _, c, _ in usable], [i for _, _, i in usable], sizes)
    parsed: list[ParsedBox] = []
    for number, c, index in usable:
        pixels = _to_pixels(c, scale, sizes[index])
        if isinstance(pixels, str):
            notes.append((number, f"Box {number} ({_shown(text, c)}) was left out: {pixels}."))
            continue
        label = c.label or f"object {len(parsed) + 1}"
        spans = ((c.label_span,) if c.label_span else ()) + ((c.start, c.end),)
        parsed.append(ParsedBox(Box(label, index, *pixels), spans))
    sentences = [sentence for _, sentence in sorted(notes, key=lambda n: n[0])]
    if len(sentences) > MAX_NOTES:
        hidden = len(sentences) - MAX_NOTES
        sentences = [*sentences[:MAX_NOTES], f"{hidden} more box(es) were left out as well."]
    if overflow:
        sentences.append(
            f"The answer holds more than {MAX_CANDIDATES} boxes; only the first "
            f"{MAX_CANDIDATES} were read."
        )
    if len(parsed) > MAX_BOXES:
        sentences.append(f"Only the first {MAX_BOXES} of {len(parsed)} boxes are shown.")
        parsed = parsed[:MAX_BOXES]
    return parsed, sentences
