"""The engine interface: what the inference worker needs from any model backend (no Qt, no torch).

An engine is owned by exactly one thread. `load` and `generate` are blocking and cooperative: they
check a `CancelToken` between steps and return (or raise `Cancelled`) soon after it is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.core.errors import Cancellation, ExpectedError
from app.core.messages import ChatTurn, StopReason, Timings


class EngineError(ExpectedError):
    """An expected failure with a plain sentence for the user (never a traceback).

    Attributes:
        exit_code: the CLI exit code it maps to (3 bad input, 4 model problem, 5 out of memory).
    """

    exit_code = 4

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInputError(EngineError):
    """A file the user gave cannot be used (the message names it)."""

    exit_code = 3


class ModelError(EngineError):
    """The model folder is missing, invalid, or does not fit."""

    exit_code = 4


class OutOfMemoryError(EngineError):
    """The accelerator ran out of memory; the engine has freed what it could and stays usable."""

    exit_code = 5


class Cancelled(Cancellation):
    """Raised by `load` when the user cancelled it."""


class CancelToken:
    """A thread-safe flag the GUI sets and the engine polls between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class LoadProgress:
    """How far a model load has come (shards, bytes or steps; `total` 0 when unknown)."""

    done: int
    total: int
    message: str


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one answer needs. Sampling values of None mean "the model's own defaults"."""

    turns: tuple[ChatTurn, ...]
    max_new_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    max_time_s: float | None = None


@dataclass(frozen=True)
class GenerationResult:
    """How an answer ended, returned by the `generate` generator when it finishes."""

    stop_reason: StopReason
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True)
class EngineStatus:
    """What the status bar shows about a loaded engine."""

    name: str
    device: str = "cpu"
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    #: The context the engine serves, in tokens, when it says (a server's `max_model_len`).
    context_tokens: int | None = None
    #: False for a model that reads text only (images are then left out and marked skipped).
    reads_images: bool = True


ProgressCallback = Callable[[LoadProgress], None]


@runtime_checkable
class Engine(Protocol):
    """A model backend: load once, answer many requests one at a time, unload."""

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        """Load the model, reporting progress; raise `Cancelled` or `EngineError`."""

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        """Yield text chunks as they are decoded; return how the answer ended.

        Cancelling stops within one decode step and returns `StopReason.CANCELLED`.
        Raises `EngineError` (and its subclasses) for expected failures.
        """

    def status(self) -> EngineStatus:
        """Describe the loaded model for the status bar."""

    def unload(self) -> None:
        """Free the model; safe to call when nothing is loaded."""


@runtime_checkable
class ConcurrentEngine(Engine, Protocol):
    """An engine that answers several requests at once (a server batches them itself)."""

    def generate_concurrent(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken
    ) -> Iterator[tuple[int, str, GenerationResult]]:
        """Yield (index into `requests`, the whole answer, how it ended) in completion order.

        After a cancel the stopped ones come back CANCELLED with their partial text; an
        `EngineError` ends it once every other request was stopped.
        """


def run_to_end(
    stream: Generator[str, None, GenerationResult], on_chunk: Callable[[str], None]
) -> GenerationResult:
    """Drive a `generate` stream, handing each chunk to `on_chunk`, and return its result."""
    while True:
        try:
            on_chunk(next(stream))
        except StopIteration as stop:
            return stop.value


#: Reports a job's progress or partial results as plain data (a chunk, a `FrameResult`, ...).
JobEmit = Callable[[object], None]
#: A job: runs on the worker thread with the loaded engine, the request's cancel token and an
#: `emit` for progress; what it returns is the job's result (plain data, never Qt objects).
JobFunction = Callable[[Engine, CancelToken, JobEmit], object]
