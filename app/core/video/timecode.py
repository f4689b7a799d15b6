"""Times in a clip as people read them ("01:02.400"), and the names of frame images."""

from __future__ import annotations

import math
import re

#: Between a video's name and a frame's time in a frame image's name: "clip.mp4 @ 00:12.400".
FRAME_NAME_SEPARATOR = " @ "
_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})\.(\d{3})$")


def format_time(seconds: float) -> str:
    """A time as MM:SS.mmm, or H:MM:SS.mmm from one hour on.

    Args:
        seconds: the time (negative and non-finite values count as 0).

    Returns:
        "00:12.400", "1:02:03.000".
    """
    millis = round(seconds * 1000) if math.isfinite(seconds) and seconds > 0 else 0
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"
    return f"{minutes:02d}:{secs:02d}.{millis:03d}"


def parse_time(text: str) -> float | None:
    """Read a time written by `format_time` back to seconds (None for anything else)."""
    match = _TIME.match(text.strip())
    if match is None:
        return None
    hours, minutes, secs, millis = (int(g) if g else 0 for g in match.groups())
    if secs >= 60 or (hours and minutes >= 60):
        return None
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def frame_name(video_name: str, time_s: float) -> str:
    """The name of a frame image: "clip.mp4 @ 00:12.400"."""
    return f"{video_name}{FRAME_NAME_SEPARATOR}{format_time(time_s)}"


def parse_frame_name(name: str) -> tuple[str, float] | None:
    """(video name, time in seconds) from a frame image's name, or None if it is not one."""
    video, separator, when = name.rpartition(FRAME_NAME_SEPARATOR)
    if not separator or not video:
        return None
    time_s = parse_time(when)
    return None if time_s is None else (video, time_s)
