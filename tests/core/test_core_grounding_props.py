"""Property tests of the grounding parser: never raises, always in bounds, formats round-trip."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.core.grounding import (
    box_spans,
    boxes_to_json,
    parse_boxes,
    parse_boxes_with_notes,
)
from app.core.messages import Box

sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))

# Text that looks like answers: prose mixed with the tokens boxes are made of.
_pieces = st.sampled_from(
    ["[", "]", "(", ")", "{", "}", ",", ":", '"', "\n", " ", "**", "- ", "<BBOX>", "</BBOX>",
     '"bbox": ', '"label": "cup"', '"image": 1', "image 2", "0.5", "1", "1000", "-3", "nan",
     "1e309", "0.0001", "999999", "ruler", "is at", "```json"]
)  # fmt: skip
answer_like = st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=60).map("".join)


def _in_bounds(box: Box, size: tuple[int, int]) -> bool:
    width, height = size
    return (
        all(isinstance(v, int) for v in (box.image, box.x1, box.y1, box.x2, box.y2))
        and 0 <= box.x1 < box.x2 <= width
        and 0 <= box.y1 < box.y2 <= height
        and box.label.strip() != ""
    )


@given(st.text(), sizes)
def test_any_text_never_raises_and_every_box_is_inside(text: str, size: tuple[int, int]) -> None:
    assert all(_in_bounds(b, size) for b in parse_boxes(text, size))


@given(answer_like, st.lists(sizes, min_size=1, max_size=5))
def test_answer_like_text_keeps_the_invariant_on_every_image(
    text: str, image_sizes: list[tuple[int, int]]
) -> None:
    boxes, notes = parse_boxes_with_notes(text, image_sizes)
    assert all(isinstance(n, str) and n.endswith(".") for n in notes)
    for box in boxes:
        assert 0 <= box.image < len(image_sizes)
        assert _in_bounds(box, image_sizes[box.image])
    spans = box_spans(text, image_sizes)
    assert {i for i, _, _ in spans} == set(range(len(boxes)))
    assert all(0 <= a < b <= len(text) for _, a, b in spans)


@st.composite
def pixel_boxes(draw: st.DrawFn) -> tuple[tuple[int, int], list[Box]]:
    width, height = draw(st.integers(8, 4000)), draw(st.integers(8, 4000))
    boxes = []
    for i in range(draw(st.integers(1, 6))):
        x1 = draw(st.integers(0, width - 1))
        y1 = draw(st.integers(0, height - 1))
        x2 = draw(st.integers(x1 + 1, width))
        y2 = draw(st.integers(y1 + 1, height))
        boxes.append(Box(f"thing {i + 1}", 0, x1, y1, x2, y2))
    return (width, height), boxes


def _near(a: Box, b: Box, slack: int) -> bool:
    pairs = ((a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2))
    return a.label == b.label and all(abs(p - q) <= slack for p, q in pairs)


@given(pixel_boxes())
def test_llama4_bbox_tags_round_trip_within_a_pixel(case) -> None:
    (width, height), boxes = case
    text = "The items are:\n\n" + "\n\n".join(
        f"**{b.label}**\n<BBOX>{b.x1 / width:.6f},{b.y1 / height:.6f},"
        f"{b.x2 / width:.6f},{b.y2 / height:.6f}</BBOX>"
        for b in boxes
    )
    parsed = parse_boxes(text, (width, height))
    assert len(parsed) == len(boxes)
    assert all(_near(p, b, 1) for p, b in zip(parsed, boxes, strict=True))


@given(pixel_boxes(), st.sampled_from(["bbox", "bbox_2d", "box"]))
def test_json_in_pixels_round_trips_exactly(case, key: str) -> None:
    (width, height), boxes = case
    document = [{"label": b.label, key: [b.x1, b.y1, b.x2, b.y2]} for b in boxes]
    text = "```json\n" + json.dumps(document, indent=2) + "\n```"
    # Pixel boxes whose numbers all fit 0-1 would read as normalised: the units cue says pixels.
    text = '{"units": "pixels"}\n' + text
    assert parse_boxes(text, (width, height)) == boxes


@given(pixel_boxes())
def test_markdown_lists_in_thousandths_round_trip_within_a_pixel(case) -> None:
    (width, height), boxes = case
    text = "Coordinates are on a 0-1000 scale.\n" + "\n".join(
        f"- {b.label}: [{b.x1 * 1000 / width:.3f}, {b.y1 * 1000 / height:.3f}, "
        f"{b.x2 * 1000 / width:.3f}, {b.y2 * 1000 / height:.3f}]"
        for b in boxes
    )
    parsed = parse_boxes(text, (width, height))
    assert all(_near(p, b, 1) for p, b in zip(parsed, boxes, strict=True))
    assert len(parsed) == len(boxes)


@given(pixel_boxes())
def test_the_scout_desk_json_export_reads_back_to_the_same_boxes(case) -> None:
    size, boxes = case
    document = boxes_to_json(boxes, [size], ["photo.jpg"])
    assert parse_boxes(json.dumps(document), size) == boxes
