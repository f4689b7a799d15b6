"""The inference worker: one engine on one long-lived QThread, talking to the GUI in signals."""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.inference.engine import (
    EngineStatus,
    GenerationRequest,
    GenerationResult,
    JobFunction,
    LoadProgress,
)
from app.ui.tasks.engine_runner import STOPPED_MESSAGE, EngineFactory, EngineRunner, PendingTokens

__all__ = ["EngineFactory", "InferenceWorker", "running_worker_threads"]

log = logging.getLogger(__name__)

# Every worker thread that was started and not yet joined, so a test harness can catch a leak.
# Holding the QThread here also keeps Python from destroying one that is still running (a crash).
_live_threads: set[QThread] = set()
_live_lock = threading.Lock()


def running_worker_threads() -> int:
    """Count the inference worker threads that are running now.

    Returns:
        How many workers were started and have not been shut down (joined) yet.
    """
    with _live_lock:
        return sum(1 for thread in _live_threads if thread.isRunning())


class InferenceWorker(QObject):
    """The GUI's handle on the engine thread: requests go in as calls, results come out as signals.

    The engine itself lives on a private `QThread` (inside an `EngineRunner`) and runs one request
    at a time, in arrival order; a `generate` sent while another runs waits behind it. This object
    stays on the GUI thread and re-emits the runner's signals there, so any slot or lambda
    connected to them runs on the GUI thread. Call `shutdown` before the app exits.

    Args:
        parent: the usual QObject parent.
    """

    #: str: one of "not loaded", "loading", "ready", "generating", "unloading", "error".
    state_changed = Signal(str)
    #: LoadProgress: how far the current load has come.
    load_progressed = Signal(object)
    #: EngineStatus: the engine is loaded and ready (also the answer to `load` when it was).
    load_finished = Signal(object)
    #: str: a plain sentence saying why the load failed (the engine is not loaded).
    load_failed = Signal(str)
    #: (no payload): the user cancelled the load; the engine is not loaded.
    load_cancelled = Signal()
    #: (request_id, text): one chunk of an answer, in order.
    chunk_received = Signal(str, str)
    #: (request_id, GenerationResult): the answer ended (done, cut short, or cancelled).
    generation_finished = Signal(str, object)
    #: (request_id, done, total): prompt tokens a long prompt's prefill has read so far.
    prefill_progressed = Signal(str, int, int)
    #: (request_id, message): the answer failed; the message is a plain sentence.
    generation_failed = Signal(str, str)
    #: (no payload): an unload request is done; the engine is not loaded now.
    unload_finished = Signal()
    #: (job_id, data): plain data a running job emitted (a chunk, a per-frame result, ...).
    job_progressed = Signal(str, object)
    #: (job_id, result): the job returned; None when it was cancelled before it started.
    job_finished = Signal(str, object)
    #: (job_id, message): the job failed; the message is a plain sentence.
    job_failed = Signal(str, str)

    # Requests, delivered to the runner on the worker thread through queued connections.
    _start_requested = Signal(object)
    _load_requested = Signal(object)
    _generate_requested = Signal(str, object, object)
    _job_requested = Signal(str, object, object)
    _unload_requested = Signal()
    _stop_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tokens = PendingTokens()
        self._thread: QThread | None = None
        self._runner: EngineRunner | None = None
        self._stopped = False
        self._state = "not loaded"

    @property
    def state(self) -> str:
        """The last state reported on the GUI thread (see `state_changed`)."""
        return self._state

    def start(self, engine_factory: EngineFactory) -> None:
        """Start the worker thread and build the engine on it.

        Args:
            engine_factory: builds the engine; it is called on the worker thread, so the real
                engine's imports (torch) stay off the GUI thread.
        """
        if self._thread is not None:
            raise RuntimeError("InferenceWorker.start was called twice")
        thread = QThread()
        thread.setObjectName("inference-worker")
        runner = EngineRunner(self._tokens)
        runner.moveToThread(thread)
        queued = Qt.ConnectionType.QueuedConnection
        for request, run in (
            (self._start_requested, runner.run_start),
            (self._load_requested, runner.run_load),
            (self._generate_requested, runner.run_generate),
            (self._job_requested, runner.run_job),
            (self._unload_requested, runner.run_unload),
            (self._stop_requested, runner.run_stop),
        ):
            request.connect(run, queued)
        runner.state_changed.connect(self._on_runner_state_changed, queued)
        runner.load_progressed.connect(self._on_runner_load_progressed, queued)
        runner.load_finished.connect(self._on_runner_load_finished, queued)
        runner.load_failed.connect(self._on_runner_load_failed, queued)
        runner.load_cancelled.connect(self._on_runner_load_cancelled, queued)
        runner.chunk_received.connect(self._on_runner_chunk_received, queued)
        runner.prefill_progressed.connect(self.prefill_progressed, queued)
        runner.generation_finished.connect(self._on_runner_generation_finished, queued)
        runner.generation_failed.connect(self._on_runner_generation_failed, queued)
        runner.unload_finished.connect(self._on_runner_unload_finished, queued)
        runner.job_progressed.connect(self._on_runner_job_progressed, queued)
        runner.job_finished.connect(self._on_runner_job_finished, queued)
        runner.job_failed.connect(self._on_runner_job_failed, queued)
        self._thread, self._runner = thread, runner
        with _live_lock:
            _live_threads.add(thread)
        thread.start()
        self._start_requested.emit(engine_factory)

    def load(self) -> None:
        """Ask for the engine to be loaded; answered by `load_finished` or `load_failed`."""
        if self._refuse_after_shutdown():
            self.load_failed.emit(STOPPED_MESSAGE)
            return
        self._load_requested.emit(self._tokens.new())

    def generate(self, request_id: str, request: GenerationRequest) -> None:
        """Ask for an answer: it streams as `chunk_received` and ends in one finished/failed signal.

        Args:
            request_id: echoed in every signal about this request (the assistant message id, say).
            request: what to answer. The engine is loaded first if it is not.
        """
        if self._refuse_after_shutdown():
            self.generation_failed.emit(request_id, STOPPED_MESSAGE)
            return
        self._generate_requested.emit(request_id, request, self._tokens.new())

    def run_job(self, job_id: str, job: JobFunction) -> None:
        """Run `job(engine, cancel, emit)` on the worker thread, in turn with the other requests.

        The engine is loaded first if it is not. What the job emits arrives as `job_progressed`;
        it ends in one `job_finished` (its return value) or `job_failed` (a sentence). `cancel`
        sets the job's token; the job decides what to return when it sees it.

        Args:
            job_id: echoed in every signal about this job.
            job: touches no widget; emits and returns plain data only.
        """
        if self._refuse_after_shutdown():
            self.job_failed.emit(job_id, STOPPED_MESSAGE)
            return
        self._job_requested.emit(job_id, job, self._tokens.new())

    def unload(self) -> None:
        """Ask for the model to be freed once the requests before this one are done."""
        if not self._refuse_after_shutdown():
            self._unload_requested.emit()

    def cancel(self) -> None:
        """Cancel the running request and any queued behind it (safe from any thread).

        The engine sees it within one step; a cancelled answer ends in `generation_finished`
        with `StopReason.CANCELLED`, a cancelled load in `load_cancelled`.
        """
        self._tokens.cancel_all()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything, unload the engine, stop the thread and join it.

        Args:
            timeout_ms: how long to wait for the thread to end.

        Returns:
            True when the thread has ended (or never started); False if it is still running.
        """
        thread, runner = self._thread, self._runner
        if thread is None or runner is None:
            return True
        if not self._stopped:
            self._stopped = True
            runner.stopped = True
            self.cancel()
            self._stop_requested.emit()
        if not thread.wait(timeout_ms):
            log.error("the inference worker did not stop within %d ms", timeout_ms)
            return False
        with _live_lock:
            _live_threads.discard(thread)
        return True

    def _refuse_after_shutdown(self) -> bool:
        if self._thread is None:
            raise RuntimeError("InferenceWorker.start must be called before sending requests")
        return self._stopped

    @Slot(str)
    def _on_runner_state_changed(self, state: str) -> None:
        self._state = state
        self.state_changed.emit(state)

    @Slot(object)
    def _on_runner_load_progressed(self, progress: LoadProgress) -> None:
        self.load_progressed.emit(progress)

    @Slot(object)
    def _on_runner_load_finished(self, status: EngineStatus) -> None:
        self.load_finished.emit(status)

    @Slot(str)
    def _on_runner_load_failed(self, message: str) -> None:
        self.load_failed.emit(message)

    @Slot()
    def _on_runner_load_cancelled(self) -> None:
        self.load_cancelled.emit()

    @Slot(str, str)
    def _on_runner_chunk_received(self, request_id: str, text: str) -> None:
        self.chunk_received.emit(request_id, text)

    @Slot(str, object)
    def _on_runner_generation_finished(self, request_id: str, result: GenerationResult) -> None:
        self.generation_finished.emit(request_id, result)

    @Slot(str, str)
    def _on_runner_generation_failed(self, request_id: str, message: str) -> None:
        self.generation_failed.emit(request_id, message)

    @Slot()
    def _on_runner_unload_finished(self) -> None:
        self.unload_finished.emit()

    @Slot(str, object)
    def _on_runner_job_progressed(self, job_id: str, data: object) -> None:
        self.job_progressed.emit(job_id, data)

    @Slot(str, object)
    def _on_runner_job_finished(self, job_id: str, result: object) -> None:
        self.job_finished.emit(job_id, result)

    @Slot(str, str)
    def _on_runner_job_failed(self, job_id: str, message: str) -> None:
        self.job_failed.emit(job_id, message)
