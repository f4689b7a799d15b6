"""The test clips of `tests.helpers.video_clips` decode with the square where it was drawn."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.helpers.video_clips import (
    FPS,
    FRAMES,
    STEP,
    square_x,
    write_clip,
)


@pytest.mark.parametrize(("name", "fourcc"), [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_the_written_clip_decodes_with_the_square_where_it_was_drawn(
    tmp_path: Path, name: str, fourcc: str
) -> None:
    capture = cv2.VideoCapture(str(write_clip(tmp_path / name, fourcc)))
    seen = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        seen.append((round(capture.get(cv2.CAP_PROP_POS_MSEC)), square_x(frame)))
    capture.release()
    assert len(seen) == FRAMES
    for index, (millis, x) in enumerate(seen):
        assert millis == index * 1000 // FPS
        assert abs(x - STEP * index) <= 2
