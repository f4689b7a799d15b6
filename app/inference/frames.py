"""Asking Scout about a clip: several frames at once, every frame in batches, and a summary.

Runs on the thread that owns the loaded engine. The clip question and the summary are ordinary
requests through `engine.generate` (streamed, prefix cache and budget included); with the local
engine the frame-by-frame pass drives the loaded model directly, so that several frames share one
`generate` call: the Llama 4 processor pads the prompts on the left, so every row's answer
starts at the same column and row i's answer is what a lone prompt i would have produced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.core.grounding import parse_boxes_with_notes
from app.core.messages import ChatTurn, Role, StopReason
from app.core.video.data import FrameRef, FrameResult
from app.core.video.prompts import MAX_CLIP_FRAMES, clip_prompt, frame_prompt, summary_prompt
from app.inference.engine import (
    Cancelled,
    CancelToken,
    ConcurrentEngine,
    Engine,
    GenerationRequest,
    GenerationResult,
    ModelError,
    OutOfMemoryError,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

#: Frames per `generate` call by default: four one-image prompts fit beside Scout on an H100.
DEFAULT_BATCH_SIZE = 4
#: The speed option: at most this many tiles per frame (Scout's default is up to 16 plus one).
FAST_MAX_PATCHES = 4


def pick_clip_frames(frames: Sequence[FrameRef], limit: int = MAX_CLIP_FRAMES) -> list[FrameRef]:
    """At most `limit` frames spread evenly over `frames` (first and last kept), in order."""
    if len(frames) <= limit:
        return list(frames)
    if limit == 1:
        return [frames[len(frames) // 2]]
    step = (len(frames) - 1) / (limit - 1)
    return [frames[round(i * step)] for i in range(limit)]


def ask_about_clip(
    engine: Engine,
    question: str,
    frames: Sequence[FrameRef],
    video_name: str,
    duration_s: float,
    cancel: CancelToken,
    *,
    max_new_tokens: int = 1024,
    temperature: float | None = None,
    top_p: float | None = None,
) -> Generator[str, None, GenerationResult]:
    """One question about the clip: up to five frames in one prompt, their times in the text.

    Args:
        engine: a loaded engine.
        question: what the user asked.
        frames: sampled frames in time order (more than five: five spread over them are used).
        video_name: the clip's name.
        duration_s: the clip's length.
        cancel: the user's Stop.
        max_new_tokens: answer length limit.
        temperature: None for the model's default.
        top_p: None for the model's default.

    Returns:
        The engine's stream: text chunks, then how the answer ended. Boxes in the answer index
        the chosen frames in order (see `pick_clip_frames`).
    """
    chosen = pick_clip_frames(frames)
    text = clip_prompt(question, video_name, [f.time_s for f in chosen], duration_s)
    turn = ChatTurn(Role.USER, text, tuple(f.path for f in chosen))
    request = GenerationRequest((turn,), max_new_tokens, temperature, top_p)
    return engine.generate(request, cancel)


def summarize_frames(
    engine: Engine,
    question: str,
    results: Sequence[FrameResult],
    video_name: str,
    duration_s: float,
    cancel: CancelToken,
    *,
    max_new_tokens: int = 512,
    temperature: float | None = None,
    top_p: float | None = None,
) -> Generator[str, None, GenerationResult]:
    """A summary over the per-frame answers, from one text-only prompt (streamed)."""
    text = summary_prompt(question, video_name, results, duration_s)
    request = GenerationRequest((ChatTurn(Role.USER, text),), max_new_tokens, temperature, top_p)
    return engine.generate(request, cancel)


def answer_frames(
    engine: Engine,
    question: str,
    frames: Sequence[FrameRef],
    video_name: str,
    cancel: CancelToken,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int = 256,
    temperature: float | None = None,
    top_p: float | None = None,
    max_patches: int | None = None,
) -> Generator[FrameResult, None, None]:
    """Ask the same question about every frame, several frames per `generate` call.

    Cancelling stops the running batch within one decode step (its answers come back marked
    `cancelled`) and no further batch starts; a batch stopped while its prompts render yields
    nothing. Running out of memory halves the batch and
    tries again; with one frame a batch it raises `OutOfMemoryError`.

    Args:
        engine: a loaded engine.
        question: what to ask about each frame.
        frames: the frames, in time order.
        video_name: the clip's name (the prompt says which video and when).
        cancel: the user's Stop.
        batch_size: frames per `generate` call.
        max_new_tokens: answer length limit per frame.
        temperature: None for the model's default; 0 for greedy.
        top_p: None for the model's default.
        max_patches: at most this many image tiles per frame (None: the processor's own limit;
            `FAST_MAX_PATCHES` is the speed option).

    Yields:
        One result per frame as its batch finishes, in order; boxes are in that frame's pixels
        with `Box.image` = the frame's index.

    Raises:
        ModelError: the engine is not loaded, or its chat template fails (see
            `llama4_prompt.render`).
        OutOfMemoryError: even one frame does not fit.
        EngineError: a server's request failed.
    """
    if isinstance(engine, ConcurrentEngine):  # a server batches concurrent requests itself
        from app.inference.remote_frames import answer_frames_remotely

        yield from answer_frames_remotely(
            engine, question, frames, video_name, cancel,
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
        )  # fmt: skip
        return
    from app.inference.llama4_generate import sampling_config
    from app.inference.local_engine import LocalLlama4Engine

    loaded = engine.loaded if isinstance(engine, LocalLlama4Engine) else None
    if loaded is None:
        raise ModelError("The model is not loaded yet.")
    config = sampling_config(loaded.model.generation_config, max_new_tokens, temperature, top_p)
    size = max(1, batch_size)
    position = 0
    while position < len(frames) and not cancel.cancelled:
        batch = frames[position : position + size]
        try:
            results = _run_batch(loaded, question, batch, video_name, config, cancel, max_patches)
        except Cancelled:  # stopped while the chat template rendered: nothing was answered
            return
        except MemoryError:
            if size == 1:
                raise OutOfMemoryError(
                    "Out of memory while answering about one frame; use the speed option "
                    "(fewer tiles per frame) or a shorter answer length."
                ) from None
            size = max(1, size // 2)
            log.warning("out of memory with %d frames a batch; trying %d", len(batch), size)
            continue
        yield from results
        position += len(batch)


def _run_batch(
    loaded: Any,
    question: str,
    batch: Sequence[FrameRef],
    video_name: str,
    config: Any,
    cancel: CancelToken,
    max_patches: int | None,
) -> list[FrameResult]:
    """Generate the answers of one batch; an out-of-memory error comes out as `MemoryError`."""
    import torch

    from app.inference.llama4_generate import (
        Outcome,
        eos_ids,
        is_out_of_memory,
        make_stop_criteria,
    )
    from app.inference.llama4_loading import release_memory

    inputs = _batch_inputs(loaded, question, batch, video_name, max_patches, cancel)
    groups = _unpadded_groups(loaded, inputs, config.max_new_tokens)
    if groups is not None:
        results = [
            result
            for group in groups
            for result in _run_batch(
                loaded, question, [batch[i] for i in group], video_name, config, cancel,
                max_patches,
            )
        ]  # fmt: skip
        return sorted(results, key=lambda r: [f.index for f in batch].index(r.index))
    criteria = make_stop_criteria(cancel, threading.Event(), None, Outcome())
    try:
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs, generation_config=config, stopping_criteria=[criteria]
            )
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        del error  # its traceback holds the activations; let them go before freeing
        inputs.clear()
        release_memory()
        raise MemoryError from None
    prompt_length = inputs["input_ids"].shape[1]
    new_tokens = out.sequences[:, prompt_length:].tolist()
    eos = eos_ids(config)
    tokenizer = loaded.processor.tokenizer
    results = []
    for frame, tokens in zip(batch, new_tokens, strict=True):
        end = next((i for i, t in enumerate(tokens) if t in eos), None)
        if end is not None:
            tokens, reason = tokens[:end], StopReason.EOS
        elif cancel.cancelled:
            reason = StopReason.CANCELLED
        else:
            reason = StopReason.LENGTH
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        found, _notes = parse_boxes_with_notes(text, [(frame.width, frame.height)])
        boxes = tuple(replace(b, image=frame.index) for b in found)
        results.append(FrameResult(frame.index, frame.time_s, text, boxes, reason))
    return results


def _unpadded_groups(
    loaded: Any, inputs: dict[str, Any], max_new_tokens: int
) -> list[list[int]] | None:
    """Rows grouped by prompt length when left padding would change the answers, else None.

    Padding shifts every row's tokens to the right. Positions follow the attention mask, but
    Llama 4's chunked attention cuts the sequence at fixed columns (every 8,192 tokens in
    Scout), so a padded row whose prompt and answer reach past the first cut would see
    different neighbours than it would alone. Then rows of equal length run together instead.
    """
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    chunk = getattr(loaded.model.config.get_text_config(), "attention_chunk_size", None)
    width = inputs["input_ids"].shape[1]
    if len(set(lengths)) <= 1 or not chunk or width + max_new_tokens <= chunk:
        return None
    groups: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        groups.setdefault(length, []).append(row)
    return list(groups.values())


def _batch_inputs(
    loaded: Any,
    question: str,
    batch: Sequence[FrameRef],
    video_name: str,
    max_patches: int | None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Tokenized, left-padded prompts and every frame's tiles, on the model's device.

    Raises:
        Cancelled: `cancel` was set while the chat template rendered.
    """
    from app.inference.llama4_prompt import open_images, render

    processor = loaded.processor
    turns = [
        ChatTurn(Role.USER, frame_prompt(question, video_name, f.time_s), (f.path,)) for f in batch
    ]
    texts = [render(processor, [turn], cancel=cancel) for turn in turns]
    images = open_images(turns)
    extra = {"max_patches": max_patches} if max_patches else {}
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # answers must all start at the same column
    try:
        encoded = processor(
            text=texts,
            images=images,
            add_special_tokens=False,  # the template already starts with <|begin_of_text|>
            padding=True,
            return_tensors="pt",
            **extra,
        )
    finally:
        tokenizer.padding_side = side
    vision_dtype = loaded.model.vision_model.patch_embedding.linear.weight.dtype
    device = loaded.device
    return {
        "input_ids": encoded["input_ids"].to(device),
        "attention_mask": encoded["attention_mask"].to(device),
        "pixel_values": encoded["pixel_values"].to(device=device, dtype=vision_dtype),
    }
