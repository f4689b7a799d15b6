"""The words sent to Scout about a clip: its frames together, one frame, and a summary."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.ingest.common import quoted
from app.core.video.data import FrameResult
from app.core.video.timecode import format_time

#: Frames one prompt may carry: Meta tested Llama 4 with up to 5 images.
MAX_CLIP_FRAMES = 5
#: Characters of each frame's answer the summary prompt keeps (long answers are cut).
SUMMARY_ANSWER_CHARS = 600


def clip_prompt(question: str, video_name: str, times: Sequence[float], duration_s: float) -> str:
    """The text of one question about up to five frames, each named with its time.

    Args:
        question: what the user asked.
        video_name: the clip's file name.
        times: each frame's time, in the order the images are attached.
        duration_s: the clip's length.

    Returns:
        The user turn's text (the images go before it).
    """
    listed = ", ".join(f"Image {i} at {format_time(t)}" for i, t in enumerate(times, 1))
    return (
        f"These {len(times)} images are frames of the video {quoted(video_name)} "
        f"({format_time(duration_s)} long), in time order: {listed}.\n\n{question.strip()}"
    )


def frame_prompt(question: str, video_name: str, time_s: float) -> str:
    """The text of the question about one frame."""
    return (
        f"This image is the frame at {format_time(time_s)} of the video {quoted(video_name)}."
        f"\n\n{question.strip()}"
    )


def summary_prompt(
    question: str, video_name: str, results: Sequence[FrameResult], duration_s: float
) -> str:
    """One text prompt asking for a summary over the per-frame answers.

    Args:
        question: the question every frame was asked.
        video_name: the clip's file name.
        results: the answers, in time order.
        duration_s: the clip's length.

    Returns:
        The user turn's text.
    """
    lines = []
    for result in results:
        answer = " ".join(result.answer.split())
        if len(answer) > SUMMARY_ANSWER_CHARS:
            answer = answer[: SUMMARY_ANSWER_CHARS - 1] + "…"
        lines.append(f"[{format_time(result.time_s)}] {answer}")
    listing = "\n".join(lines)
    return (
        f"The video {quoted(video_name)} ({format_time(duration_s)} long) was examined frame by "
        f"frame with the question: {question.strip()}\n\nThe answer for each frame, by time:\n"
        f"{listing}\n\nSummarise what happens in the video as an answer to the question, in a "
        "few sentences. Give times (MM:SS) where they matter, and say when the frames disagree."
    )
