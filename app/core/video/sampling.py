"""Pick frames from a clip (N spread out, one every T seconds, or at scene changes) and decode them.

Decoding happens in the sandboxed child (`child.py`); this side plans the times and turns the
child's JPEG files into `VideoFrame`s. Sparse samples are reached by seeking, not by decoding
every frame; every reported time is the decoder's presentation time of the frame returned.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from app.core.ingest.sandbox import WorkerOutcome
from app.core.video.child import run_video_worker
from app.core.video.data import MAX_FRAMES, Sampling, SamplingMode, VideoFrame, VideoInfo
from app.core.video.probe import check_outcome

#: Longest side of a sampled frame: the vision encoder tiles to at most 16 squares of 336 pixels.
FRAME_MAX_SIDE = 1344
#: Longest side of a timeline thumbnail.
THUMB_MAX_SIDE = 160
#: Longest side of a scrubbing preview.
PREVIEW_MAX_SIDE = 640
JPEG_QUALITY = 90


def plan_times(info: VideoInfo, sampling: Sampling) -> list[float]:
    """The clip times (seconds from its start) that COUNT and EVERY sampling ask for.

    COUNT takes the middle of N equal parts of the clip (never the black first frame of a fade
    in, never past the end); EVERY starts at 0. Both stop at `MAX_FRAMES`.

    Args:
        info: the probed clip.
        sampling: the mode and its numbers (SCENES has no plan: the scan finds the times).

    Returns:
        Increasing times in [0, duration).
    """
    duration = max(info.duration_s, 0.0)
    if sampling.mode is SamplingMode.COUNT:
        count = min(sampling.count, MAX_FRAMES)
        return [(i + 0.5) * duration / count for i in range(count)]
    if sampling.mode is SamplingMode.EVERY:
        steps = min(MAX_FRAMES, max(1, int(duration / sampling.every_s - 1e-9) + 1))
        return [i * sampling.every_s for i in range(steps)]
    return []


def sample_frames(
    path: Path | str,
    sampling: Sampling,
    info: VideoInfo,
    *,
    name: str | None = None,
    max_side: int = FRAME_MAX_SIDE,
    thumb_side: int = THUMB_MAX_SIDE,
    cancelled: Callable[[], bool] | None = None,
    timeout_s: float | None = None,
) -> list[VideoFrame]:
    """Decode the frames `sampling` asks for (in a child process).

    Args:
        path: the video file (or its stored blob).
        sampling: which frames.
        info: the clip, as `probe_video` found it.
        name: the name used in error sentences (default: the file name).
        max_side: longest side of each frame image.
        thumb_side: longest side of each thumbnail (0: no thumbnails).
        cancelled: polled while decoding; True stops it (`VideoCancelled`).
        timeout_s: wall-clock limit (default: grows with the clip's length and the frame count).

    Returns:
        The frames in time order, indexed from 0. Two planned times that fall on the same frame
        give one frame; a scene scan keeps at most `sampling.count` scenes, the strongest.

    Raises:
        VideoError: decoding failed (the message names the file).
        VideoCancelled: `cancelled` said so.
    """
    path = Path(path)
    request: dict[str, Any] = {
        "path": str(path.absolute()),
        "fps": info.fps,
        "max_side": max_side,
        "thumb_side": thumb_side,
        "quality": JPEG_QUALITY,
    }
    if sampling.mode is SamplingMode.SCENES:
        request |= {
            "action": "scenes",
            "threshold": sampling.threshold,
            "min_gap_s": sampling.min_scene_s,
            "max_frames": min(sampling.count, MAX_FRAMES),
        }
        limit = timeout_s or 60.0 + info.duration_s
    else:
        times = plan_times(info, sampling)
        request |= {"action": "sample", "times": [info.start_s + t for t in times]}
        limit = timeout_s or 30.0 + 0.5 * len(times) + 0.2 * info.duration_s
    return _run(request, limit, name or path.name, info.start_s, cancelled)


def frame_at(
    path: Path | str,
    time_s: float,
    info: VideoInfo,
    *,
    name: str | None = None,
    max_side: int = PREVIEW_MAX_SIDE,
    timeout_s: float = 20.0,
) -> VideoFrame | None:
    """The frame nearest `time_s`, small, for a scrubbing preview.

    Args:
        path: the video file (or its stored blob).
        time_s: seconds from the clip's start (clamped into the clip).
        info: the clip, as `probe_video` found it.
        name: the name used in error sentences.
        max_side: longest side of the image.
        timeout_s: wall-clock limit.

    Returns:
        The frame (`index` 0, no thumbnail), or None when nothing decodes there.

    Raises:
        VideoError: decoding failed.
    """
    path = Path(path)
    when = min(max(time_s, 0.0), max(info.duration_s - 0.5 / max(info.fps, 1.0), 0.0))
    request = {
        "action": "sample",
        "path": str(path.absolute()),
        "fps": info.fps,
        "times": [info.start_s + when],
        "max_side": max_side,
        "thumb_side": 0,
        "quality": JPEG_QUALITY,
    }
    frames = _run(request, timeout_s, name or path.name, info.start_s, None)
    return frames[0] if frames else None


def _run(
    request: dict[str, Any],
    timeout_s: float,
    name: str,
    start_s: float,
    cancelled: Callable[[], bool] | None,
) -> list[VideoFrame]:
    with run_video_worker(request, timeout_s=timeout_s, cancelled=cancelled) as outcome:
        check_outcome(outcome, name, timeout_s)
        return _frames(outcome, start_s)


def _frames(outcome: WorkerOutcome, start_s: float) -> list[VideoFrame]:
    frames = []
    for index, entry in enumerate((outcome.result or {}).get("frames", [])):
        folder = outcome.workdir
        thumb = entry.get("thumb") or ""
        score = entry.get("score")
        frames.append(
            VideoFrame(
                index=index,
                time_s=round(max(0.0, float(entry["time_s"]) - start_s), 6),
                jpeg=(folder / Path(entry["file"]).name).read_bytes(),
                width=int(entry["width"]),
                height=int(entry["height"]),
                thumbnail=(folder / Path(thumb).name).read_bytes() if thumb else b"",
                score=None if score is None else float(score),
            )
        )
    return frames


def thumbnail(image: bytes | Path, max_side: int = THUMB_MAX_SIDE) -> bytes:
    """A small JPEG of a frame image (for a timeline rebuilt from a saved session).

    Args:
        image: the image's bytes or file.
        max_side: the thumbnail's longest side.

    Returns:
        JPEG bytes.
    """
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    with Image.open(source) as opened:
        small = opened.convert("RGB")
    small.thumbnail((max_side, max_side))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=75)
    return out.getvalue()
