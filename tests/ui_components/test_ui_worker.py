"""The inference worker: one engine on its own thread, results and errors as signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator

from PySide6.QtCore import QCoreApplication, QThread

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import (
    BadInputError,
    CancelToken,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
    ModelError,
    ProgressCallback,
)
from app.inference.scripted import ScriptedEngine
from app.ui.tasks.inference_worker import InferenceWorker, running_worker_threads

REQUEST = GenerationRequest(turns=(ChatTurn(Role.USER, "What is in the picture?"),))
LONG_REPLY = " ".join(f"word{i}" for i in range(200))


class RaisingEngine(ScriptedEngine):
    """An engine with a bug: generating raises a plain RuntimeError (once)."""

    def __init__(self) -> None:
        super().__init__(["fine now"])
        self.raise_next = True

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        if self.raise_next:
            self.raise_next = False
            raise RuntimeError("index out of range in the sampler")
        return (yield from super().generate(request, cancel))


class HookedEngine(ScriptedEngine):
    """A scripted engine that calls hooks on its own thread: after load step 2, after chunk 3."""

    def __init__(self, replies=(LONG_REPLY,), **kwargs) -> None:
        super().__init__(replies, **kwargs)
        self.load_hook: Callable[[], None] = lambda: None
        self.chunk_hook: Callable[[], None] = lambda: None

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        def report(step: LoadProgress) -> None:
            progress(step)
            if step.done == 2:
                self.load_hook()

        super().load(report, cancel)

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        stream = super().generate(request, cancel)
        sent = 0
        while True:
            try:
                chunk = next(stream)
            except StopIteration as stop:
                return stop.value
            yield chunk
            sent += 1
            if sent == 3:
                self.chunk_hook()


class BrokenModelEngine(ScriptedEngine):
    """An engine whose model folder is unusable."""

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        raise ModelError("/models/scout has no config.json.")


def finished_result(qtbot, worker: InferenceWorker, request_id: str) -> GenerationResult:
    """Send a generate and wait for its `generation_finished`; return the result."""
    with qtbot.waitSignal(
        worker.generation_finished, timeout=5000, check_params_cb=lambda rid, _r: rid == request_id
    ) as blocker:
        worker.generate(request_id, REQUEST)
    return blocker.args[1]


def test_load_reports_progress_then_status(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine(load_steps=3))
    progress, states = [], []
    worker.load_progressed.connect(progress.append)
    worker.state_changed.connect(states.append)

    with qtbot.waitSignal(worker.load_finished, timeout=5000) as blocker:
        worker.load()

    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert blocker.args[0].name == "scripted"
    assert states == ["loading", "ready"]


def test_signals_arrive_on_the_gui_thread(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine(["one two"]))
    threads: set[int] = set()
    worker.chunk_received.connect(lambda _rid, _text: threads.add(threading.get_ident()))
    finished_result(qtbot, worker, "r1")
    assert threads == {threading.get_ident()}


def test_generate_loads_first_then_streams_chunks_in_order(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine(["A red bicycle\nleans on a wall."]))
    chunks, states = [], []
    worker.chunk_received.connect(lambda rid, text: chunks.append((rid, text)))
    worker.state_changed.connect(states.append)

    result = finished_result(qtbot, worker, "answer-1")

    assert chunks == [
        ("answer-1", "A "),
        ("answer-1", "red "),
        ("answer-1", "bicycle\n"),
        ("answer-1", "leans "),
        ("answer-1", "on "),
        ("answer-1", "a "),
        ("answer-1", "wall."),
    ]
    assert result.stop_reason is StopReason.EOS
    assert result.timings.load_s > 0  # this request paid for the load
    assert states == ["loading", "ready", "generating", "ready"]


def test_cancel_stops_within_one_chunk(qtbot, start_worker):
    engine = HookedEngine()
    worker = start_worker(lambda: engine)
    # Cancel from the worker thread right after the 3rd chunk: the very next step must see it.
    engine.chunk_hook = worker.cancel
    chunks: list[str] = []
    worker.chunk_received.connect(lambda _rid, text: chunks.append(text))

    result = finished_result(qtbot, worker, "r1")

    assert result.stop_reason is StopReason.CANCELLED
    assert len(chunks) == 3


def test_cancel_from_the_gui_thread_ends_a_slow_answer(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine([LONG_REPLY], chunk_delay_s=0.005))
    with qtbot.waitSignal(worker.chunk_received, timeout=5000):
        worker.generate("r1", REQUEST)
    with qtbot.waitSignal(worker.generation_finished, timeout=5000) as blocker:
        worker.cancel()
    assert blocker.args[1].stop_reason is StopReason.CANCELLED


def test_engine_error_fails_the_request_and_the_worker_serves_the_next(qtbot, start_worker):
    engine = ScriptedEngine(["second answer"], fail_with=BadInputError("cat.png is not an image."))
    worker = start_worker(lambda: engine)

    with qtbot.waitSignal(worker.generation_failed, timeout=5000) as blocker:
        worker.generate("r1", REQUEST)
    assert blocker.args == ["r1", "cat.png is not an image."]

    engine.fail_with = None
    assert finished_result(qtbot, worker, "r2").stop_reason is StopReason.EOS


def test_a_bug_fails_the_request_and_reaches_the_crash_hook(qtbot, start_worker, caplog):
    worker = start_worker(RaisingEngine)
    caplog.set_level(logging.ERROR, logger="app.ui.tasks.inference_worker")

    # The crash dialog is `sys.excepthook`; pytest-qt's capture stands in for it here.
    with (
        qtbot.capture_exceptions() as crashes,
        qtbot.waitSignal(worker.generation_failed, timeout=5000) as blocker,
    ):
        worker.generate("r1", REQUEST)
    assert [type(exc) for _type, exc, _tb in crashes] == [RuntimeError]
    assert blocker.args[0] == "r1"
    assert blocker.args[1] == "Internal error: RuntimeError: index out of range in the sampler"
    assert any(record.exc_info for record in caplog.records), "traceback was not logged"
    assert worker.state == "ready"
    assert finished_result(qtbot, worker, "r2").stop_reason is StopReason.EOS


def test_load_failure_is_a_sentence_and_generate_fails_with_it(qtbot, start_worker):
    worker = start_worker(lambda: BrokenModelEngine())
    with qtbot.waitSignal(worker.load_failed, timeout=5000) as blocker:
        worker.load()
    assert blocker.args == ["/models/scout has no config.json."]
    assert worker.state == "error"

    with qtbot.waitSignal(worker.generation_failed, timeout=5000) as blocker:
        worker.generate("r1", REQUEST)
    assert blocker.args == ["r1", "/models/scout has no config.json."]


def test_a_failing_factory_is_reported_not_raised(qtbot, start_worker):
    def factory() -> ScriptedEngine:
        raise ModelError("SCOUT_DESK_MODEL names /nowhere, which does not exist.")

    worker = start_worker(factory)
    with qtbot.waitSignal(worker.load_failed, timeout=5000) as blocker:
        worker.load()
    assert blocker.args == ["SCOUT_DESK_MODEL names /nowhere, which does not exist."]


def test_cancelling_a_load_leaves_the_engine_unloaded(qtbot, start_worker):
    engine = HookedEngine(load_steps=5)
    worker = start_worker(lambda: engine)
    engine.load_hook = worker.cancel  # after step 2 of 5
    progress: list[int] = []
    worker.load_progressed.connect(lambda step: progress.append(step.done))

    with qtbot.waitSignal(worker.load_cancelled, timeout=5000):
        worker.load()

    assert progress == [1, 2]
    assert worker.state == "not loaded"
    assert not engine.loaded


def test_a_generate_sent_while_busy_runs_after_the_first(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine(["first answer here", "second one"]))
    events: list[tuple[str, str]] = []
    worker.chunk_received.connect(lambda rid, _text: events.append(("chunk", rid)))
    worker.generation_finished.connect(lambda rid, _r: events.append(("done", rid)))

    with qtbot.waitSignal(
        worker.generation_finished, timeout=5000, check_params_cb=lambda rid, _r: rid == "r2"
    ):
        worker.generate("r1", REQUEST)
        worker.generate("r2", REQUEST)

    first_done = events.index(("done", "r1"))
    assert all(rid == "r1" for _kind, rid in events[:first_done])
    assert events[first_done + 1 :] == [("chunk", "r2"), ("chunk", "r2"), ("done", "r2")]


def test_engine_factory_and_engine_run_on_the_worker_thread(qtbot, start_worker):
    seen: dict[str, object] = {}

    def factory() -> ScriptedEngine:
        seen["ident"] = threading.get_ident()
        seen["qthread"] = QThread.currentThread()
        return ScriptedEngine()

    worker = start_worker(factory)
    with qtbot.waitSignal(worker.load_finished, timeout=5000):
        worker.load()

    assert seen["ident"] != threading.get_ident()
    assert seen["qthread"] is not QCoreApplication.instance().thread()


def test_shutdown_cancels_a_running_answer_and_joins_the_thread(qtbot):
    worker = InferenceWorker()
    worker.start(lambda: ScriptedEngine([LONG_REPLY], chunk_delay_s=0.005))
    with qtbot.waitSignal(worker.chunk_received, timeout=5000):
        worker.generate("r1", REQUEST)
    assert running_worker_threads() == 1

    assert worker.shutdown(5000)

    assert running_worker_threads() == 0
    # A request after shutdown is answered at once instead of vanishing.
    with qtbot.waitSignal(worker.generation_failed, timeout=1000) as blocker:
        worker.generate("late", REQUEST)
    assert blocker.args == ["late", "The model worker has stopped."]


def test_unload_frees_the_engine(qtbot, start_worker):
    engine = ScriptedEngine()
    worker = start_worker(lambda: engine)
    with qtbot.waitSignal(worker.load_finished, timeout=5000):
        worker.load()
    assert engine.loaded

    with qtbot.waitSignal(worker.unload_finished, timeout=5000):
        worker.unload()
    assert not engine.loaded
    assert worker.state == "not loaded"
