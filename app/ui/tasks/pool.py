"""The one task pool: plain Python functions off the GUI thread, their results back on it.

Every feature runs its background work here (counting tokens, planning chunks, rendering
markdown, decoding video frames, reading attachments). There is one `QThreadPool` for the whole
application (`app_pool`); each owner holds a `TaskPool`, a lane of it with its own limit on
tasks at once and its own queue (a limit of 1 runs its tasks one after the other, in order), so
one feature's long work never takes another feature's place in line beyond its limit. One relay,
living on the GUI thread for the life of the application, queues every result there and hands
it to its lane if the lane still exists (a lane destroyed with tasks in flight just drops their
results); there is one way to cancel and one rule for failures. An
`ExpectedError` reaches `failed` as its sentence; a `Cancellation` (or a cancelled task) calls
nothing back; anything else is a bug: it is logged, `failed` hears a short sentence so the
screen does not wait forever, and the traceback goes to `sys.excepthook` (the crash dialog).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.core.errors import Cancellation, ExpectedError

log = logging.getLogger(__name__)

#: Work that takes nothing and returns its result (plain data, never a widget).
Work = Callable[[], Any]
#: Work that polls `cancelled()` where it can stop early (the video decoder takes it).
CancellableWork = Callable[[Callable[[], bool]], Any]
Done = Callable[[Any], None]
Failed = Callable[[str], None]
#: Threads of the application's pool: room for every lane's limit at once (their sum is 10: the
#: attachment readers, the video panel's three, and one each for the rest), since most of the
#: work waits on files, child processes or native code that releases the GIL.
APP_POOL_THREADS = 12

_app_pool: QThreadPool | None = None


def app_pool() -> QThreadPool:
    """The application's one pool of worker threads (made on first use)."""
    global _app_pool
    if _app_pool is None:
        _app_pool = QThreadPool()
        _app_pool.setMaxThreadCount(
            max(APP_POOL_THREADS, QThreadPool.globalInstance().maxThreadCount())
        )
    return _app_pool


@dataclass(frozen=True)
class _Outcome:
    """What a task's work came to."""

    result: Any = None
    error: str = ""  # the sentence for `failed`, "" when it succeeded
    cancelled: bool = False
    bug: tuple[type[BaseException], BaseException, TracebackType | None] | None = None


class _Relay(QObject):
    """Lives on the GUI thread; pool threads emit through it, so delivery is queued there."""

    #: (the TaskPool, task id, _Outcome).
    finished = Signal(object, int, object)

    def __init__(self) -> None:
        super().__init__()
        self.finished.connect(self._on_finished)

    def _on_finished(self, lane: TaskPool, task_id: int, outcome: _Outcome) -> None:
        if outcome.bug is not None:
            sys.excepthook(*outcome.bug)  # the crash dialog, with the traceback
        if shiboken6.isValid(lane):  # a lane deleted meanwhile (its window closed) hears nothing
            lane._on_relay_finished(task_id, outcome)


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    """The one relay (made on first use, which is on the GUI thread: a lane's `run`)."""
    global _relay
    if _relay is None:
        _relay = _Relay()
    return _relay


class _Task(QRunnable):
    def __init__(
        self,
        lane: TaskPool,
        task_id: int,
        work: CancellableWork,
        stop: threading.Event,
    ) -> None:
        super().__init__()
        self._lane = lane
        self._task_id = task_id
        self._work = work
        self._stop = stop
        self._ended = lane._on_task_ended  # plain Python: safe after the lane's QObject is gone

    def run(self) -> None:
        try:
            _the_relay().finished.emit(self._lane, self._task_id, self._outcome())
        finally:
            self._ended()  # the lane may start its next task

    def _outcome(self) -> _Outcome:
        if self._stop.is_set():
            return _Outcome(cancelled=True)
        try:
            result = self._work(self._stop.is_set)
        except ExpectedError as exc:
            return _Outcome(error=exc.message, cancelled=self._stop.is_set())
        except Cancellation:
            return _Outcome(cancelled=True)
        except Exception as exc:  # a bug: it must reach the crash dialog, never kill a thread
            log.exception("background task failed")
            sentence = f"Internal error: {type(exc).__name__}: {exc}"
            return _Outcome(error=sentence, bug=(type(exc), exc, exc.__traceback__))
        return _Outcome(result=result, cancelled=self._stop.is_set())


class TaskPool(QObject):
    """One owner's lane of `app_pool` for work that must not block the GUI; answers arrive on
    the GUI thread.

    Args:
        max_threads: tasks of this lane running at once; 1 runs them one after the other, in
            order. The rest wait in the lane's own queue.
        parent: the usual QObject parent.
    """

    def __init__(self, max_threads: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._limit = max(1, max_threads)
        _the_relay()  # made here, on the GUI thread, before any task can need it
        self._tasks: dict[int, tuple[threading.Event, Done, Failed | None]] = {}
        self._next_id = 0
        # Shared with the pool's threads: what waits for a place, and how many run now.
        self._lock = threading.Condition()
        self._waiting: deque[_Task] = deque()
        self._running = 0

    def run(self, work: Work, done: Done, failed: Failed | None = None) -> int:
        """Start `work()` on the pool.

        Args:
            work: a function that touches no widget.
            done: called on the GUI thread with its result.
            failed: called on the GUI thread with a sentence when it failed (None: logged).

        Returns:
            The task id (for `cancel`).
        """
        return self.run_cancellable(lambda _cancelled: work(), done, failed)

    def run_cancellable(
        self, work: CancellableWork, done: Done, failed: Failed | None = None
    ) -> int:
        """Start `work(cancelled)` on the pool; it polls `cancelled()` where it can stop.

        A cancelled task never calls back: whatever its work returns is dropped.

        Returns:
            The task id (for `cancel`).
        """
        self._next_id += 1
        stop = threading.Event()
        self._tasks[self._next_id] = (stop, done, failed)
        task = _Task(self, self._next_id, work, stop)
        with self._lock:
            self._waiting.append(task)
            self._start_waiting()
        return self._next_id

    def cancel(self, task_id: int | None) -> None:
        """Stop a task (a no-op for one that ended, or None); its callbacks will not run."""
        entry = self._tasks.pop(task_id, None) if task_id is not None else None
        if entry is not None:
            entry[0].set()

    def is_running(self, task_id: int | None) -> bool:
        """Whether a task has not answered yet (and was not cancelled)."""
        return task_id is not None and task_id in self._tasks

    def pending(self) -> int:
        """Tasks that have not answered yet."""
        return len(self._tasks)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every task, drop queued ones and wait for running ones; True when idle."""
        for stop, _done, _failed in self._tasks.values():
            stop.set()
        self._tasks.clear()
        with self._lock:
            self._waiting.clear()
            return self._lock.wait_for(lambda: self._running == 0, timeout_ms / 1000)

    def _start_waiting(self) -> None:
        """Hand waiting tasks to the app's pool up to the lane's limit (holding the lock)."""
        while self._waiting and self._running < self._limit:
            self._running += 1
            app_pool().start(self._waiting.popleft())

    def _on_task_ended(self) -> None:
        """On a pool thread, after a task's outcome was sent: make room for the next one."""
        with self._lock:
            self._running -= 1
            self._start_waiting()
            self._lock.notify_all()

    def _on_relay_finished(self, task_id: int, outcome: _Outcome) -> None:
        entry = self._tasks.pop(task_id, None)
        if entry is None or outcome.cancelled:
            return
        _stop, done, failed = entry
        if outcome.error:
            if failed is not None:
                failed(outcome.error)
        else:
            done(outcome.result)
