"""Run the video decode worker in a memory- and time-capped child process that can be cancelled.

The same sandbox as PDF reading (`app.core.ingest.sandbox`): FFmpeg inside OpenCV has crashed on
damaged files, and in a child a crash, a hang or a memory blow-up costs one video, never the app.
Unlike PDF work, a scan for scenes can take minutes, so the parent polls a cancel callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.core.ingest.sandbox import Failure, WorkerOutcome, run_worker
from app.core.video.data import VideoCancelled

WORKER = Path(__file__).with_name("video_worker.py")
#: Address space the child may map: Python, numpy, OpenCV's FFmpeg and a few 4K frames.
DEFAULT_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
#: Decode children at once; each may use `DEFAULT_MEMORY_BYTES` and a core or two.
MAX_CONCURRENT_WORKERS = 2
#: Seconds the child keeps for writing its answer after its own soft deadline.
_SOFT_MARGIN_S = 3.0
# One FFmpeg thread pool per child is plenty; glibc's per-thread arenas would otherwise eat the
# address-space limit before any frame is decoded.
_CHILD_ENV = {"MALLOC_ARENA_MAX": "2", "OPENCV_LOG_LEVEL": "ERROR"}

_slots = threading.BoundedSemaphore(MAX_CONCURRENT_WORKERS)


@contextmanager
def run_video_worker(
    request: dict[str, Any],
    *,
    timeout_s: float,
    cancelled: Callable[[], bool] | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> Iterator[WorkerOutcome]:
    """Run one decode job in a child; the outcome (and its files) is valid inside the block.

    Args:
        request: the job (`action`, `path`, ...) as `video_worker.py` reads it.
        timeout_s: wall-clock limit; the child is killed after it. It is told to stop its own
            open-ended work (finding the end, scanning scenes) a little earlier and answer.
        cancelled: polled while the child runs; when it returns True the child is killed.
        memory_bytes: address-space limit the child sets on itself (Linux, macOS).

    Yields:
        The outcome.

    Raises:
        VideoCancelled: `cancelled` said so.
    """
    job = {**request, "soft_deadline_s": max(0.5, timeout_s - _SOFT_MARGIN_S)}
    with run_worker(
        WORKER,
        job,
        timeout_s=timeout_s,
        memory_bytes=memory_bytes,
        cancelled=cancelled,
        env=_CHILD_ENV,
        slots=_slots,
    ) as outcome:
        if outcome.failure is Failure.CANCELLED:
            raise VideoCancelled("Stopped.")
        yield outcome
