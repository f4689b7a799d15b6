"""`scout-desk ask`: one question about images and documents, answered by the local engine."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
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
    prefill_printer,
    progress_printer,
    rescue_answer,
)
from app.commands.terminal import json_text, printable
from app.conversation.pipeline import AnswerWriter, Conversation, request_for, stream_answer
from app.core.documents import (
    Document,
    DocumentSource,
    format_document,
    format_section,
    load_document,
)
from app.core.ingest import IngestLimits, ingest_path
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Box,
    StopReason,
    Timings,
)
from app.core.video.attachments import clip_frames
from app.inference.engine import (
    Cancelled,
    CancelToken,
    Engine,
    EngineError,
)
from app.inference.engine_facts import reads_images, token_counting
from app.store.db import StoreError
from app.store.rows import box_to_dict
from app.store.sessions import SessionStore

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `ask` options (see ARCHITECTURE.md, the CLI contract)."""
    add_server_arguments(parser)
    add_local_model_arguments(parser)
    parser.add_argument("--image", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("--video", type=Path, default=None, metavar="FILE")
    parser.add_argument("--doc", action="append", type=Path, default=[], metavar="PATH")
    parser.add_argument("--max-new-tokens", type=_positive_int, default=None, metavar="N")
    parser.add_argument("--moe", choices=("sparse", "stock"), default="sparse")
    parser.add_argument("--no-save", action="store_true", help="do not keep this exchange")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("question")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    """Ingest, save the question, load the model, stream the answer; return the exit code."""
    setup = model_run(args)
    if isinstance(setup, int):
        return setup
    cancel = CancelToken()
    with Interrupt(cancel) as interrupt, open_store(setup.data_dir, keep=not args.no_save) as store:
        attachments = _ingest(args, store, setup.settings.ingest_limits())
        if interrupt.interrupted:
            return EXIT_INTERRUPTED
        broken = [a for a in attachments if a.status is AttachmentStatus.ERROR]
        if broken:
            for attachment in broken:
                fail(attachment.detail, EXIT_BAD_INPUT)
            return EXIT_BAD_INPUT
        return _answer(args, setup, store, attachments, interrupt)


def _ingest(
    args: argparse.Namespace, store: SessionStore, limits: IngestLimits | None = None
) -> list[Attachment]:
    """Every file the user named, as attachments; a file of the wrong kind becomes an error.

    `limits` are the text file and folder limits from settings.json (None: the defaults).
    """
    wanted: list[tuple[str, AttachmentKind | None]]
    wanted = [(p, AttachmentKind.IMAGE) for p in args.image]
    wanted += [(args.video, AttachmentKind.VIDEO)] if args.video else []
    wanted += [(p, None) for p in args.doc]
    attachments: list[Attachment] = []
    for path, kind in wanted:
        for attachment in ingest_path(path, store.blobs, limits=limits):
            if kind and attachment.status is not AttachmentStatus.ERROR and attachment.kind != kind:
                attachment = replace(
                    attachment,
                    status=AttachmentStatus.ERROR,
                    detail=f"{path}: is not {'an image' if kind == 'image' else 'a video'} "
                    f"(it looks like {attachment.kind.value})",
                )
            attachments.append(attachment)
            if (
                attachment.kind is AttachmentKind.VIDEO
                and attachment.status is AttachmentStatus.READY
            ):
                attachments.extend(clip_frames(attachment, store.blobs.path, store.blobs))
    return attachments


def _answer(
    args: argparse.Namespace,
    setup: ModelRun,
    store: SessionStore,
    attachments: list[Attachment],
    interrupt: Interrupt,
) -> int:
    settings = setup.settings
    conversation = Conversation(store)
    question = conversation.save_question(None, args.question, attachments)
    opened = None
    cancel = interrupt.cancel
    engine = open_engine(
        setup, quantization=args.quantization, kv_cache=args.kv_cache,
        output_head=args.output_head, moe=args.moe,
        prefill_progress=prefill_printer(quiet=args.json),
    )  # fmt: skip
    try:
        load_start = time.perf_counter()
        engine.load(progress_printer(quiet=args.json), cancel)
        load_s = time.perf_counter() - load_start
        # The prompt is built once the engine says what it reads (a server may take no images).
        opened = conversation.open_answer(question.session_id, images=reads_images(engine))
        assert opened is not None  # the chat ends with the question just saved
        attachments = list(opened.history[-1].attachments)  # with used/skipped marked
        writer = opened.writer
        interrupt.set_rescue(
            rescue_answer(store, writer.message.id, lambda: writer.text, keep=not args.no_save)
        )
        request = request_for(opened.turns, settings, args.max_new_tokens)
        result = stream_answer(
            engine, request, writer, cancel,
            on_chunk=None if args.json else _print_chunk, on_deferred=_say_deferred(),
        )  # fmt: skip
        rows = _attachment_rows(attachments, engine, store)
    except Cancelled:  # Ctrl+C while the model was loading: the question stays, unanswered
        if opened is not None:
            opened.writer.finish(StopReason.CANCELLED)
        return EXIT_INTERRUPTED
    except EngineError as error:
        if opened is not None:  # what streamed before the failure is kept, with the reason
            opened.writer.finish(StopReason.ERROR, error=error.message)
        return fail(error.message, error.exit_code)
    except StoreError as error:
        if opened is None:
            raise  # nothing was streamed: open_store says why and exits 1
        return _saving_failed(opened.writer, error, args)
    finally:
        engine.unload()
    timings = replace(result.timings, load_s=load_s)
    try:
        final, notes = writer.finish(result.stop_reason, timings)
    except StoreError as error:  # the disk filled before the answer could be saved for good
        return _saving_failed(writer, error, args)
    for note in notes:
        fail(note, EXIT_OK)  # a remark on a dropped box, not a failure
    interrupt.set_rescue(None)  # saved for good: nothing left for a late Ctrl+C to rescue
    if args.json:
        session_id = None if args.no_save else question.session_id
        report = _contract_json(final.text, rows, timings, result.stop_reason, session_id,
                                list(final.boxes))  # fmt: skip
        print(json_text(report, indent=None))
    else:
        print(flush=True)
    return EXIT_INTERRUPTED if interrupt.interrupted else EXIT_OK


def _print_chunk(chunk: str) -> None:
    """Print a streamed chunk; model text may hold escapes a hostile document planted."""
    sys.stdout.write(printable(chunk, keep_lines=True))
    sys.stdout.flush()


def _say_deferred() -> Callable[[], None]:
    """Says once per answer that a checkpoint waits for another program's write."""
    told = False

    def say() -> None:
        nonlocal told
        if not told:
            told = True
            print(
                "\nscout-desk: the database is busy (another program is writing to it); the "
                "answer goes on and is saved once it is free.",
                file=sys.stderr,
            )

    return say


def _saving_failed(writer: AnswerWriter, error: StoreError, args: argparse.Namespace) -> int:
    """End an answer the store could not take (disk full, locked too long), keeping what it can."""
    if not args.json:
        print(flush=True)
    text = writer.text
    try:
        writer.finish(StopReason.ERROR, error=error.message)
        kept = "the text so far is saved"
    except StoreError:
        kept = "the last checkpoint is kept"
    sentence = f"the answer stopped after {len(text)} characters: {error.message} ({kept})"
    return fail(sentence, EXIT_FAILED)


def _attachment_rows(
    attachments: list[Attachment], engine: Engine, store: SessionStore
) -> list[dict]:
    """The `attachments` of `ask --json`: one row a file, with the prompt tokens each used.

    Images cost the processor's tile arithmetic; text and documents cost what the tokenizer makes
    of the block compose put in the prompt. A folder lists each of its files (used or skipped, and
    why), as the user would want to see what the model was given.
    """
    from app.core.compose import format_text_attachment
    from app.inference.budget import image_tokens

    count, tiling = token_counting(engine)

    rows: list[dict] = []
    for a in attachments:
        used = a.status is AttachmentStatus.USED
        document = load_document(a, store.blobs.path) if a.kind is AttachmentKind.DOCUMENT else None
        if document is not None and document.source is DocumentSource.FOLDER:
            rows.extend(_folder_rows(a, document, count if used else None))
            continue
        tokens = 0
        if used and a.kind is AttachmentKind.IMAGE and a.width:
            tokens = image_tokens(a.width, a.height or 0, tiling)
        elif used and a.kind is AttachmentKind.TEXT:
            content = store.blobs.read(a.sha256 or "").decode("utf-8", errors="replace")
            tokens = count(format_text_attachment(a.name, content))
        elif used and document is not None:
            tokens = count(format_document(document))
        rows.append(_row(a.source_path, a.kind.value, a.status.value, a.detail, tokens))
    return rows


def _folder_rows(
    folder: Attachment, document: Document, count: Callable[[str], int] | None
) -> list[dict]:
    """One row per file of a dropped folder; `count` is None when the folder was not used."""
    sections: dict[str, list] = {}
    for section in document.sections:
        sections.setdefault(section.file, []).append(section)
    rows = []
    for entry in document.entries:
        path = str(Path(folder.source_path) / entry.path)
        if count is None:
            rows.append(_row(path, "text", folder.status.value, folder.detail, 0))
            continue
        tokens = sum(count(format_section(s)) for s in sections.get(entry.path, ()))
        rows.append(_row(path, "text", entry.status.value, entry.reason, tokens))
    return rows


def _row(path: str, kind: str, status: str, detail: str, tokens: int) -> dict:
    return {"path": path, "kind": kind, "status": status, "detail": detail, "tokens": tokens}


def _contract_json(
    text: str,
    attachment_rows: list[dict],
    timings: Timings,
    stop_reason: StopReason,
    session_id: str | None,
    boxes: list[Box] | None = None,
) -> dict:
    """The `ask --json` object, exactly as ARCHITECTURE.md fixes it."""
    return {
        "answer": text,
        "boxes": [box_to_dict(b) for b in boxes or ()],
        "attachments": attachment_rows,
        "usage": {
            "prompt_tokens": timings.prompt_tokens,
            "completion_tokens": timings.completion_tokens,
        },
        "timings": {
            "load_s": round(timings.load_s, 4),
            "ttft_s": round(timings.ttft_s, 4),
            "decode_tokens_per_s": round(timings.decode_tokens_per_s, 3),
        },
        "stop_reason": stop_reason.value,
        "session_id": session_id,
    }
