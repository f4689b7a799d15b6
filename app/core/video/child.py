"""Run the video decode worker in a memory- and time-capped child process that can be cancelled.

The same sandbox as PDF reading (`app.core.ingest.sandbox`): FFmpeg inside OpenCV has crashed on
damaged files, and in a child a crash, a hang or a memory blow-up costs one video, never the app.
Unlike PDF work, a scan for scenes can take minutes, so the parent polls a cancel callback.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.core.ingest.sandbox import RESULT_FILE, Failure, WorkerOutcome, worker_command
from app.core.video.data import VideoCancelled

WORKER = Path(__file__).with_name("video_worker.py")
#: Address space the child may map: Python, numpy, OpenCV's FFmpeg and a few 4K frames.
DEFAULT_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
#: Decode children at once; each may use `DEFAULT_MEMORY_BYTES` and a core or two.
MAX_CONCURRENT_WORKERS = 2
#: Seconds the child keeps for writing its answer after its own soft deadline.
_SOFT_MARGIN_S = 3.0
_POLL_S = 0.05
_LOG_TAIL_BYTES = 2000

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
    with _slots, tempfile.TemporaryDirectory(prefix="scout-video-") as tmp:
        workdir = Path(tmp)
        payload = {
            **request,
            "out_dir": str(workdir),
            "memory_bytes": memory_bytes,
            "cpu_seconds": int(timeout_s) + 5,
            "soft_deadline_s": max(0.5, timeout_s - _SOFT_MARGIN_S),
        }
        yield _run(payload, workdir, timeout_s, cancelled or (lambda: False))


def _run(
    payload: dict[str, Any], workdir: Path, timeout_s: float, cancelled: Callable[[], bool]
) -> WorkerOutcome:
    log_path = workdir / "worker.log"
    # One FFmpeg thread pool per child is plenty; glibc's per-thread arenas would otherwise eat
    # the address-space limit before any frame is decoded.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OPENCV_LOG_LEVEL": "ERROR"}
    try:
        with log_path.open("wb") as child_log:
            process = subprocess.Popen(
                worker_command(WORKER),
                stdin=subprocess.PIPE,
                stdout=child_log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                env=env,
            )
    except OSError as exc:
        return WorkerOutcome(None, Failure.START, None, str(exc), workdir)
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload).encode("utf-8"))
        process.stdin.close()
    except OSError:
        pass  # it died already; its exit status says how
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            code = process.wait(timeout=_POLL_S)
            break
        except subprocess.TimeoutExpired:
            if cancelled():
                _kill(process)
                raise VideoCancelled("Stopped.") from None
            if time.monotonic() > deadline:
                _kill(process)
                return WorkerOutcome(None, Failure.TIMEOUT, None, _tail(log_path), workdir)
    if code != 0:
        return WorkerOutcome(None, Failure.CRASHED, code, _tail(log_path), workdir)
    try:
        result = json.loads((workdir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    if not isinstance(result, dict):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    return WorkerOutcome(result, None, code, _tail(log_path), workdir)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
