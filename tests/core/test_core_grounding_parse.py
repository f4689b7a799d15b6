"""The grounding parser on realistic Llama 4 answers, each output format, and the edge cases."""

from __future__ import annotations

import pytest

from app.core.grounding import MAX_BOXES, box_spans, parse_boxes, parse_boxes_with_notes
from app.core.messages import Box

# Scout's own grounding format, as Meta's material shows it: the "Building with Llama 4" course
# (image-grounding lesson) and meta-llama/llama-cookbook
# getting-started/build_with_llama_api_image_grounding.ipynb ask "Which tools in the image can
# be used for measuring length? Provide bounding boxes for every recognized item." and parse the
# answer with `re.findall(r'<BBOX>(.*?)</BBOX>', output)` plus the **bold** name on each line;
# coordinates are x1,y1,x2,y2 normalised to 0-1 and multiplied by the image's width and height.
LLAMA4_TOOLS = """The tools in the image that can be used for measuring length are:

**Measuring Tape**
<BBOX>0.42,0.03,0.61,0.31</BBOX>

**Ruler**
<BBOX>0.05,0.60,0.70,0.72</BBOX>"""

REALISTIC = [
    # (answer, image size, expected boxes)
    (
        LLAMA4_TOOLS,
        (1000, 800),
        [Box("Measuring Tape", 0, 420, 24, 610, 248), Box("Ruler", 0, 50, 480, 700, 576)],
    ),
    (
        "* **Measuring tape**: <BBOX>0.1,0.2,0.3,0.4</BBOX>\n"
        "* **Ruler**: <BBOX>0.5, 0.5, 0.9, 0.6</BBOX>",
        (640, 480),
        [Box("Measuring tape", 0, 64, 96, 192, 192), Box("Ruler", 0, 320, 240, 576, 288)],
    ),
    (
        "The ruler is located at [0.25, 0.5, 0.75, 0.6] in the image.",
        (400, 300),
        [Box("ruler", 0, 100, 150, 300, 180)],
    ),
    (
        "1. **Cup**\n   - Bounding box: [0.1, 0.1, 0.3, 0.5]\n2. **Pen**\n   - Bounding box: "
        "[0.6, 0.2, 0.9, 0.3]",
        (100, 100),
        [Box("Cup", 0, 10, 10, 30, 50), Box("Pen", 0, 60, 20, 90, 30)],
    ),
    (
        '```json\n[\n  {"label": "cat", "bbox": [0.1, 0.2, 0.5, 0.9]},\n'
        '  {"label": "dog", "bbox": [0.5, 0.1, 0.95, 0.8]}\n]\n```',
        (200, 100),
        [Box("cat", 0, 20, 20, 100, 90), Box("dog", 0, 100, 10, 190, 80)],
    ),
    (
        'Sure! {"bbox_2d": [100, 200, 300, 400], "label": "damaged hinge"}',
        (640, 480),
        [Box("damaged hinge", 0, 100, 200, 300, 400)],
    ),
    (
        '[{"box": [0.0, 0.0, 0.5, 0.5]}, {"box": [0.5, 0.5, 1.0, 1.0]}]',
        (10, 10),
        [Box("object 1", 0, 0, 0, 5, 5), Box("object 2", 0, 5, 5, 10, 10)],
    ),
    (
        '{"ruler": [0.1, 0.1, 0.2, 0.2], "cup": {"bbox": [0.3, 0.3, 0.4, 0.4]}}',
        (100, 100),
        [Box("ruler", 0, 10, 10, 20, 20), Box("cup", 0, 30, 30, 40, 40)],
    ),
    (
        '{"objects": [{"name": "key", "x1": 5, "y1": 6, "x2": 50, "y2": 60}]}',
        (100, 100),
        [Box("key", 0, 5, 6, 50, 60)],
    ),
    (
        "- ruler: [0.1, 0.2, 0.5, 0.6]\n- `coffee cup`: [0.6, 0.1, 0.9, 0.4]",
        (640, 480),
        [Box("ruler", 0, 64, 96, 320, 288), Box("coffee cup", 0, 384, 48, 576, 192)],
    ),
    (
        "The cup [100, 100, 900, 900] and the pen [0, 0, 500, 200].",
        (640, 480),  # 900 is beyond 640x480 and nothing exceeds 1000: a 0-1000 answer
        [Box("cup", 0, 64, 48, 576, 432), Box("pen", 0, 0, 0, 320, 96)],
    ),
    (
        "The scratch spans from (120, 40) to (360, 200).",
        (640, 480),
        [Box("scratch", 0, 120, 40, 360, 200)],
    ),
    (
        "The measuring tape is located at the top left of the image, with bounding box "
        "coordinates of [0.02, 0.03, 0.35, 0.37].",
        (1000, 1000),
        [Box("measuring tape", 0, 20, 30, 350, 370)],
    ),
    (
        "| Object | Box |\n|---|---|\n| Ruler | [0.1, 0.2, 0.3, 0.4] |\n"
        "| Pen | [0.5, 0.5, 0.6, 0.6] |",
        (10, 10),
        [Box("Ruler", 0, 1, 2, 3, 4), Box("Pen", 0, 5, 5, 6, 6)],
    ),
    (
        "**Objects detected:**\n- **Laptop** [0.1, 0.1, 0.6, 0.5]\n"
        "- **Mouse** [0.7, 0.6, 0.8, 0.7]",
        (10, 10),
        [Box("Laptop", 0, 1, 1, 6, 5), Box("Mouse", 0, 7, 6, 8, 7)],
    ),
    (
        "Coordinates are normalized to 0-1000. Door: [100, 200, 300, 400]",
        (2000, 1000),  # the cue decides even though every value fits the image in pixels
        [Box("Door", 0, 200, 200, 600, 400)],
    ),
]


@pytest.mark.parametrize(("answer", "size", "expected"), REALISTIC)
def test_realistic_answers(answer: str, size: tuple[int, int], expected: list[Box]) -> None:
    assert parse_boxes(answer, size) == expected


def test_text_without_boxes_gives_nothing_and_no_notes() -> None:
    assert parse_boxes_with_notes("A cat sits on a mat. Colour [200, 30, 30].", [(10, 10)]) == (
        [],
        [],
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("flipped [0.5, 0.2, 0.1, 0.4]", "second corner is not below and right"),
        ("empty [0.5, 0.2, 0.5, 0.4]", "second corner is not below and right"),
        ("nan [nan, 0.1, 0.2, 0.3]", "not a number"),
        ("inf [0.1, 0.1, inf, 0.3]", "not a number"),
        ("<BBOX>0.1,0.2,0.3</BBOX>", "has 3 numbers, not 4"),
        ('{"label": "x", "bbox": [1, 2, 3, 4, 5]}', "has 5 numbers, not 4"),
        ("far [0.1, 0.1, 1.6, 0.5]", "outside the 100×100 image"),
    ],
)
def test_malformed_boxes_are_dropped_with_a_note(answer: str, reason: str) -> None:
    boxes, notes = parse_boxes_with_notes(answer, [(100, 100)])
    assert boxes == []
    [note] = notes
    assert note.startswith("Box 1 (") and reason in note


def test_one_bad_box_keeps_the_others_and_names_its_number() -> None:
    answer = "- cup: [0.1, 0.1, 0.2, 0.2]\n- bad: [0.9, 0.9, 0.1, 0.1]\n- pen: [0.3, 0.3, 0.4, 0.4]"
    boxes, notes = parse_boxes_with_notes(answer, [(100, 100)])
    assert [b.label for b in boxes] == ["cup", "pen"]
    assert len(notes) == 1 and notes[0].startswith("Box 2 ([0.9, 0.9, 0.1, 0.1])")


def test_slightly_outside_is_clamped_but_far_outside_is_dropped() -> None:
    # 4 % past the right edge is clamped; 10 % past it is refused.
    assert parse_boxes("[0.5, -0.04, 1.04, 0.5]", (100, 100)) == [
        Box("object 1", 0, 50, 0, 100, 50)
    ]
    assert parse_boxes("[0.5, 0.0, 1.1, 0.5]", (100, 100)) == []


def test_a_sub_pixel_box_keeps_one_pixel_inside_the_image() -> None:
    [box] = parse_boxes("[0.5, 0.5, 0.5004, 0.6]", (1000, 100))
    assert (box.x1, box.x2) == (500, 501)
    [edge] = parse_boxes("[0.9999, 0.0, 1.0, 0.5]", (1000, 100))
    assert (edge.x1, edge.x2) == (999, 1000)


@pytest.mark.parametrize(
    ("answer", "size", "expected"),
    [
        # Every value <= 1: normalised, even when all are integers.
        ("[0, 0, 1, 1]", (640, 480), (0, 0, 640, 480)),
        # Values fit the image: pixels.
        ("[10, 20, 300, 400]", (640, 480), (10, 20, 300, 400)),
        # One value beyond the image, none above 1000: the whole answer is 0-1000.
        ("[10, 20, 300, 400] and [500, 500, 700, 900]", (640, 480), (6, 10, 192, 192)),
        # A value above 1000: pixels of a big image.
        ("[100, 200, 1500, 900]", (2000, 1000), (100, 200, 1500, 900)),
        # Ambiguous, documented: 0-1000 numbers on an image bigger than 1000 px read as pixels.
        ("[100, 200, 300, 400]", (2000, 1500), (100, 200, 300, 400)),
        # A pixel answer that says so is never rescaled.
        (
            '{"units": "pixels", "boxes": [{"x1": 0, "y1": 0, "x2": 1, "y2": 1}]}',
            (9, 9),
            (0, 0, 1, 1),
        ),
    ],
)
def test_the_scale_is_decided_once_per_answer(
    answer: str, size: tuple[int, int], expected: tuple[int, int, int, int]
) -> None:
    first = parse_boxes(answer, size)[0]
    assert (first.x1, first.y1, first.x2, first.y2) == expected


def test_labels_are_cleaned_of_markdown_quotes_and_filler() -> None:
    answer = (
        "Bounding box coordinates: [0.5, 0.5, 0.6, 0.6]\n"
        '- "**Red mug**" is at [0.1, 0.1, 0.2, 0.2]\n'
        "## The blue pen\n[0.3, 0.3, 0.4, 0.4]\n"
        "3) 'Scissors' are located at approximately [0.7, 0.7, 0.8, 0.8]\n"
    )
    labels = [b.label for b in parse_boxes(answer, (10, 10))]
    assert labels == ["object 1", "Red mug", "blue pen", "Scissors"]


def test_several_boxes_under_one_bold_name_share_it() -> None:
    answer = "**Screws**\n<BBOX>0.1,0.1,0.2,0.2</BBOX>\n<BBOX>0.3,0.3,0.4,0.4</BBOX>"
    assert [b.label for b in parse_boxes(answer, (10, 10))] == ["Screws", "Screws"]


def test_an_unclosed_tag_at_the_length_limit_still_counts() -> None:
    assert parse_boxes("**Ruler**\n<BBOX>0.1,0.2,0.3,0.4", (10, 10)) == [
        Box("Ruler", 0, 1, 2, 3, 4)
    ]


def test_multi_image_cues_pick_the_image() -> None:
    answer = (
        "**Image 1**\n- cup: [0.1, 0.1, 0.2, 0.2]\n\n"
        "In the second image:\n- pen: [0.3, 0.3, 0.5, 0.5]\n"
        "Picture #3 shows a lamp [0.0, 0.0, 0.5, 0.5]"
    )
    boxes, notes = parse_boxes_with_notes(answer, [(100, 100), (200, 50)])
    assert boxes == [Box("cup", 0, 10, 10, 20, 20), Box("pen", 1, 60, 15, 100, 25)]
    assert notes == ["Box 3 ([0.0, 0.0, 0.5, 0.5]) was left out: the message has no image 3."]


def test_image_cues_are_ignored_with_a_single_image() -> None:
    assert parse_boxes("In image 2: [0.1, 0.1, 0.2, 0.2]", (10, 10))[0].image == 0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('[{"image": 0, "bbox": [0,0,0.5,0.5]}, {"image": 1, "bbox": [0,0,0.5,0.5]}]', [0, 1]),
        # Numbers 1..count without a 0 are read as people count: image 1 is the first.
        ('[{"image": 1, "bbox": [0,0,0.5,0.5]}, {"image": 2, "bbox": [0,0,0.5,0.5]}]', [0, 1]),
        ('[{"image": 1, "bbox": [0,0,0.5,0.5]}]', [1]),
    ],
)
def test_json_image_keys_pick_the_image(answer: str, expected: list[int]) -> None:
    assert [b.image for b in parse_boxes_with_notes(answer, [(10, 10), (20, 20)])[0]] == expected


def test_the_count_is_capped_with_a_note() -> None:
    answer = "\n".join(f"- item {i}: [0.1, 0.1, 0.2, 0.2]" for i in range(MAX_BOXES + 7))
    boxes, notes = parse_boxes_with_notes(answer, [(10, 10)])
    assert len(boxes) == MAX_BOXES and boxes[-1].label == f"item {MAX_BOXES - 1}"
    assert notes == [f"Only the first {MAX_BOXES} of {MAX_BOXES + 7} boxes are shown."]


@pytest.mark.parametrize("sizes", [[], [(0, 10)], [(-5, 5)], [(10.5, 10)], None, [("a", "b")]])
def test_without_a_usable_image_boxes_are_refused_with_a_note(sizes) -> None:
    boxes, notes = parse_boxes_with_notes("[0.1, 0.1, 0.2, 0.2]", sizes)
    assert boxes == [] and notes == ["1 box(es) were ignored: the message has no usable image."]


def test_box_spans_cover_each_boxs_label_and_coordinates() -> None:
    spans = box_spans(LLAMA4_TOOLS, [(1000, 800)])
    words = [(i, LLAMA4_TOOLS[a:b]) for i, a, b in spans]
    assert words == [
        (0, "Measuring Tape"),
        (0, "<BBOX>0.42,0.03,0.61,0.31</BBOX>"),
        (1, "Ruler"),
        (1, "<BBOX>0.05,0.60,0.70,0.72</BBOX>"),
    ]


def test_box_spans_of_json_boxes_point_at_their_numbers_and_labels() -> None:
    answer = '[{"label": "cat", "bbox": [1, 2, 3, 4]}, {"label": "dog", "bbox": [5, 6, 7, 8]}]'
    words = [(i, answer[a:b]) for i, a, b in box_spans(answer, [(10, 10)])]
    assert words == [(0, "cat"), (0, "[1, 2, 3, 4]"), (1, "dog"), (1, "[5, 6, 7, 8]")]


def test_box_span_indexes_follow_the_kept_boxes() -> None:
    answer = "- bad: [0.9, 0.9, 0.1, 0.1]\n- good: [0.1, 0.1, 0.2, 0.2]"
    assert {i for i, _, _ in box_spans(answer, [(10, 10)])} == {0}
    assert answer[box_spans(answer)[0][1] : box_spans(answer)[0][2]] == "good"


def test_hostile_text_is_fast_enough_and_safe() -> None:
    # Thousands of JSON openings and deep nesting must neither raise nor take long.
    for text in ("{" * 50_000, "[" * 50_000 + "{", '{"bbox": ' * 3000, "<bbox>" * 10_000):
        assert parse_boxes(text, (10, 10)) == []


def test_names_that_end_in_box_or_area_keep_those_words() -> None:
    answer = (
        "- **Red box**: <BBOX>0.1,0.1,0.5,0.5</BBOX>\n"
        "- The parking area is at [0.1, 0.2, 0.3, 0.4]\n"
        "- Ruler bounding box: [0.2, 0.2, 0.4, 0.4]\n"
    )
    labels = [b.label for b in parse_boxes(answer, (100, 100))]
    assert labels == ["Red box", "parking area", "Ruler"]
