"""Find every box-shaped thing in an answer's text, with where it sits, before any judging."""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any

#: A number as a model writes it; nan/inf are caught so that they can be refused with a note.
_NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:[-+]?(?:nan|inf(?:inity)?)))"
NUMBER = re.compile(_NUM)

# Llama 4's own grounding format: Meta's "Building with Llama 4" course (DeepLearning.AI, image
# grounding lesson) and meta-llama/llama-cookbook getting-started/
# build_with_llama_api_image_grounding.ipynb parse Scout's answers with
# `re.findall(r'<BBOX>(.*?)</BBOX>', output)`, each tag holding "x1,y1,x2,y2" normalised to 0-1,
# the item's name in **bold** on its line. A tag cut off by the length limit has no closing tag.
_TAG = re.compile(r"<\s*bbox\s*>(?P<body>[^<\n]{0,200})(?:<\s*/\s*bbox\s*>)?", re.IGNORECASE)
# `[x1, y1, x2, y2]` or `(x1, y1, x2, y2)`: exactly four numbers, so `[1, 2, 3, 4, 5]` is not one.
_QUAD = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
# Two corners: `(x1, y1), (x2, y2)` or `(x1, y1) to (x2, y2)`.
_POINTS = re.compile(
    rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*(?:,|to|and|-|–|—)?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
)

#: Keys whose value is a box (a 4-number list, or an object with corner keys).
BOX_KEYS = frozenset(
    {"bbox", "bbox_2d", "box", "box_2d", "bounding_box", "boundingbox", "bounding box", "bbox_norm",
     "coordinates", "coords", "xyxy", "rect", "region"}
)  # fmt: skip
#: Keys naming what a JSON box shows, in order of preference.
LABEL_KEYS = (
    "label", "name", "object", "class", "category", "item", "tool", "title", "text", "description"
)  # fmt: skip
#: Keys giving the image a JSON box belongs to.
IMAGE_KEYS = ("image", "image_index", "image_idx", "image_id", "img")
_CORNER_KEYS = (
    ("x1", "y1", "x2", "y2"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x_min", "y_min", "x_max", "y_max"),
    ("left", "top", "right", "bottom"),
)
_SIZE_KEYS = (("x", "y", "width", "height"), ("x", "y", "w", "h"))
#: JSON documents tried per answer, so hostile text (thousands of "{") stays fast.
_MAX_JSON_ATTEMPTS = 400


@dataclass
class Candidate:
    """One box as written, not yet checked.

    Attributes:
        numbers: the numbers as written (four for a well-formed box).
        start: where the coordinates start in the text.
        end: where they end.
        xywh: the numbers are x, y, width, height rather than two corners.
        label: what the text around it calls it ("" when nothing was found yet).
        label_span: where that label sits in the text, when it does.
        image: an explicit image number from JSON, as written (0- or 1-based, decided later).
        problem: why it cannot be a box even before scaling ("" when none).
    """

    numbers: tuple[float, ...]
    start: int
    end: int
    xywh: bool = False
    label: str = ""
    label_span: tuple[int, int] | None = None
    image: int | None = None
    problem: str = ""
    from_json: bool = False
    json_segment: tuple[int, int] | None = field(default=None, repr=False)


def _floats(texts: list[str]) -> tuple[float, ...]:
    return tuple(float(t) for t in texts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_list(value: Any) -> list[float] | None:
    """The list as floats when every element is a number (numeric strings allowed), else None."""
    if not isinstance(value, list) or not value:
        return None
    out = []
    for item in value:
        if _is_number(item) or (isinstance(item, str) and NUMBER.fullmatch(item.strip())):
            out.append(float(item))
        else:
            return None
    return out


def _first_str(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _first_int(obj: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return None


def _corner_box(obj: dict[str, Any]) -> tuple[tuple[float, ...], bool] | None:
    """Numbers from corner keys (x1/y1/x2/y2 and friends) or x/y/width/height keys."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for keys, xywh in [(k, False) for k in _CORNER_KEYS] + [(k, True) for k in _SIZE_KEYS]:
        if all(k in lowered for k in keys):
            values = _number_list([lowered[k] for k in keys])
            if values is not None:
                return tuple(values), xywh
    return None


@dataclass
class _JsonBox:
    numbers: tuple[float, ...]
    xywh: bool
    label: str
    image: int | None
    problem: str = ""


def _walk(value: Any, label: str, image: int | None, out: list[_JsonBox], depth: int = 0) -> None:
    """Collect the boxes of a decoded JSON value in document order."""
    if depth > 20 or len(out) > 1000:
        return
    if isinstance(value, list):
        numbers = _number_list(value)
        if numbers is not None and len(numbers) == 4:
            out.append(_JsonBox(tuple(numbers), False, label, image))
            return
        for item in value:
            _walk(item, label, image, out, depth + 1)
        return
    if not isinstance(value, dict):
        return
    label = _first_str(value, LABEL_KEYS) or label
    found = _first_int(value, IMAGE_KEYS)
    image = found if found is not None else image
    boxed = False
    for key, inner in value.items():
        if str(key).lower() not in BOX_KEYS:
            continue
        boxed = True
        numbers = _number_list(inner)
        if numbers is not None and len(numbers) != 4:
            out.append(_JsonBox(tuple(numbers), False, label, image, f"has {len(numbers)} numbers"))
        elif isinstance(inner, dict) and (corners := _corner_box(inner)) is not None:
            out.append(_JsonBox(corners[0], corners[1], label, image))
        else:
            _walk(inner, label, image, out, depth + 1)
    corners = None if boxed else _corner_box(value)
    if corners is not None:
        out.append(_JsonBox(corners[0], corners[1], label, image))
        return
    if boxed:
        return
    for key, inner in value.items():
        lowered = str(key).lower()
        if lowered in LABEL_KEYS or lowered in IMAGE_KEYS:
            continue
        # {"ruler": [x1, y1, x2, y2]} or {"ruler": {"bbox": [...]}}: the key names the thing.
        inner_label = str(key).strip() if isinstance(inner, list | dict) else label
        if lowered in {"objects", "boxes", "detections", "items", "results", "annotations"}:
            inner_label = label
        _walk(inner, inner_label, image, out, depth + 1)


def _json_candidates(text: str, limit: int) -> tuple[list[Candidate], list[tuple[int, int]]]:
    """Boxes inside JSON objects (or arrays of objects) anywhere in the text."""
    decoder = json.JSONDecoder()
    found: list[Candidate] = []
    segments: list[tuple[int, int]] = []
    attempts = 0
    position = 0
    while attempts < _MAX_JSON_ATTEMPTS:
        match = re.compile(r"\{|\[\s*\{").search(text, position)
        if match is None:
            break
        attempts += 1
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        boxes: list[_JsonBox] = []
        _walk(value, "", None, boxes)
        if boxes:
            segments.append((start, end))
            found += _place_json_boxes(text, start, end, boxes[:limit])
            if len(found) >= limit:
                break
        position = end
    return found, segments


def _place_json_boxes(text: str, start: int, end: int, boxes: list[_JsonBox]) -> list[Candidate]:
    """Give each JSON box the span of its own numbers in the text (else the whole document)."""
    placed = []
    cursor = start
    for box in boxes:
        span = (start, end)
        if len(box.numbers) == 4 and not box.xywh:
            for quad in _QUAD.finditer(text, cursor, end):
                if _floats(list(quad.groups())) == box.numbers:
                    span = quad.span()
                    cursor = quad.end()
                    break
        label_span = None
        if box.label:
            quoted = json.dumps(box.label, ensure_ascii=False)
            at = text.rfind(quoted, start, span[0]) if span != (start, end) else -1
            if at < 0:
                at = text.find(quoted, start, end)
            if at >= 0:
                label_span = (at + 1, at + len(quoted) - 1)
        placed.append(
            Candidate(
                numbers=box.numbers,
                start=span[0],
                end=span[1],
                xywh=box.xywh,
                label=box.label,
                label_span=label_span,
                image=box.image,
                problem=box.problem,
                from_json=True,
                json_segment=(start, end),
            )
        )
    return placed


class _Taken:
    """Disjoint spans already claimed, searched by bisection (answers can hold thousands)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self._spans = sorted(spans)
        self._starts = [a for a, _ in self._spans]

    def covers(self, start: int, end: int) -> bool:
        at = bisect.bisect_right(self._starts, start) - 1
        return at >= 0 and self._spans[at][1] >= end

    def add(self, span: tuple[int, int]) -> None:
        at = bisect.bisect_left(self._starts, span[0])
        self._starts.insert(at, span[0])
        self._spans.insert(at, span)


def find_candidates(text: str, limit: int = 1000) -> list[Candidate]:
    """Every box-shaped thing in the text, in reading order, up to `limit` of them.

    JSON documents are read first (their boxes carry JSON labels and image numbers); then
    `<BBOX>` tags, `[x1, y1, x2, y2]` lists and `(x1, y1), (x2, y2)` corner pairs outside them.

    Args:
        text: the answer.
        limit: the most candidates collected (hostile text can hold a box every few bytes).

    Returns:
        The candidates, some with a `problem` (wrong number of coordinates).
    """
    found, segments = _json_candidates(text, limit)
    taken = _Taken(segments)
    for match in _TAG.finditer(text):
        if len(found) >= limit:
            break
        if taken.covers(match.start(), match.end()):
            continue
        numbers = NUMBER.findall(match.group("body"))
        problem = "" if len(numbers) == 4 else f"has {len(numbers)} numbers"
        found.append(Candidate(_floats(numbers), match.start(), match.end(), problem=problem))
        taken.add(match.span())
    for pattern in (_POINTS, _QUAD):
        for match in pattern.finditer(text):
            if len(found) >= limit:
                break
            if taken.covers(match.start(), match.end()):
                continue
            found.append(Candidate(_floats(list(match.groups())), match.start(), match.end()))
            taken.add(match.span())
    found.sort(key=lambda c: (c.start, c.end))
    return found[:limit]
