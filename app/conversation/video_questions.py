"""The video panel's work on the inference thread: per-frame answers, a clip answer, a summary.

Each function here builds a `JobFunction` for `InferenceWorker.run_job`; it runs on the worker
thread with the loaded engine and emits plain data only (`FrameResult`s, text chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.inference.engine import CancelToken, Engine, JobEmit, JobFunction, run_to_end

if TYPE_CHECKING:
    from app.core.video.data import FrameRef, FrameResult

#: Answers every frame (the signature of `app.inference.frames.answer_frames`); tests inject a
#: fake, since the real one needs a loaded Llama 4.
AnswerFrames = Callable[..., Iterator["FrameResult"]]
#: Answer length per frame and for the summary (the CLI's defaults).
FRAME_TOKENS, SUMMARY_TOKENS = 256, 512


def answer_frames(
    engine: Engine, question: str, frames: Sequence[FrameRef], video_name: str,
    cancel: CancelToken, **options: Any,
) -> Iterator[FrameResult]:  # fmt: skip
    """The default `AnswerFrames`: `app.inference.frames.answer_frames`, imported when used."""
    from app.inference.frames import answer_frames as real

    return real(engine, question, frames, video_name, cancel, **options)


@dataclass(frozen=True)
class Decoding:
    """How the model samples tokens (from the settings in force when the ask started)."""

    temperature: float | None = None
    top_p: float | None = None


def frames_job(
    answer: AnswerFrames,
    question: str,
    frames: Sequence[FrameRef],
    video_name: str,
    decoding: Decoding,
    *,
    batch_size: int,
    max_patches: int | None,
    max_new_tokens: int = FRAME_TOKENS,
) -> JobFunction:
    """A job that asks `question` about every frame and emits each `FrameResult` as it comes.

    Args:
        answer: the frame answerer (`answer_frames` unless a test injects another).
        question: what to ask about each frame.
        frames: the stored frames, in time order.
        video_name: the clip's name.
        decoding: temperature and top-p.
        batch_size: frames per `generate` call.
        max_patches: at most this many tiles per frame (None: the processor's own limit).
        max_new_tokens: answer length limit per frame.

    Returns:
        The job; it returns how many frames were answered.
    """

    def job(engine: Engine, cancel: CancelToken, emit: JobEmit) -> int:
        count = 0
        for result in answer(
            engine, question, frames, video_name, cancel,
            batch_size=batch_size, max_new_tokens=max_new_tokens,
            temperature=decoding.temperature, top_p=decoding.top_p, max_patches=max_patches,
        ):  # fmt: skip
            emit(result)
            count += 1
        return count

    return job


def clip_job(
    question: str,
    frames: Sequence[FrameRef],
    video_name: str,
    duration_s: float,
    decoding: Decoding,
    max_new_tokens: int,
) -> JobFunction:
    """A job that asks one question about up to five frames at once, emitting text chunks.

    Returns:
        The job; it returns the `GenerationResult`.
    """

    def stream(engine: Engine, cancel: CancelToken) -> Any:
        from app.inference.frames import ask_about_clip

        return ask_about_clip(
            engine, question, frames, video_name, duration_s, cancel,
            max_new_tokens=max_new_tokens, temperature=decoding.temperature, top_p=decoding.top_p,
        )  # fmt: skip

    return _streaming_job(stream)


def summary_job(
    question: str,
    results: Sequence[FrameResult],
    video_name: str,
    duration_s: float,
    decoding: Decoding,
    max_new_tokens: int = SUMMARY_TOKENS,
) -> JobFunction:
    """A job that summarises the per-frame answers, emitting text chunks.

    Returns:
        The job; it returns the `GenerationResult`.
    """

    def stream(engine: Engine, cancel: CancelToken) -> Any:
        from app.inference.frames import summarize_frames

        return summarize_frames(
            engine, question, results, video_name, duration_s, cancel,
            max_new_tokens=max_new_tokens, temperature=decoding.temperature, top_p=decoding.top_p,
        )  # fmt: skip

    return _streaming_job(stream)


def _streaming_job(stream: Callable[[Engine, CancelToken], Any]) -> JobFunction:
    """A job that drives a text stream, emitting each chunk, and returns its `GenerationResult`."""

    def job(engine: Engine, cancel: CancelToken, emit: JobEmit) -> object:
        return run_to_end(stream(engine, cancel), emit)

    return job
