"""Jobs on the inference worker: any function run with the loaded engine, one request at a time."""

from __future__ import annotations

import threading

from app.core.messages import ChatTurn, Role, StopReason
from app.inference.engine import (
    BadInputError,
    Cancelled,
    CancelToken,
    Engine,
    GenerationRequest,
    JobEmit,
    ModelError,
    ProgressCallback,
)
from app.inference.scripted import ScriptedEngine
from app.ui.tasks.engine_runner import STOPPED_MESSAGE
from app.ui.tasks.inference_worker import InferenceWorker

REQUEST = GenerationRequest(turns=(ChatTurn(Role.USER, "Describe it."),))
LONG_REPLY = " ".join(f"word{i}" for i in range(300))


class BrokenModelEngine(ScriptedEngine):
    """An engine whose model folder is unusable."""

    def load(self, progress: ProgressCallback, cancel: CancelToken) -> None:
        raise ModelError("/models/scout has no config.json.")


def run_job(qtbot, worker: InferenceWorker, job_id: str, job) -> list:
    """Start a job and wait for its end; returns [signal name, *arguments]."""
    ended: list = []
    worker.job_finished.connect(lambda jid, result: ended.append(["finished", jid, result]))
    worker.job_failed.connect(lambda jid, message: ended.append(["failed", jid, message]))
    worker.run_job(job_id, job)
    qtbot.waitUntil(lambda: any(e[1] == job_id for e in ended), timeout=5000)
    return next(e for e in ended if e[1] == job_id)


def test_a_job_runs_on_the_worker_thread_with_the_loaded_engine_and_emits_in_order(
    qtbot, start_worker
):
    engine = ScriptedEngine()
    worker = start_worker(lambda: engine)
    progress: list[tuple[str, object]] = []
    worker.job_progressed.connect(lambda jid, data: progress.append((jid, data)))
    seen: dict[str, object] = {}

    def job(running: Engine, cancel: CancelToken, emit: JobEmit) -> object:
        seen.update(engine=running, loaded=engine.loaded, thread=threading.get_ident())
        for step in range(3):
            emit({"step": step})
        return "all done"

    ended = run_job(qtbot, worker, "job-1", job)

    assert ended == ["finished", "job-1", "all done"]
    assert progress == [("job-1", {"step": 0}), ("job-1", {"step": 1}), ("job-1", {"step": 2})]
    assert seen["engine"] is engine and seen["loaded"] is True
    assert seen["thread"] != threading.get_ident()
    assert worker.state == "ready"


def test_cancel_reaches_a_running_job_which_returns_what_it_has(qtbot, start_worker):
    worker = start_worker(ScriptedEngine)
    started = threading.Event()

    def job(_engine: Engine, cancel: CancelToken, emit: JobEmit) -> object:
        count = 0
        while not cancel.cancelled:
            count += 1
            emit(count)
            started.set()
            threading.Event().wait(0.002)
        return count

    ended: list = []
    worker.job_finished.connect(lambda jid, result: ended.append(result))
    worker.run_job("long", job)
    qtbot.waitUntil(started.is_set, timeout=5000)
    worker.cancel()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)

    assert ended[0] >= 1
    # The worker serves the next request as usual.
    with qtbot.waitSignal(worker.generation_finished, timeout=5000) as blocker:
        worker.generate("r1", REQUEST)
    assert blocker.args[1].stop_reason is StopReason.EOS


def test_a_job_cancelled_before_it_starts_finishes_with_none(qtbot, start_worker):
    worker = start_worker(lambda: ScriptedEngine([LONG_REPLY], chunk_delay_s=0.005))
    ran = threading.Event()
    with qtbot.waitSignal(worker.chunk_received, timeout=5000):
        worker.generate("r1", REQUEST)
    worker.run_job("queued", lambda _e, _c, _emit: ran.set())
    with qtbot.waitSignal(worker.job_finished, timeout=5000) as blocker:
        worker.cancel()  # cancels the answer and the job queued behind it
    # The queued job saw its cancelled token: the function ran and returned, or raised Cancelled.
    assert blocker.args[0] == "queued"


def test_a_job_raising_cancelled_finishes_with_none(qtbot, start_worker):
    worker = start_worker(ScriptedEngine)

    def job(_engine: Engine, _cancel: CancelToken, _emit: JobEmit) -> object:
        raise Cancelled

    assert run_job(qtbot, worker, "j", job) == ["finished", "j", None]


def test_jobs_and_answers_run_one_at_a_time_in_arrival_order(qtbot, start_worker):
    engine = ScriptedEngine(["one two three four"], chunk_delay_s=0.01)
    worker = start_worker(lambda: engine)
    order: list[str] = []
    worker.generation_finished.connect(lambda rid, _r: order.append(f"answer {rid}"))
    worker.job_finished.connect(lambda jid, _r: order.append(f"job {jid}"))
    answers_before_job: list[int] = []

    def job(_engine: Engine, _cancel: CancelToken, _emit: JobEmit) -> object:
        answers_before_job.append(len(engine.requests))  # on the worker thread
        return None

    worker.generate("a", REQUEST)
    worker.run_job("b", job)
    worker.generate("c", REQUEST)
    qtbot.waitUntil(lambda: len(order) == 3, timeout=5000)

    assert order == ["answer a", "job b", "answer c"]
    assert answers_before_job == [1]  # "a" had run, "c" had not


def test_an_engine_error_fails_the_job_with_its_sentence(qtbot, start_worker):
    worker = start_worker(ScriptedEngine)

    def job(_engine: Engine, _cancel: CancelToken, emit: JobEmit) -> object:
        emit("before the error")
        raise BadInputError("clip.mp4 @ 00:01.000 is not an image.")

    progress: list[object] = []
    worker.job_progressed.connect(lambda _jid, data: progress.append(data))
    assert run_job(qtbot, worker, "j", job) == [
        "failed",
        "j",
        "clip.mp4 @ 00:01.000 is not an image.",
    ]
    assert progress == ["before the error"]  # what came before the failure still arrived
    assert worker.state == "ready"


def test_a_bug_in_a_job_is_an_internal_error_and_the_worker_goes_on(qtbot, start_worker):
    worker = start_worker(ScriptedEngine)

    def job(_engine: Engine, _cancel: CancelToken, _emit: JobEmit) -> object:
        raise KeyError("frames")

    with qtbot.capture_exceptions() as crashes:  # the crash dialog's hook, in a test
        ended = run_job(qtbot, worker, "bad", job)
    assert ended == ["failed", "bad", "Internal error: KeyError: 'frames'"]
    assert [type(exc) for _type, exc, _tb in crashes] == [KeyError]
    assert run_job(qtbot, worker, "good", lambda _e, _c, _emit: 42) == ["finished", "good", 42]


def test_a_job_fails_with_the_load_error_when_the_model_cannot_load(qtbot, start_worker):
    worker = start_worker(BrokenModelEngine)
    ran = threading.Event()
    ended = run_job(qtbot, worker, "j", lambda _e, _c, _emit: ran.set())
    assert ended == ["failed", "j", "/models/scout has no config.json."]
    assert not ran.is_set()


def test_a_job_after_shutdown_fails_at_once(qtbot):
    worker = InferenceWorker()
    worker.start(ScriptedEngine)
    assert worker.shutdown(5000)
    failed: list = []
    worker.job_failed.connect(lambda jid, message: failed.append((jid, message)))
    worker.run_job("late", lambda _e, _c, _emit: None)
    assert failed == [("late", STOPPED_MESSAGE)]
