"""`scout-desk video`: the same question about sampled frames of a clip, then a summary."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from app.commands.common import (
    EXIT_INTERRUPTED,
    Interrupt,
    ModelRun,
    add_local_model_arguments,
    add_server_arguments,
    fail,
    model_run,
    open_engine,
    open_store,
    progress_printer,
    rescue_answer,
)
from app.commands.terminal import json_text, printable
from app.conversation.pipeline import Conversation
from app.core.ingest import ingest_path
from app.core.ingest.common import quoted
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, StopReason
from app.core.settings import Settings
from app.core.video.attachments import frame_refs, frames_to_attachments, info_from_detail
from app.core.video.data import (
    FrameResult,
    Sampling,
    SamplingMode,
    VideoCancelled,
    VideoError,
    VideoInfo,
)
from app.core.video.run import run_json, save_frame_answer, save_summary
from app.core.video.sampling import sample_frames
from app.core.video.timecode import format_time
from app.inference.engine import Cancelled, CancelToken, Engine, EngineError, run_to_end
from app.store.sessions import SessionStore

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 3
#: Frames sampled when no mode is given.
DEFAULT_FRAMES = 8
#: Answer length per frame and for the summary unless --max-new-tokens says otherwise.
FRAME_TOKENS, SUMMARY_TOKENS = 256, 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `video` options (see ARCHITECTURE.md, the CLI contract)."""
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("question", metavar="QUESTION")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--frames", type=_frame_count, metavar="N",
                      help=f"N frames spread over the clip (default {DEFAULT_FRAMES})")  # fmt: skip
    mode.add_argument("--every", type=_seconds, metavar="SECONDS", help="one frame every SECONDS")
    mode.add_argument("--scenes", action="store_true", help="the first frame of each scene")
    add_server_arguments(parser)
    add_local_model_arguments(parser)
    parser.add_argument("--max-new-tokens", type=_frame_count, default=None, metavar="N")
    parser.add_argument("--batch-size", type=_frame_count, default=None, metavar="N",
                        help="frames per generate call (default 4)")  # fmt: skip
    parser.add_argument("--fast", action="store_true", help="fewer image tiles per frame")
    parser.add_argument("--no-save", action="store_true", help="do not keep this run")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def _frame_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def sampling_from_args(args: argparse.Namespace) -> Sampling:
    """The sampling the options ask for (N frames by default)."""
    if args.scenes:
        return Sampling(SamplingMode.SCENES, count=args.frames or 100)
    if args.every:
        return Sampling(SamplingMode.EVERY, every_s=args.every)
    return Sampling(SamplingMode.COUNT, count=min(args.frames or DEFAULT_FRAMES, 500))


def run(args: argparse.Namespace) -> int:
    """Ingest and sample the clip, save the question, answer every frame, summarise."""
    setup = model_run(args)
    if isinstance(setup, int):
        return setup
    cancel = CancelToken()
    with Interrupt(cancel) as interrupt, open_store(setup.data_dir, keep=not args.no_save) as store:
        # Each frame's answer is saved whole as it comes: a forced stop only tidies up.
        interrupt.set_rescue(rescue_answer(store, None, keep=not args.no_save))
        video = _ingest_video(args.file, store)
        if video.status is AttachmentStatus.ERROR:
            return fail(video.detail, EXIT_BAD_INPUT)
        info = info_from_detail(video.detail)
        assert info is not None  # ingest wrote the detail
        try:
            frames = sample_frames(
                store.blobs.path(video.sha256 or ""), sampling_from_args(args), info,
                name=video.name, cancelled=lambda: cancel.cancelled,
            )  # fmt: skip
        except VideoError as error:
            return fail(error.message, EXIT_BAD_INPUT)
        except VideoCancelled:
            return fail("stopped before any frame was sampled", EXIT_INTERRUPTED)
        if not frames:
            return fail(f"no frame of {quoted(video.name)} could be decoded", EXIT_BAD_INPUT)
        images = frames_to_attachments(frames, video.name, video.source_path, store.blobs)
        question = Conversation(store).save_question(
            None, args.question, [video, *images], used=True
        )
        code = _answer(args, setup, store, question.session_id,
                       question.message.attachments, info, cancel)  # fmt: skip
        return EXIT_INTERRUPTED if interrupt.interrupted and code == EXIT_OK else code


def _ingest_video(path: Path, store: SessionStore) -> Attachment:
    """The file as a VIDEO attachment, or an ERROR one saying why it is not one."""
    [attachment] = ingest_path(path, store.blobs)
    if attachment.status is AttachmentStatus.ERROR or attachment.kind is AttachmentKind.VIDEO:
        return attachment
    sentence = f"{quoted(attachment.name)} is not a video (it looks like {attachment.kind.value})."
    return replace(attachment, status=AttachmentStatus.ERROR, detail=sentence)


def _answer(
    args: argparse.Namespace,
    setup: ModelRun,
    store: SessionStore,
    session_id: str,
    attachments: tuple[Attachment, ...],
    info: VideoInfo,
    cancel: CancelToken,
) -> int:
    from app.inference.frames import DEFAULT_BATCH_SIZE, FAST_MAX_PATCHES, answer_frames

    settings = setup.settings
    video_name = attachments[0].name
    refs = frame_refs(attachments, store.blobs.path)
    engine = open_engine(
        setup, quantization=args.quantization, kv_cache=args.kv_cache, output_head=args.output_head
    )
    results: list[FrameResult] = []
    summary: str | None = None
    try:
        engine.load(progress_printer(quiet=args.json), cancel)
        answers = answer_frames(
            engine, args.question, refs, video_name, cancel,
            batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
            max_new_tokens=args.max_new_tokens or FRAME_TOKENS,
            temperature=settings.temperature, top_p=settings.top_p,
            max_patches=FAST_MAX_PATCHES if args.fast else None,
        )  # fmt: skip
        # closing: a failed save (disk full) must still stop the frames' generation.
        with closing(answers):
            for result in answers:
                results.append(result)
                save_frame_answer(store, session_id, result)
                if not args.json:
                    answer = printable(" ".join(result.answer.split()))
                    print(f"{format_time(result.time_s)}  {answer}", flush=True)
        if len(results) >= 2 and not cancel.cancelled:
            summary = _summarise(args, settings, engine, store, session_id, results, info, cancel)
    except Cancelled:  # Ctrl+C while the model was loading
        return EXIT_INTERRUPTED
    except EngineError as error:
        return fail(error.message, error.exit_code)
    finally:
        engine.unload()
    if args.json:
        print(json_text(run_json(info, results, summary), indent=None))
    return EXIT_OK


def _summarise(
    args: argparse.Namespace,
    settings: Settings,
    engine: Engine,
    store: SessionStore,
    session_id: str,
    results: list[FrameResult],
    info: VideoInfo,
    cancel: CancelToken,
) -> str | None:
    """Stream the summary (unless --json), save it, and return it (None when stopped)."""
    from app.inference.frames import summarize_frames

    video_name = Path(args.file).name  # the name ingest gave the video attachment
    parts: list[str] = []

    def on_chunk(chunk: str) -> None:
        parts.append(chunk)
        if not args.json:
            sys.stdout.write(printable(chunk, keep_lines=True))
            sys.stdout.flush()

    if not args.json:
        print("Summary: ", end="", flush=True)
    stream = summarize_frames(
        engine, args.question, results, video_name, info.duration_s, cancel,
        max_new_tokens=args.max_new_tokens or SUMMARY_TOKENS,
        temperature=settings.temperature, top_p=settings.top_p,
    )  # fmt: skip
    with closing(stream):
        result = run_to_end(stream, on_chunk)
    text = "".join(parts)
    save_summary(store, session_id, text, result.stop_reason, result.timings)
    if not args.json:
        print(flush=True)
    return None if result.stop_reason is StopReason.CANCELLED else text
