"""The worker-thread half of the inference worker: runs engine calls and reports them as signals.

Only `app.ui.tasks.inference_worker.InferenceWorker` uses this; it moves an `EngineRunner` onto
its thread and relays the runner's signals to the GUI thread, so nothing here runs on the GUI
thread.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from app.core.messages import StopReason
from app.inference.engine import (
    Cancelled,
    CancelToken,
    Engine,
    EngineError,
    GenerationRequest,
    GenerationResult,
    JobFunction,
    run_to_end,
)

log = logging.getLogger(__name__)

EngineFactory = Callable[[], Engine]

STOPPED_MESSAGE = "The model worker has stopped."


class PendingTokens:
    """The cancel tokens of the running and queued requests, shared by both threads."""

    def __init__(self) -> None:
        self._tokens: set[CancelToken] = set()
        self._lock = threading.Lock()

    def new(self) -> CancelToken:
        """Make and remember a token for a request about to be queued."""
        token = CancelToken()
        with self._lock:
            self._tokens.add(token)
        return token

    def forget(self, token: CancelToken) -> None:
        """Drop the token of a request that is done."""
        with self._lock:
            self._tokens.discard(token)

    def cancel_all(self) -> None:
        """Cancel every running and queued request."""
        with self._lock:
            for token in self._tokens:
                token.cancel()


class EngineRunner(QObject):
    """Owns the engine on the worker thread and runs one request at a time, in arrival order.

    Args:
        tokens: the shared tokens; each request's token is forgotten once the request is done.
    """

    #: str: the new state ("not loaded", "loading", "ready", "generating", "unloading", "error").
    state_changed = Signal(str)
    #: LoadProgress: how far the current load has come.
    load_progressed = Signal(object)
    #: EngineStatus: the engine is loaded.
    load_finished = Signal(object)
    #: str: why the load failed.
    load_failed = Signal(str)
    #: (no payload): the load was cancelled.
    load_cancelled = Signal()
    #: (request_id, text): one chunk of an answer.
    chunk_received = Signal(str, str)
    #: (request_id, GenerationResult): the answer ended.
    generation_finished = Signal(str, object)
    #: (request_id, done, total): prompt tokens read so far by a segmented prefill.
    prefill_progressed = Signal(str, int, int)
    #: (request_id, message): the answer failed.
    generation_failed = Signal(str, str)
    #: (no payload): an unload request is done.
    unload_finished = Signal()
    #: (job_id, data): something a job emitted while it runs.
    job_progressed = Signal(str, object)
    #: (job_id, result): the job returned (None when cancelled before it ran).
    job_finished = Signal(str, object)
    #: (job_id, message): the job failed.
    job_failed = Signal(str, str)

    def __init__(self, tokens: PendingTokens) -> None:
        super().__init__()
        self._tokens = tokens
        self._engine: Engine | None = None
        self._setup_error = ""
        self._load_error = ""
        self._loaded = False
        self._state = "not loaded"
        # Set from the GUI thread by `InferenceWorker.shutdown`; requests still queued then fail.
        self.stopped = False

    @Slot(object)
    def run_start(self, engine_factory: EngineFactory) -> None:
        """Build the engine (on this thread, so its imports stay off the GUI thread)."""
        try:
            self._engine = engine_factory()
        except EngineError as exc:
            self._setup_error = exc.message
        except Exception as exc:
            log.exception("building the engine failed")
            report_bug()
            self._setup_error = internal_error(exc)
        if self._setup_error:
            self._set_state("error")

    @Slot(object)
    def run_load(self, token: CancelToken) -> None:
        """Load the engine; say so again if it is loaded already, so a waiting caller hears back."""
        try:
            if self.stopped:
                self.load_failed.emit(STOPPED_MESSAGE)
            elif self._loaded and self._engine is not None:
                self.load_finished.emit(self._engine.status())
            else:
                self._load(token)
        except Cancelled:
            pass  # load_cancelled has told the GUI
        finally:
            self._tokens.forget(token)

    @Slot(str, object, object)
    def run_generate(self, request_id: str, request: GenerationRequest, token: CancelToken) -> None:
        """Answer one request, loading the engine first if needed."""
        try:
            if self.stopped:
                self.generation_failed.emit(request_id, STOPPED_MESSAGE)
            else:
                self._generate(request_id, request, token)
        finally:
            self._tokens.forget(token)

    @Slot(str, object, object)
    def run_job(self, job_id: str, job: JobFunction, token: CancelToken) -> None:
        """Run one job with the engine, loading it first if needed."""
        try:
            if self.stopped:
                self.job_failed.emit(job_id, STOPPED_MESSAGE)
            else:
                self._job(job_id, job, token)
        finally:
            self._tokens.forget(token)

    @Slot()
    def run_unload(self) -> None:
        """Free the engine's model (a no-op when nothing is loaded)."""
        if not self.stopped:
            self._unload()
            self.unload_finished.emit()

    @Slot()
    def run_stop(self) -> None:
        """Unload, drop the engine and end this thread's event loop."""
        self._unload()
        self._engine = None
        # Back to the GUI thread, where Python will delete this object once the worker lets go.
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())
        QThread.currentThread().quit()

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def _load(self, token: CancelToken) -> bool:
        """Load the engine unless loaded; report a failure; raise `Cancelled` when cancelled.

        Returns:
            True when the engine is ready.
        """
        if self._loaded:
            return True
        if token.cancelled:
            raise Cancelled
        if self._engine is None:
            self._load_error = self._setup_error or "No engine is configured."
            self.load_failed.emit(self._load_error)
            return False
        self._set_state("loading")
        try:
            self._engine.load(self.load_progressed.emit, token)
            status = self._engine.status()
        except Cancelled:
            self._set_state("not loaded")
            self.load_cancelled.emit()
            raise
        except EngineError as exc:
            message = exc.message
        except Exception as exc:
            log.exception("loading the engine failed")
            report_bug()
            message = internal_error(exc)
        else:
            self._loaded = True
            self._set_state("ready")
            self.load_finished.emit(status)
            return True
        self._load_error = message
        self._set_state("error")
        self.load_failed.emit(message)
        return False

    def _generate(self, request_id: str, request: GenerationRequest, token: CancelToken) -> None:
        load_started = time.perf_counter()
        was_loaded = self._loaded
        try:
            ready = self._load(token)
        except Cancelled:
            self.generation_finished.emit(request_id, GenerationResult(StopReason.CANCELLED))
            return
        if not ready or self._engine is None:
            self.generation_failed.emit(request_id, self._load_error)
            return
        load_s = 0.0 if was_loaded else time.perf_counter() - load_started
        self._set_state("generating")
        engine = self._engine
        reports = hasattr(engine, "prefill_progress")  # the local engine reads long prompts
        if reports:  # called on this thread between prompt segments
            engine.prefill_progress = (  # type: ignore[attr-defined]
                lambda done, total: self.prefill_progressed.emit(request_id, done, total)
            )
        try:
            result = run_to_end(
                engine.generate(request, token),
                lambda chunk: self.chunk_received.emit(request_id, chunk),
            )
        except Cancelled:
            result = GenerationResult(StopReason.CANCELLED)
        except EngineError as exc:
            self._set_state("ready")
            self.generation_failed.emit(request_id, exc.message)
            return
        except Exception as exc:
            log.exception("generation %s failed", request_id)
            report_bug()
            self._set_state("ready")
            self.generation_failed.emit(request_id, internal_error(exc))
            return
        finally:
            if reports:
                engine.prefill_progress = None  # type: ignore[attr-defined]
        if load_s:
            timings = dataclasses.replace(result.timings, load_s=load_s)
            result = dataclasses.replace(result, timings=timings)
        self._set_state("ready")
        self.generation_finished.emit(request_id, result)

    def _job(self, job_id: str, job: JobFunction, token: CancelToken) -> None:
        try:
            ready = self._load(token)
        except Cancelled:
            self.job_finished.emit(job_id, None)
            return
        if not ready or self._engine is None:
            self.job_failed.emit(job_id, self._load_error)
            return
        self._set_state("generating")
        try:
            result = job(self._engine, token, lambda data: self.job_progressed.emit(job_id, data))
        except Cancelled:
            result = None
        except EngineError as exc:
            self._set_state("ready")
            self.job_failed.emit(job_id, exc.message)
            return
        except Exception as exc:
            log.exception("job %s failed", job_id)
            report_bug()
            self._set_state("ready")
            self.job_failed.emit(job_id, internal_error(exc))
            return
        self._set_state("ready")
        self.job_finished.emit(job_id, result)

    def _unload(self) -> None:
        if self._engine is None or not self._loaded:
            return
        self._set_state("unloading")
        try:
            self._engine.unload()
        except Exception:
            # Unloading is best effort: the engine counts as unloaded either way.
            log.exception("unloading the engine failed")
        self._loaded = False
        self._set_state("not loaded")


def report_bug() -> None:
    """Send the exception being handled to the crash dialog (`sys.excepthook`, thread-safe).

    The request that hit it still fails with `internal_error`'s sentence, so the window does
    not wait forever; the traceback is what the crash dialog and its log file show.
    """
    sys.excepthook(*sys.exc_info())


def internal_error(exc: BaseException) -> str:
    """The sentence the user sees for a bug (the traceback goes to the log).

    Args:
        exc: the unexpected exception.

    Returns:
        "Internal error: <type>: <message>".
    """
    return f"Internal error: {type(exc).__name__}: {exc}"
