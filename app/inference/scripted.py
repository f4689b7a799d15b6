"""A scripted engine: replays canned answers chunk by chunk, for UI tests and interface demos."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence

from app.core.messages import StopReason, Timings
from app.inference.engine import (
    Cancelled,
    CancelToken,
    EngineError,
    EngineStatus,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
    ProgressCallback,
)

Reply = str | Callable[[GenerationRequest], str]


class ScriptedEngine:
    """Answers each request with the next scripted reply, split into word-sized chunks.

    Args:
        replies: answers in order; a callable gets the request (to echo the prompt, say). The last
            reply repeats once the script runs out.
        chunk_delay_s: pause between chunks, so tests can press Stop mid-answer.
        load_steps: how many progress steps `load` reports.
        fail_with: raise this from `generate` instead of answering (to test error paths).
    """

    def __init__(
        self,
        replies: Sequence[Reply] = ("Hello from the scripted engine.",),
        *,
        chunk_delay_s: float = 0.0,
        load_steps: int = 3,
        fail_with: EngineError | None = None,
    ) -> None:
        self._replies = list(replies) or [""]
        self._chunk_delay_s = chunk_delay_s
        self._load_steps = load_steps
        self.fail_with = fail_with
        self.requests: list[GenerationRequest] = []
        self.loaded = False

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        for step in range(1, self._load_steps + 1):
            if cancel.cancelled:
                raise Cancelled
            progress(LoadProgress(step, self._load_steps, f"step {step} of {self._load_steps}"))
        self.loaded = True

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        reply = self._replies[min(len(self.requests) - 1, len(self._replies) - 1)]
        text = reply(request) if callable(reply) else reply
        chunks = _word_chunks(text)
        start = time.perf_counter()
        first_token_at: float | None = None
        sent = 0
        for chunk in chunks:
            if cancel.cancelled:
                return _result(StopReason.CANCELLED, start, first_token_at, sent)
            if self._chunk_delay_s:
                time.sleep(self._chunk_delay_s)
            if first_token_at is None:
                first_token_at = time.perf_counter()
            sent += 1
            yield chunk
            if sent >= request.max_new_tokens:
                return _result(StopReason.LENGTH, start, first_token_at, sent)
        return _result(StopReason.EOS, start, first_token_at, sent)

    def status(self) -> EngineStatus:
        return EngineStatus(name="scripted")

    def unload(self) -> None:
        self.loaded = False


def _word_chunks(text: str) -> list[str]:
    """Split text into chunks that each end after a space, as a tokenizer's output roughly does."""
    chunks: list[str] = []
    current = ""
    for char in text:
        current += char
        if char in " \n":
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return chunks


def _result(
    reason: StopReason, start: float, first_token_at: float | None, tokens: int
) -> GenerationResult:
    end = time.perf_counter()
    ttft = (first_token_at - start) if first_token_at else 0.0
    decode_s = end - (first_token_at or end)
    rate = (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else 0.0
    return GenerationResult(
        reason, Timings(ttft_s=ttft, decode_tokens_per_s=rate, completion_tokens=tokens)
    )
