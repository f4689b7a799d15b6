"""Probe a video in the sandboxed decoder: duration, frame rate, size and frame count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from app.core.ingest.common import human_size, quoted
from app.core.ingest.sandbox import Failure, WorkerOutcome
from app.core.video.child import DEFAULT_MEMORY_BYTES, run_video_worker
from app.core.video.data import VideoError, VideoInfo

log = logging.getLogger(__name__)

#: Seconds a probe may take. A damaged file fails in well under a second; finding the end of a
#: file whose header lies takes a few seeks, or a scan the worker stops in time.
PROBE_TIMEOUT_S = 20.0


def probe_video(
    path: Path | str,
    *,
    name: str | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    cancelled: Callable[[], bool] | None = None,
) -> VideoInfo:
    """Find a video's duration, frame rate, size and frame count by decoding it (in a child).

    Header values are used only where decoded frames agree with them; the duration is the
    time of the last frame that really decodes, plus one frame.

    Args:
        path: the video file (or its stored blob).
        name: the name used in error sentences (default: the file name).
        timeout_s: wall-clock limit for the child.
        cancelled: polled while the child runs.

    Returns:
        The clip's facts.

    Raises:
        VideoError: the file cannot be decoded (the message names it and says why).
        VideoCancelled: `cancelled` said so.
    """
    path = Path(path)
    name = name or path.name
    request = {"action": "probe", "path": str(path.absolute())}
    with run_video_worker(request, timeout_s=timeout_s, cancelled=cancelled) as outcome:
        check_outcome(outcome, name, timeout_s)
        info = (outcome.result or {})["info"]
    return VideoInfo(
        duration_s=float(info["duration_s"]),
        fps=float(info["fps"]),
        width=int(info["width"]),
        height=int(info["height"]),
        frame_count=int(info["frame_count"]),
        estimated=bool(info["estimated"]),
        start_s=float(info["start_s"]),
    )


def check_outcome(outcome: WorkerOutcome, name: str, timeout_s: float) -> None:
    """Raise `VideoError` with a sentence naming the file unless the worker succeeded."""
    if outcome.failure is Failure.TIMEOUT:
        raise VideoError(
            f"{quoted(name)} took longer than {timeout_s:g} seconds to decode and was stopped; "
            "it may be damaged."
        )
    if outcome.failure is not None:
        log.warning("video worker failed on %s (%s, exit %s): %s", name, outcome.failure,
                    outcome.returncode, outcome.log_tail)  # fmt: skip
        raise VideoError(
            f"{quoted(name)} could not be decoded: the video decoder stopped on it, which "
            "happens when a file is damaged."
        )
    result = outcome.result or {}
    if result.get("ok"):
        return
    error = result.get("error")
    log.info("video worker refused %s: %s %s", name, error, result.get("message", ""))
    if error == "open":
        raise VideoError(
            f"{quoted(name)} cannot be opened as a video: it looks damaged, incomplete (a "
            "download or recording cut short) or in a format the decoder does not know."
        )
    if error == "no_frames":
        raise VideoError(
            f"{quoted(name)} opens as a video but no frame of it can be decoded: it looks "
            "damaged or cut short."
        )
    if error == "memory":
        raise VideoError(
            f"{quoted(name)} needs more than {human_size(DEFAULT_MEMORY_BYTES)} of memory to "
            "decode."
        )
    raise VideoError(f"{quoted(name)} could not be decoded: it looks damaged.")
