"""Test clips written with OpenCV: a square moving at a known speed, then a hard cut."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

FPS = 10
FRAMES = 40  # 4.0 seconds
CUT_FRAME = 25  # the background changes at 2.5 s
SIZE = (160, 120)
SQUARE = 16
STEP = 3  # pixels the square moves right per frame


def frame_image(index: int) -> np.ndarray:
    """Frame `index` of the clip (BGR): grey, then blue from `CUT_FRAME`, a white square at x=3i."""
    background = (70, 70, 70) if index < CUT_FRAME else (200, 60, 20)
    frame = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
    frame[:] = background
    x = STEP * index
    frame[50 : 50 + SQUARE, x : x + SQUARE] = 255
    return frame


def write_clip(path: Path, fourcc: str = "MJPG", frames: int = FRAMES) -> Path:
    """Write the clip to `path` (.avi for MJPG, .mp4 for mp4v) and return it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc}")
    for index in range(frames):
        writer.write(frame_image(index))
    writer.release()
    return path


def square_x(image: np.ndarray) -> int:
    """The left edge of the white square in a decoded frame (RGB or BGR)."""
    bright = np.argwhere(image.min(axis=2) > 200)
    assert len(bright), "no square in the frame"
    return int(bright[:, 1].min())


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
