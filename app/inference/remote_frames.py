"""Every frame of a clip asked of a server: one request per frame, several in flight at once.

A server batches concurrent requests itself (vLLM's continuous batching), so the frames go as
separate requests through any `ConcurrentEngine` (`RemoteEngine`: at most its `max_concurrency`
at a time), with the same prompt the local engine uses; answers come back in time order.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace

from app.core.grounding import parse_boxes_with_notes
from app.core.messages import ChatTurn, Role
from app.core.video.data import FrameRef, FrameResult
from app.core.video.prompts import frame_prompt
from app.inference.engine import CancelToken, ConcurrentEngine, GenerationRequest


def answer_frames_remotely(
    engine: ConcurrentEngine,
    question: str,
    frames: Sequence[FrameRef],
    video_name: str,
    cancel: CancelToken,
    *,
    max_new_tokens: int = 256,
    temperature: float | None = None,
    top_p: float | None = None,
) -> Generator[FrameResult, None, None]:
    """Ask `question` about each frame as concurrent requests; yield the results in order.

    Args:
        engine: a loaded engine that answers requests concurrently (a server).
        question: what to ask about each frame.
        frames: the frames, in time order.
        video_name: the clip's name (the prompt says which video and when).
        cancel: the user's Stop: every request in flight is closed.
        max_new_tokens: answer length limit per frame.
        temperature: None for the model's default; 0 for greedy.
        top_p: None for the model's default.

    Yields:
        One result per frame, in time order; boxes are in that frame's pixels with
        `Box.image` = the frame's index.

    Raises:
        EngineError: a request failed (the others were stopped first).
    """
    requests = [
        GenerationRequest(
            (ChatTurn(Role.USER, frame_prompt(question, video_name, f.time_s), (f.path,)),),
            max_new_tokens,
            temperature,
            top_p,
        )
        for f in frames
    ]
    finished: dict[int, FrameResult] = {}
    following = 0  # the next frame to hand out, so answers leave in time order
    for position, text, result in engine.generate_concurrent(requests, cancel):
        frame = frames[position]
        found, _notes = parse_boxes_with_notes(text, [(frame.width, frame.height)])
        boxes = tuple(replace(b, image=frame.index) for b in found)
        finished[position] = FrameResult(frame.index, frame.time_s, text, boxes, result.stop_reason)
        while following in finished:
            yield finished.pop(following)
            following += 1
