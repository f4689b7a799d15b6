"""Plain data of the video feature: what a clip is, how to sample it, frames and their answers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.core.errors import Cancellation, ExpectedError
from app.core.messages import Box, StopReason


class VideoError(ExpectedError):
    """A video cannot be used; `message` is a sentence for the user that names the file."""


class VideoCancelled(Cancellation):
    """Sampling or probing was cancelled by the caller."""


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder found out about a clip (the `video` object of `scout-desk video --json`).

    Attributes:
        duration_s: from the first decoded frame to the end of the last one.
        fps: frames per second (the header's value only when decoded frames agree with it).
        width: pixels of an upright frame.
        height: pixels of an upright frame.
        frame_count: frames in the clip (the header's count only when it fits the duration).
        estimated: True when the end could not be found in time and `duration_s` is a guess.
        start_s: the decoder's time of the first frame (frame times are reported from it).
    """

    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int
    estimated: bool = False
    start_s: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        """The contract's `video` object."""
        return {
            "duration_s": round(self.duration_s, 3),
            "fps": round(self.fps, 3),
            "width": self.width,
            "height": self.height,
            "frame_count": self.frame_count,
        }


class SamplingMode(StrEnum):
    """How frames are picked."""

    COUNT = "count"  # N frames spread over the clip
    EVERY = "every"  # one every T seconds
    SCENES = "scenes"  # the first frame of each scene


#: Frames one run may sample: more would take hours to answer and fill the timeline.
MAX_FRAMES = 500


@dataclass(frozen=True)
class Sampling:
    """Which frames to take.

    Attributes:
        mode: count, every or scenes.
        count: frames for COUNT (and the most scenes kept for SCENES).
        every_s: seconds between frames for EVERY.
        threshold: scene-change score for SCENES (PySceneDetect's 0-255 content scale).
        min_scene_s: shortest scene for SCENES.
    """

    mode: SamplingMode = SamplingMode.COUNT
    count: int = 8
    every_s: float = 2.0
    threshold: float = 27.0
    min_scene_s: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_FRAMES:
            raise ValueError(f"The number of frames must be between 1 and {MAX_FRAMES}.")
        if not self.every_s > 0:
            raise ValueError("The time between frames must be more than 0 seconds.")
        if not self.threshold > 0 or self.min_scene_s < 0:
            raise ValueError("The scene threshold must be above 0 and the shortest scene >= 0 s.")


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame, in memory.

    Attributes:
        index: its position among the sampled frames (0-based).
        time_s: the decoder's presentation time of the frame.
        jpeg: the upright frame as JPEG bytes (RGB once decoded).
        width: pixels of `jpeg`.
        height: pixels of `jpeg`.
        thumbnail: a small JPEG for the timeline (b"" when none was asked for).
        score: for scene starts, how strong the change was (0-255; 255 for the first frame).
    """

    index: int
    time_s: float
    jpeg: bytes
    width: int
    height: int
    thumbnail: bytes = b""
    score: float | None = None


@dataclass(frozen=True)
class FrameRef:
    """A stored frame image, as the engine reads it for a question.

    Attributes:
        index: the frame's position among the question's images (`Box.image`).
        time_s: when it is in the clip.
        path: the upright RGB image file (a stored blob).
        width: pixels of that image.
        height: pixels of that image.
    """

    index: int
    time_s: float
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class FrameResult:
    """The answer about one frame.

    Attributes:
        index: the frame's position among the sampled frames (and `Box.image` of its boxes).
        time_s: when the frame is in the clip.
        answer: the model's answer text.
        boxes: regions located in that frame, in its pixels; each `Box.image` is `index`.
        stop_reason: why the answer ended.
    """

    index: int
    time_s: float
    answer: str
    boxes: tuple[Box, ...] = ()
    stop_reason: StopReason = StopReason.EOS
