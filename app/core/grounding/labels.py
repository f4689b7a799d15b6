"""Name each box from the words around it, and tell which image it belongs to."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from app.core.grounding.candidates import Candidate

_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_EDGE_JUNK = " \t\"'“”‘’`()[]{}:;,.!?=*_#>|–—-"
# Words that end a phrase leading up to coordinates ("the ruler is located at [..]"). A bare
# "box" or "area" is not among them: it is part of many names ("red box", "parking area").
_TRAILING = re.compile(
    r"(?:\b(?:is|are|was|at|located|found|positioned|situated|placed|lies|sits|appears|"
    r"can\s+be|be|in|on|with|within|of|its|their|has|have|here|there|near|around|from|to|"
    r"between|spans?|extends?|covers?|occupies|"
    r"approximately|about|roughly|coordinates|coords|bounding\s+box(?:es)?|bbox|"
    r"region|position|location)|[:=→-])\s*$",
    re.IGNORECASE,
)
_LEADING = re.compile(
    r"^(?:(?:and|or|then|also|while|whereas|there\s+(?:is|are)|the|a|an)\b|[,;])\s*", re.IGNORECASE
)
_VERB = re.compile(
    r"\s(?:is|are|was|were|can\s+be|appears?|lies|sits|spans?|extends?|covers?|occupies)\s",
    re.IGNORECASE,
)
_IMAGE_PREFIX = re.compile(
    r"^(?:in\s+|on\s+|for\s+)?(?:the\s+)?(?:(?:first|second|third|fourth|fifth)\s+)?"
    r"(?:image|picture|photo)(?:\s*#?\s*\d{1,2})?\b[\s,:-]*",
    re.IGNORECASE,
)
#: Words that say "a box" rather than what is in it: such a label is looked for elsewhere.
GENERIC = frozenset(
    {"", "bounding box", "bounding boxes", "bbox", "box", "boxes", "coordinates", "coords",
     "location", "position", "region", "bounding box coordinates", "box coordinates", "answer",
     "output", "result", "here", "it", "its", "json", "bounding box for", "object"}
)  # fmt: skip
_MAX_LABEL = 60
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
             "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}  # fmt: skip
_IMAGE_CUE = re.compile(
    r"\b(?:image|picture|photo|img)\s*(?:no\.?\s*|number\s*|#\s*)?(\d{1,2})\b"
    r"|\b(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th)\s+(?:image|picture|photo)\b",
    re.IGNORECASE,
)


def clean_label(raw: str) -> str:
    """Turn the words before a box into a short plain label ("" when nothing useful is left).

    Args:
        raw: text such as "* **Ruler**:" or "The ruler is located at".

    Returns:
        The label without markdown, quotes, list markers or trailing "is/at/:".
    """
    text = _HEADING.sub("", _LIST_MARKER.sub("", raw.replace("\n", " ")))
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = " ".join(text.split())
    # Only the sentence that leads up to the box names it ("... 0-1000. Door: [..]").
    sentences = [part for part in re.split(r"(?<=[.!?])\s+", text) if part.strip(_EDGE_JUNK)]
    text = sentences[-1] if sentences else ""
    if ":" in text:
        # "- ruler: [..]" names it before the colon, "In image 2: - lid [..]" after it.
        head, _, tail = text.rpartition(":")
        named = clean_label(tail)
        if named and not _is_generic(named):
            return named
        text = head
    text = _IMAGE_PREFIX.sub("", text)
    for _ in range(12):
        before = text
        text = text.strip(_EDGE_JUNK)
        text = _TRAILING.sub("", text).strip(_EDGE_JUNK)
        text = _LEADING.sub("", text).strip(_EDGE_JUNK)
        if text == before:
            break
    # "The measuring tape is located at the top left": the subject names the thing.
    subject = _VERB.split(text, maxsplit=1)[0].strip(_EDGE_JUNK)
    if subject and subject != text:
        text = _LEADING.sub("", subject).strip(_EDGE_JUNK) or text
    if len(text) > _MAX_LABEL:
        # A whole sentence led up to the box: its last clause names the thing best.
        clause = re.split(r"[,.;!?]\s+", text)[-1]
        words = clause.split()
        text = " ".join(words[-6:]) if len(clause) > _MAX_LABEL else clause
    return text[:_MAX_LABEL].strip(_EDGE_JUNK)


def _is_generic(label: str) -> bool:
    return label.lower() in GENERIC


def _bold(segment: str) -> tuple[str, int] | None:
    """The first bold phrase of a segment and its offset, when it has one."""
    for match in _BOLD.finditer(segment):
        inner = match.group(1) or match.group(2) or ""
        label = clean_label(inner)
        if label and not _is_generic(label):
            return label, match.start() + 2
    return None


def _from_segment(segment: str, offset: int) -> tuple[str, tuple[int, int] | None]:
    bold = _bold(segment)
    if bold is not None:
        label, at = bold
        found = segment.find(label, at)
        return label, (offset + found, offset + found + len(label)) if found >= 0 else None
    label = clean_label(segment)
    if not label or _is_generic(label):
        return "", None
    found = segment.rfind(label)
    return label, (offset + found, offset + found + len(label)) if found >= 0 else None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _without_boxes(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> str:
    """The line text with the boxes on it blanked out (offsets kept).

    `spans` are sorted and disjoint, so only those overlapping the line are visited.
    """
    chars = list(text[start:end])
    at = max(0, bisect.bisect_right(spans, (start, start)) - 1)
    while at < len(spans) and spans[at][0] < end:
        a, b = spans[at]
        for i in range(max(a, start), min(b, end)):
            chars[i - start] = " "
        at += 1
    return "".join(chars)


def label_candidates(text: str, candidates: list[Candidate]) -> None:
    """Fill each candidate's label (and its span) from the text before it, in place.

    The words on the same line before the box come first (a bold name wins); when they say
    nothing ("Bounding box:"), the nearest earlier line that is not only boxes is used, so
    "**Ruler**" on one line and "<BBOX>…</BBOX>" on the next belong together.

    Args:
        text: the answer.
        candidates: from `find_candidates`, in reading order.
    """
    spans = [(c.start, c.end) for c in candidates]
    previous_end = 0
    for candidate in candidates:
        if candidate.from_json:
            previous_end = max(previous_end, candidate.end)
            continue
        floor = max(_line_start(text, candidate.start), previous_end)
        label, span = _from_segment(text[floor : candidate.start], floor)
        line_end = _line_start(text, candidate.start) - 1
        for _ in range(3):
            if label or line_end <= 0:
                break
            line_start = _line_start(text, line_end)
            line = _without_boxes(text, line_start, line_end, spans)
            if line.strip():
                if len(line.strip()) <= 2 * _MAX_LABEL or _BOLD.search(line):
                    label, span = _from_segment(line, line_start)
                break
            line_end = line_start - 1
        candidate.label, candidate.label_span = label, span
        previous_end = candidate.end


def image_cues(text: str, candidates: list[Candidate], image_count: int) -> list[int | None]:
    """The image number (1-based, as people write it) each candidate's text points at.

    A cue ("Image 2", "**Second image:**") applies to the boxes after it until the next cue.
    With a single image there is nothing to choose, so no cue is read at all.

    Args:
        text: the answer.
        candidates: in reading order.
        image_count: how many images the message has.

    Returns:
        One entry per candidate: the 1-based image number, or None without a cue.
    """
    if image_count <= 1:
        return [None] * len(candidates)
    cues = []
    for match in _IMAGE_CUE.finditer(text):
        number = int(match.group(1)) if match.group(1) else _ORDINALS[match.group(2).lower()]
        cues.append((match.start(), number))
    result: list[int | None] = []
    for candidate in candidates:
        chosen = None
        for at, number in cues:
            if at >= candidate.start:
                break
            chosen = number
        result.append(chosen)
    return result
