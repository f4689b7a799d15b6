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
