"""Grounding around the parser: the Locate prompt, which images boxes index, colours, exports."""

from __future__ import annotations

import json

import pytest

from app.core.grounding import (
    PALETTE,
    answer_images,
    boxes_to_coco,
    boxes_to_json,
    image_sizes,
    label_colour,
    locate_prompt,
    parse_boxes,
    question_images,
    strip_locate_prefix,
)
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Box, Message, Role

BOXES = [Box("ruler", 0, 10, 20, 110, 70), Box("cup", 1, 0, 0, 5, 5), Box("ruler", 1, 1, 1, 3, 3)]
SIZES = [(640, 480), (8, 6)]
NAMES = ["desk.jpg", "cup.png"]


def test_the_locate_prompt_keeps_metas_sentence_and_asks_for_bbox_tags() -> None:
    prompt = locate_prompt("  the   ruler? ")
    assert prompt.startswith("Locate the ruler in the image.")
    assert "Provide bounding boxes for every recognized item." in prompt
    assert "<BBOX>x1,y1,x2,y2</BBOX>" in prompt and "normalized to 0-1" in prompt
    assert "Image 1, Image 2" in locate_prompt("cups", image_count=3)
    assert "every distinct object" in locate_prompt("  ")


def test_an_answer_in_the_requested_format_parses() -> None:
    answer = "**Ruler**\n<BBOX>0.1,0.5,0.9,0.6</BBOX>"
    assert parse_boxes(answer, (100, 100)) == [Box("Ruler", 0, 10, 50, 90, 60)]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("/locate the ruler", (True, "the ruler")),
        ("  /LOCATE   red cup  ", (True, "red cup")),
        ("/locate", (True, "")),
        ("/locate\nthe pen", (True, "the pen")),
        ("/locates the pen", (False, "/locates the pen")),
        ("please /locate the pen", (False, "please /locate the pen")),
        ("", (False, "")),
    ],
)
def test_the_locate_prefix(typed: str, expected: tuple[bool, str]) -> None:
    assert strip_locate_prefix(typed) == expected


def _image(name: str, status: AttachmentStatus = AttachmentStatus.USED, size=(4, 3)) -> Attachment:
    return Attachment(
        name, AttachmentKind.IMAGE, status, sha256="ab" * 32, width=size[0], height=size[1]
    )


def test_question_images_skip_what_the_model_never_saw() -> None:
    text = Attachment("notes.txt", AttachmentKind.TEXT, AttachmentStatus.USED, sha256="cd" * 32)
    attachments = [
        _image("a.png"),
        text,
        _image("skipped.png", AttachmentStatus.SKIPPED),
        _image("b.png", size=(10, 20)),
        Attachment("bad.png", AttachmentKind.IMAGE, AttachmentStatus.ERROR),
    ]
    images = question_images(attachments)
    assert [a.name for a in images] == ["a.png", "b.png"]
    assert image_sizes(images) == [(4, 3), (10, 20)]


def test_answer_images_come_from_the_nearest_question_with_images() -> None:
    def message(role: Role, *attachments: Attachment) -> Message:
        return Message("id", "s", role, "text", 0.0, attachments=attachments)

    history = [
        message(Role.USER, _image("old.png")),
        message(Role.ASSISTANT),
        message(Role.USER, _image("new.png"), _image("new2.png")),
        message(Role.ASSISTANT),
        message(Role.USER),  # a follow-up without images is about the same pictures
        message(Role.ASSISTANT),
    ]
    assert [a.name for a in answer_images(history, 1)] == ["old.png"]
    assert [a.name for a in answer_images(history, 5)] == ["new.png", "new2.png"]
    assert answer_images(history[1:2], 0) == ()


def test_label_colours_are_stable_and_ignore_case_and_spacing() -> None:
    assert label_colour("Ruler") == label_colour(" ruler ") == label_colour("RULER")
    assert label_colour("ruler") in PALETTE
    assert len({label_colour(f"thing {i}") for i in range(50)}) > 5


def test_boxes_to_json_carries_pixels_normalised_coordinates_and_images() -> None:
    document = boxes_to_json(BOXES, SIZES, NAMES)
    assert document["images"][1] == {"index": 1, "name": "cup.png", "width": 8, "height": 6}
    first = document["boxes"][0]
    assert (first["label"], first["image"], first["x1"], first["y2"]) == ("ruler", 0, 10, 70)
    assert first["normalized"] == [0.015625, 0.041667, 0.171875, 0.145833]
    json.dumps(document)  # plain JSON all the way down


def test_boxes_to_coco_is_a_valid_detection_document() -> None:
    coco = boxes_to_coco(BOXES, SIZES, NAMES)
    assert [i["id"] for i in coco["images"]] == [1, 2]
    assert coco["images"][0] == {"id": 1, "file_name": "desk.jpg", "width": 640, "height": 480}
    assert coco["categories"] == [
        {"id": 1, "name": "ruler", "supercategory": "object"},
        {"id": 2, "name": "cup", "supercategory": "object"},
    ]
    first, second, third = coco["annotations"]
    assert first == {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [10, 20, 100, 50],
        "area": 5000,
        "iscrowd": 0,
        "segmentation": [],
    }
    assert (second["image_id"], second["category_id"]) == (2, 2)
    assert (third["image_id"], third["category_id"], third["area"]) == (2, 1, 4)
    json.dumps(coco)


@pytest.mark.parametrize("export", [boxes_to_json, boxes_to_coco])
def test_exports_refuse_boxes_on_images_they_were_not_given(export) -> None:
    with pytest.raises(ValueError, match="image 2, but only 1 image"):
        export(BOXES, SIZES[:1], NAMES[:1])
    with pytest.raises(ValueError, match="1 image name"):
        export(BOXES, SIZES, NAMES[:1])
