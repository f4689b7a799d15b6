"""Streaming one answer: prefill and `model.generate` on a helper thread, text and progress out."""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from app.core.messages import StopReason
from app.inference.engine import CancelToken

# How long the caller waits for a chunk before checking that the generate thread is still alive.
POLL_S = 0.1

#: `report(done, total)`: how far the prefill has read the prompt (see `stream`).
Report = Callable[[int, int], None]


@dataclass
class Outcome:
    """What the generate thread left behind.

    Attributes:
        new_tokens: ids generated after the prompt.
        stop_reason: why it stopped (set after the thread finished).
        first_token_at: `perf_counter()` when the first token was sampled (None: none was).
        finished_at: `perf_counter()` when generation ended.
        error: an exception raised on the thread, handed back to the caller.
    """

    new_tokens: list[int] = field(default_factory=list)
    stop_reason: StopReason = StopReason.EOS
    first_token_at: float | None = None
    finished_at: float = 0.0
    error: BaseException | None = None


def sampling_config(
    base: Any, max_new_tokens: int, temperature: float | None, top_p: float | None
) -> Any:
    """A copy of the model's generation config with this request's length and sampling.

    None keeps the model's own value (Scout: sampling at 0.6 / 0.9); temperature 0 means greedy.
    """
    config = copy.deepcopy(base)
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    config.return_dict_in_generate = True
    if temperature is not None:
        config.temperature = temperature
    if top_p is not None:
        config.top_p = top_p
    if temperature == 0:
        config.do_sample = False
    elif temperature is not None or top_p is not None:
        config.do_sample = True
    if not config.do_sample:
        # Greedy: neutral sampling knobs (None would mean "the model's default" to generate).
        config.temperature = 1.0
        config.top_p = 1.0
        config.top_k = 50
    return config


def make_stop_criteria(
    cancel: CancelToken, stop: threading.Event, deadline: float | None, outcome: Outcome
) -> Any:
    """A `StoppingCriteria` checked after every sampled token: Stop, closing, or `max_time`.

    It doubles as the prefill's cancel flag: its `cancelled` property asks the same three
    questions between prompt segments (setting `outcome.stop_reason` the same way), so a Stop, a
    closed stream or a passed deadline also ends a long prefill. `llama4_decode.decode` calls its
    `token_sampled(now)` after each token, as `generate` calls it.
    """
    import torch
    from transformers import StoppingCriteria

    class _Stop(StoppingCriteria):
        def halted(self, now: float) -> bool:
            """Whether to stop now; records why in the outcome."""
            if cancel.cancelled or stop.is_set():
                outcome.stop_reason = StopReason.CANCELLED
                return True
            if deadline is not None and now >= deadline:
                outcome.stop_reason = StopReason.TIME
                return True
            return False

        @property
        def cancelled(self) -> bool:
            return self.halted(time.perf_counter())

        def token_sampled(self, now: float) -> bool:
            """A token was sampled at `now`: note the first one; whether to stop here."""
            if outcome.first_token_at is None:
                outcome.first_token_at = now
            return self.halted(now)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            halt = self.token_sampled(time.perf_counter())
            return torch.full(
                (input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device
            )

    return _Stop()


def stream(
    work: Callable[[Any, Any, Report], list[int]],
    tokenizer: Any,
    cancel: CancelToken,
    deadline: float | None,
    progress: Report | None = None,
) -> Generator[str, None, Outcome]:
    """Run `work(streamer, stopping_criteria, report)` on a helper thread and yield its text.

    Args:
        work: prefills (calling `report(done, total)` as it goes, and polling the criteria's
            `cancelled` between segments) and calls `model.generate` with the streamer and
            criteria; returns the generated ids. Runs on the helper thread.
        tokenizer: decodes tokens for the streamer.
        cancel: the user's Stop.
        deadline: `perf_counter()` time after which generation stops (`max_time`), or None.
        progress: receives every `report(done, total)` of `work`, in order, on the thread that
            iterates this generator (within `POLL_S` of the report, and always before the text
            that follows it); None: reports are dropped.

    Returns:
        The outcome; `error` holds whatever the thread raised (the caller decides what to do).
    """
    from transformers import TextIteratorStreamer

    outcome = Outcome()
    stop = threading.Event()
    # skip_prompt: generate first "streams" the prompt ids; the timeout keeps us responsive.
    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=POLL_S
    )
    criteria = make_stop_criteria(cancel, stop, deadline, outcome)
    reports: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()

    def report(done: int, total: int) -> None:
        if progress is not None:
            reports.put((done, total))

    def deliver() -> None:
        while progress is not None:
            try:
                done, total = reports.get_nowait()
            except queue.Empty:
                return
            progress(done, total)

    def run() -> None:
        try:
            outcome.new_tokens = work(streamer, criteria, report)
        except BaseException as exc:  # handed to the caller, never lost on this thread
            outcome.error = exc
            streamer.end()
        finally:
            outcome.finished_at = time.perf_counter()

    thread = threading.Thread(target=run, name="llama4-generate", daemon=True)
    thread.start()
    try:
        while True:
            try:
                chunk = next(streamer)
            except StopIteration:
                break
            except queue.Empty:
                deliver()
                if not thread.is_alive() and streamer.text_queue.empty():
                    break  # died without a word: the error (if any) is in the outcome
                continue
            deliver()
            if chunk:
                yield chunk
    finally:
        # Also reached when the caller closes us mid-answer: stop the thread, never leave it.
        # The prefill checks between segments and generate after every token, so this join
        # waits one segment or one decode step at most.
        stop.set()
        thread.join()
    deliver()
    return outcome


def eos_ids(config: Any) -> set[int]:
    """The token ids that end an answer, from a generation config (one id, a list, or None).

    Args:
        config: the generation config.

    Returns:
        The ids (empty when the config names none).
    """
    value = config.eos_token_id
    if value is None:
        return set()
    return {int(v) for v in value} if isinstance(value, list | tuple) else {int(value)}


def is_out_of_memory(error: BaseException | None) -> bool:
    """Whether `error` means the device (or the host) ran out of memory.

    Args:
        error: what generation raised (None: nothing).

    Returns:
        True for `MemoryError`, torch's `OutOfMemoryError` (CUDA) and the CPU allocator's
        `RuntimeError`.
    """
    if isinstance(error, MemoryError):
        return True
    if type(error).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError / torch.cuda's alias
        return True
    # torch's CPU allocator raises a plain RuntimeError ("DefaultCPUAllocator: can't allocate").
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
