"""A frame-by-frame run as saved in a session, and rebuilt from it (the timeline's data).

How a run is stored (see `store_layout` in the report and DESIGN.md):

- one USER message: the question, then attachments: the VIDEO (blob: the original file, detail:
  `video_detail`) followed by every sampled frame as an IMAGE named "clip.mp4 @ 00:12.400";
- one ASSISTANT message per answered frame, in time order, its text `frame_answer_text(...)`
  ("**00:12.400** — answer") and its boxes with `Box.image` = the frame's index among the user
  message's images;
- optionally one ASSISTANT message `summary_text(...)` ("**Summary** — text").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.grounding import question_images
from app.core.messages import (
    Attachment,
    AttachmentKind,
    Box,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.core.video.attachments import info_from_detail
from app.core.video.data import FrameResult, VideoInfo
from app.core.video.timecode import format_time, parse_frame_name, parse_time

SUMMARY_LABEL = "Summary"
_SEPARATOR = " — "
_PREFIX = re.compile(r"^\*\*(?P<head>[^*\n]+)\*\*" + _SEPARATOR)


def frame_answer_text(time_s: float, answer: str) -> str:
    """The stored text of a frame's answer: "**00:12.400** — answer"."""
    return f"**{format_time(time_s)}**{_SEPARATOR}{answer}"


def summary_text(summary: str) -> str:
    """The stored text of a run's summary: "**Summary** — text"."""
    return f"**{SUMMARY_LABEL}**{_SEPARATOR}{summary}"


class AnswerSink(Protocol):
    """The part of `app.store.sessions.SessionStore` that saving answers needs.

    Only the arguments used here: the store's `finish_message` takes more (an error note), and
    core must not import the store to name its type.
    """

    def begin_assistant_message(self, session_id: str) -> Message: ...

    def finish_message(
        self, message_id: str, text: str, stop_reason: StopReason, timings: Timings | None = None,
        *, boxes: Sequence[Box] = (),
    ) -> None: ...  # fmt: skip


def save_frame_answer(store: AnswerSink, session_id: str, result: FrameResult) -> str:
    """Save one frame's answer as an assistant message the timeline can be rebuilt from.

    Returns:
        The message id.
    """
    message = store.begin_assistant_message(session_id)
    text = frame_answer_text(result.time_s, result.answer)
    store.finish_message(message.id, text, result.stop_reason, boxes=result.boxes)
    return message.id


def save_summary(
    store: AnswerSink, session_id: str, summary: str, stop_reason: StopReason,
    timings: Timings | None = None,
) -> str:  # fmt: skip
    """Save a run's summary as an assistant message; returns its id."""
    message = store.begin_assistant_message(session_id)
    store.finish_message(message.id, summary_text(summary), stop_reason, timings)
    return message.id


@dataclass(frozen=True)
class RunFrame:
    """One frame on the timeline.

    Attributes:
        index: its position among the question's images (what `Box.image` says).
        time_s: when it is in the clip.
        image: the stored frame image attachment.
        result: its answer, or None when it was not answered (a stopped run).
        message_id: the answer's message id ("" when unanswered).
    """

    index: int
    time_s: float
    image: Attachment
    result: FrameResult | None = None
    message_id: str = ""


@dataclass(frozen=True)
class VideoRun:
    """Everything the video panel shows for one run.

    Attributes:
        question: what every frame was asked.
        video: the VIDEO attachment (its blob is the original file, for scrubbing).
        info: the clip's facts (from the attachment's detail; None if they were not recorded).
        frames: the sampled frames in time order, with their answers.
        summary: the summary's text, or None.
        question_id: the user message's id.
    """

    question: str
    video: Attachment
    info: VideoInfo | None
    frames: tuple[RunFrame, ...]
    summary: str | None = None
    question_id: str = ""

    @property
    def results(self) -> list[FrameResult]:
        """The answered frames' results, in time order."""
        return [f.result for f in self.frames if f.result is not None]


def load_video_run(
    messages: Sequence[Message], question_index: int | None = None
) -> VideoRun | None:
    """Rebuild a run from a session's messages.

    Args:
        messages: the session's visible messages, in order.
        question_index: the position of the run's user message; None takes the last user
            message that carries a video.

    Returns:
        The run, or None when that message (or no message) carries a video.
    """
    if question_index is None:
        found = [i for i, m in enumerate(messages) if m.role is Role.USER and _video_of(m)]
        if not found:
            return None
        question_index = found[-1]
    question = messages[question_index]
    video = _video_of(question)
    if video is None:
        return None
    frames: dict[str, RunFrame] = {}
    for index, image in enumerate(question_images(question.attachments)):
        parsed = parse_frame_name(image.name)
        if parsed is not None:
            frames[format_time(parsed[1])] = RunFrame(index, parsed[1], image)
    summary = None
    for answer in messages[question_index + 1 :]:
        if answer.role is Role.USER:
            break
        match = _PREFIX.match(answer.text)
        if match is None:
            continue
        body = answer.text[match.end() :]
        head = match["head"]
        if head == SUMMARY_LABEL:
            summary = body
        elif head in frames and parse_time(head) is not None:
            frame = frames[head]
            result = FrameResult(
                frame.index, frame.time_s, body, answer.boxes,
                answer.stop_reason or StopReason.CANCELLED,
            )  # fmt: skip
            frames[head] = RunFrame(frame.index, frame.time_s, frame.image, result, answer.id)
    return VideoRun(
        question=question.text,
        video=video,
        info=info_from_detail(video.detail),
        frames=tuple(sorted(frames.values(), key=lambda f: f.time_s)),
        summary=summary,
        question_id=question.id,
    )


def _video_of(message: Message) -> Attachment | None:
    return next(
        (a for a in message.attachments if a.kind is AttachmentKind.VIDEO and a.sha256), None
    )


def box_dict(box: Box) -> dict[str, Any]:
    """A box as the CLI's JSON writes it (the `ask --json` box fields)."""
    return {"label": box.label, "image": box.image, "x1": box.x1, "y1": box.y1, "x2": box.x2,
            "y2": box.y2}  # fmt: skip


def frame_json(result: FrameResult) -> dict[str, Any]:
    """One entry of the contract's `frames` list."""
    return {
        "index": result.index,
        "time_s": round(result.time_s, 3),
        "answer": result.answer,
        "boxes": [box_dict(b) for b in result.boxes],
    }


def run_json(
    info: VideoInfo, results: Sequence[FrameResult], summary: str | None
) -> dict[str, Any]:
    """The `scout-desk video --json` object, exactly as ARCHITECTURE.md fixes it."""
    return {
        "video": info.to_json(),
        "frames": [frame_json(r) for r in results],
        "summary": summary,
    }
