"""Decoding with OpenCV's FFmpeg backend: probe, seek-sample, scan for scenes (child side only).

Only `video_worker.py` imports this module, inside the sandboxed child: a decoder crash there
costs one video, never the app. It imports numpy, OpenCV and `scenes` — never `app`. Every time
it reports is the decoder's presentation time of a frame it really decoded
(`CAP_PROP_POS_MSEC` after a read), never a header's frame rate multiplied by a frame number.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # the same file, under the package name the type checker knows
    from app.core.video import scenes
else:
    import scenes  # the sibling module, put on sys.path by video_worker.py

#: A target closer than this after the current position is reached by decoding forward: a seek
#: restarts at the previous keyframe, which costs more than a few frames of decoding.
GRAB_AHEAD_S = 0.5
#: Headers claiming more than this are not believed (48 hours).
MAX_PLAUSIBLE_S = 48 * 3600.0
_INTERVAL_PROBES = 8


class VideoUnreadable(Exception):  # noqa: N818 (a verdict on the file, not a program error)
    """The file cannot be decoded; `reason` is a key the parent turns into a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Probe:
    """What the decoder says about a video (see `app.core.video.data.VideoInfo`)."""

    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int
    start_s: float
    estimated: bool


def open_capture(path: str) -> cv2.VideoCapture:
    """Open `path` with FFmpeg only (no image-sequence or camera backends), frames upright."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise VideoUnreadable("open")
    # Phone videos carry a rotation; OpenCV applies it by default, but say so explicitly.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def position_s(cap: cv2.VideoCapture) -> float:
    """The presentation time of the frame last decoded, in seconds."""
    return float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0


def probe(cap: cv2.VideoCapture, deadline: float) -> Probe:
    """Size, frame rate, duration and frame count, trusting headers only where frames agree.

    Args:
        cap: a freshly opened capture (it is left at an arbitrary position).
        deadline: `time.monotonic()` after which the end is estimated instead of found.

    Returns:
        The probe.

    Raises:
        VideoUnreadable: not even the first frame decodes.
    """
    ok, frame = cap.read()
    if not ok or frame is None:
        raise VideoUnreadable("no_frames")
    height, width = frame.shape[:2]
    times = [position_s(cap)]
    for _ in range(_INTERVAL_PROBES):
        if not cap.grab():
            break
        times.append(position_s(cap))
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    measured = statistics.median(steps) if steps else 0.0
    header_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    header_count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
    fps = _trusted_fps(header_fps, measured)
    interval = 1.0 / fps if fps > 0 else 0.0
    estimated = False
    if len(times) <= _INTERVAL_PROBES:  # the whole video was read already
        last = times[-1]
    else:
        header_end = header_count / fps + times[0] if fps > 0 and header_count > 0 else 0.0
        last, estimated = _last_time(cap, times[-1], header_end, deadline)
    duration = max(0.0, last - times[0]) + interval
    count = round(duration * fps) if fps > 0 else len(times)
    if header_count >= 1 and abs(header_count - count) <= 1:
        count = int(header_count)
    return Probe(duration, fps, width, height, max(1, count), times[0], estimated)


def _trusted_fps(header_fps: float, measured_interval: float) -> float:
    """The header's rate when decoded frames agree with it (within 25 %), else the measured one."""
    plausible = 0.0 < header_fps <= 1000.0
    if measured_interval <= 0:
        return header_fps if plausible else 0.0
    measured = 1.0 / measured_interval
    if plausible and abs(header_fps - measured) <= 0.25 * measured:
        return header_fps
    return measured


def _last_time(
    cap: cv2.VideoCapture, known: float, header_end: float, deadline: float
) -> tuple[float, bool]:
    """The time of the last decodable frame: seek near the header's end, else search for it.

    Returns:
        (time_s, estimated): estimated is True when the deadline cut the search short.
    """
    good = known
    if known < header_end <= MAX_PLAUSIBLE_S:
        landed = _seek_read(cap, max(known, header_end - 2.0))
        if landed is not None and landed >= good:
            good = landed
        else:
            good = _bisect_end(cap, known, header_end, deadline)
            _seek_read(cap, good)
    # Decode forward from there to the real end (the header may also be short of it).
    while cap.grab():
        good = max(good, position_s(cap))
        if time.monotonic() > deadline:
            return good, True
    return good, False


def _bisect_end(cap: cv2.VideoCapture, low: float, high: float, deadline: float) -> float:
    """The latest time a seek still lands on a frame, between `low` (one does) and `high`."""
    for _ in range(24):
        if high - low <= 1.0 or time.monotonic() > deadline:
            break
        middle = (low + high) / 2
        landed = _seek_read(cap, middle)
        if landed is not None and landed >= low:
            low = max(landed, middle - 1.0)
        else:
            high = middle
    return low


def _seek_read(cap: cv2.VideoCapture, time_s: float) -> float | None:
    """Seek to `time_s` and decode one frame; its time, or None when nothing decodes there."""
    cap.set(cv2.CAP_PROP_POS_MSEC, time_s * 1000.0)
    if not cap.grab():
        return None
    return position_s(cap)


def frames_at(
    open_again: Callable[[], cv2.VideoCapture], times: list[float], fps: float
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode the frame nearest each time, seeking across gaps and decoding forward across
    short ones; a seek that lands far from its target switches to decoding forward from there.

    Args:
        open_again: opens a fresh capture (used at the start and when seeking proves unreliable).
        times: wanted times in seconds, increasing.
        fps: the probed frame rate (only to judge "nearest"; reported times are the decoder's).

    Yields:
        (time_s, BGR frame) per distinct frame found, in time order; a time past the end yields
        nothing.
    """
    half = 0.5 / fps if fps > 0 else 0.02
    tolerance = max(4 * half, 0.25)
    cap = open_again()
    seeking = True
    position: float | None = None  # time of the frame last decoded
    last_yielded: float | None = None
    for target in times:
        if seeking and (position is None or not 0 <= target - position <= GRAB_AHEAD_S):
            landed = _seek_read(cap, target)
            if landed is None or (landed - target > tolerance):
                # Overshot or found nothing: this file does not seek well (or the time is past
                # its end). Decode forward from the start instead, for this and what follows.
                cap.release()
                cap, seeking, position = open_again(), False, None
            else:
                position = landed
        while position is None or position < target - half:
            if not cap.grab():
                cap.release()
                return
            position = position_s(cap)
        ok, frame = cap.retrieve()
        if ok and frame is not None and position != last_yielded:
            last_yielded = position
            yield position, frame
    cap.release()


def scan_scenes(
    cap: cv2.VideoCapture,
    detector: scenes.SceneDetector,
    fps: float,
    deadline: float,
    on_start: Callable[[float, np.ndarray], None],
) -> bool:
    """Decode the whole video, feeding the detector at most about 15 signatures a second.

    Args:
        cap: an open capture at its start.
        detector: collects the scene starts.
        fps: the probed frame rate (decides how many frames to skip between signatures).
        deadline: `time.monotonic()` after which the scan stops early.
        on_start: called with (time_s, BGR frame) for each scene start, when it is found.

    Returns:
        True when the scan reached the end, False when the deadline stopped it.
    """
    step = max(1, round(fps / 15.0)) if fps > 0 else 1
    index = 0
    while cap.grab():
        if index % step == 0:
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                small = cv2.resize(frame, scenes.SIGNATURE_SIZE, interpolation=cv2.INTER_AREA)
                when = position_s(cap)
                if detector.feed(when, cv2.cvtColor(small, cv2.COLOR_BGR2HSV)):
                    on_start(when, frame)
        index += 1
        if time.monotonic() > deadline:
            return False
    return True


def encode(frame: np.ndarray, max_side: int, quality: int) -> tuple[bytes, int, int]:
    """A frame as JPEG bytes (upright RGB once decoded), shrunk so no side exceeds `max_side`.

    Returns:
        (jpeg bytes, width, height).
    """
    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        width, height = size
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise VideoUnreadable("encode")
    return data.tobytes(), width, height
