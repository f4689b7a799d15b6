"""Grounding: boxes in Llama 4's answers, as integer pixels of the upright original image."""

from app.core.grounding.boxes import box_spans, parse_boxes, parse_boxes_with_notes
from app.core.grounding.colours import PALETTE, label_colour
from app.core.grounding.export import boxes_to_coco, boxes_to_json
from app.core.grounding.images import answer_images, image_sizes, question_images
from app.core.grounding.parse import MAX_BOXES
from app.core.grounding.prompt import LOCATE_PREFIX, locate_prompt, strip_locate_prefix
from app.core.messages import Box

__all__ = [
    "LOCATE_PREFIX",
    "MAX_BOXES",
    "PALETTE",
    "Box",
    "answer_images",
    "box_spans",
    "boxes_to_coco",
    "boxes_to_json",
    "image_sizes",
    "label_colour",
    "locate_prompt",
    "parse_boxes",
    "parse_boxes_with_notes",
    "question_images",
    "strip_locate_prefix",
]
