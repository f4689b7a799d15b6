"""The one task pool: results on the GUI thread, expected errors as sentences, bugs to the hook."""

from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication, QThread

from app.core.errors import Cancellation, ExpectedError
from app.ui.tasks.pool import TaskPool


def test_a_result_arrives_on_the_gui_thread(qtbot):
    pool = TaskPool(2)
    threads: list[object] = []
    results: list[int] = []

    def work() -> int:
        threads.append(QThread.currentThread())
        return 6 * 7

    def done(value: int) -> None:
        threads.append(QThread.currentThread())
        results.append(value)

    pool.run(work, done)
    qtbot.waitUntil(lambda: results == [42], timeout=5000)
    assert threads[0] is not threads[1] and threads[1] is QThread.currentThread()
    assert pool.shutdown()


def test_an_expected_error_reaches_failed_as_its_sentence(qtbot):
    pool = TaskPool(1)
    failures: list[str] = []

    def work() -> None:
        raise ExpectedError("notes.pdf is damaged: its page tree is missing.")

    pool.run(work, lambda _value: failures.append("done?"), failures.append)
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert failures == ["notes.pdf is damaged: its page tree is missing."]
    pool.shutdown()


def test_a_bug_goes_to_the_crash_hook_and_failed_still_hears(qtbot):
    pool = TaskPool(1)
    failures: list[str] = []

    def work() -> None:
        raise KeyError("frames")

    with qtbot.capture_exceptions() as crashes:  # the crash dialog is sys.excepthook
        pool.run(work, lambda _value: None, failures.append)
        qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert failures == ["Internal error: KeyError: 'frames'"]
    assert [type(exc) for _type, exc, _tb in crashes] == [KeyError]
    pool.shutdown()


def test_a_cancelled_task_calls_nothing_back_and_its_work_sees_the_stop(qtbot):
    pool = TaskPool(1)
    started, stopped = threading.Event(), threading.Event()
    calls: list[str] = []

    def work(cancelled) -> str:
        started.set()
        while not cancelled():
            stopped.wait(0.01)
        stopped.set()
        return "too late"

    task = pool.run_cancellable(work, calls.append, calls.append)
    assert started.wait(5) and pool.is_running(task)
    pool.cancel(task)
    assert stopped.wait(5) and not pool.is_running(task)
    # A task after it answers, so the relay has delivered whatever the first one sent.
    pool.run(lambda: "next", calls.append)
    qtbot.waitUntil(lambda: calls == ["next"], timeout=5000)
    pool.shutdown()


def test_a_cancellation_raised_by_the_work_calls_nothing_back(qtbot):
    pool = TaskPool(1)
    calls: list[str] = []

    def work() -> None:
        raise Cancellation

    pool.run(work, calls.append, calls.append)
    pool.run(lambda: "after", calls.append)
    qtbot.waitUntil(lambda: calls == ["after"], timeout=5000)
    pool.shutdown()


def test_shutdown_drops_what_is_queued(qtbot):
    pool = TaskPool(1)
    gate = threading.Event()
    calls: list[str] = []
    pool.run(lambda: gate.wait(5) and "first", calls.append)
    for n in range(5):
        pool.run(lambda n=n: f"queued {n}", calls.append)
    assert pool.pending() == 6
    gate.set()
    assert pool.shutdown(5000)
    QCoreApplication.processEvents()  # delivers what the finished task posted: it is dropped
    assert calls == [] and pool.pending() == 0


def test_every_lane_runs_on_the_one_application_pool_within_its_limit(qtbot):
    from app.ui.tasks.pool import app_pool

    names: set[str] = set()
    lock = threading.Lock()
    running = {"now": 0, "most": 0}
    release = threading.Event()

    def work(value: int) -> int:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            names.add(QThread.currentThread().objectName() or str(id(QThread.currentThread())))
        release.wait(5)
        with lock:
            running["now"] -= 1
        return value

    lanes = (TaskPool(2), TaskPool(1))
    results: list[int] = []
    for value in range(6):
        lanes[0].run(lambda value=value: work(value), results.append)
    qtbot.waitUntil(lambda: running["now"] == 2, timeout=5000)
    qtbot.wait(100)
    assert running["now"] == 2  # the lane holds the rest in its own queue
    assert app_pool().activeThreadCount() == 2
    ordered: list[int] = []
    for value in range(4):  # another lane is not held up by the first one's queue
        lanes[1].run(lambda value=value: value, ordered.append)
    qtbot.waitUntil(lambda: ordered == [0, 1, 2, 3], timeout=5000)  # one at a time, in order
    release.set()
    qtbot.waitUntil(lambda: sorted(results) == list(range(6)), timeout=5000)
    assert running["most"] == 2
    assert all(lane.shutdown() for lane in lanes)


def test_shutdown_waits_for_its_own_lane_only(qtbot):
    blocker = threading.Event()
    other, mine = TaskPool(1), TaskPool(1)
    other.run(lambda: blocker.wait(10), lambda _v: None)
    finished: list[str] = []
    started = threading.Event()

    def quick() -> str:
        started.set()
        QThread.msleep(200)
        finished.append("mine")
        return "mine"

    mine.run(quick, lambda _v: None)
    assert started.wait(5)
    assert mine.shutdown(timeout_ms=5000)  # not held by the other lane's task
    assert finished == ["mine"]
    blocker.set()
    assert other.shutdown()


def test_a_lane_deleted_with_a_task_in_flight_drops_its_result(qtbot):
    from PySide6.QtCore import QObject

    owner = QObject()
    lane = TaskPool(1, owner)
    started, release, ended = threading.Event(), threading.Event(), threading.Event()
    heard: list[object] = []

    def work() -> str:
        started.set()
        release.wait(5)
        return "late"

    lane.run(work, heard.append, heard.append)
    lane.run(lambda: ended.set(), heard.append)  # queued in the lane behind the first
    assert started.wait(5)
    owner.deleteLater()  # the window that owned the lane closes mid-task
    qtbot.waitUntil(lambda: not __import__("shiboken6").isValid(lane), timeout=5000)
    release.set()
    assert ended.wait(5)  # the lane's queue still drains on the pool
    qtbot.wait(200)  # the results reach the GUI thread's relay: nobody to hand them to
    assert heard == []
