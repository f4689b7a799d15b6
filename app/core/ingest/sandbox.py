"""Run a native decoder (PDFium, FFmpeg) in a child process with a memory limit and a timeout.

PDFium is not thread-safe, even across documents, and a hostile file can make it allocate
gigabytes or abort. In a child process each job has its own PDFium, a crash or a hang costs one
attachment, and `RLIMIT_AS` turns a decompression bomb into a quick, contained failure. The video
decoder (`app.core.video.child`) runs through the same function, with a cancel callback. The
child side of the protocol is `sandbox_child.py`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.core.ingest.sandbox_child import RESULT_FILE

log = logging.getLogger(__name__)

#: Address space a worker may map; Python + PDFium need about 100 MB, a normal page far less.
DEFAULT_MEMORY_BYTES = 768 * 1024 * 1024
#: Workers running at once: each may use `DEFAULT_MEMORY_BYTES`, and PDFium work is CPU-bound.
MAX_CONCURRENT_WORKERS = 2
_LOG_FILE = "worker.log"
_LOG_TAIL_BYTES = 2000
#: How often a cancellable run asks `cancelled` while the child works.
_POLL_S = 0.05

_slots = threading.BoundedSemaphore(MAX_CONCURRENT_WORKERS)


class Failure(StrEnum):
    """Why a worker gave no answer."""

    TIMEOUT = "timeout"  # still running at the deadline: killed
    CRASHED = "crashed"  # died by a signal or a non-zero exit (PDFium aborts when out of memory)
    NO_RESULT = "no_result"  # exited without writing its answer
    START = "start"  # could not be started at all
    CANCELLED = "cancelled"  # the caller's `cancelled` said so: killed


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker run produced.

    Attributes:
        result: the worker's JSON answer (None when it gave none).
        failure: why there is no answer (None when there is one).
        returncode: the child's exit status (negative: killed by that signal).
        log_tail: the end of what the child printed, for the log.
        workdir: the folder the worker wrote its files into (valid inside `run_worker`).
    """

    result: dict[str, Any] | None
    failure: Failure | None = None
    returncode: int | None = None
    log_tail: str = ""
    workdir: Path = field(default_factory=Path)


def worker_command(script: Path) -> list[str]:
    """The command that runs a worker script with this Python, isolated from the environment.

    `-I` ignores PYTHON* variables and the user's site-packages; the script imports only the
    standard library and the decoder, never `app`, so no package path is needed.
    """
    return [sys.executable, "-I", str(script)]


@contextmanager
def run_worker(
    script: Path,
    request: dict[str, Any],
    *,
    timeout_s: float,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    cancelled: Callable[[], bool] | None = None,
    env: Mapping[str, str] | None = None,
    slots: threading.BoundedSemaphore | None = None,
) -> Iterator[WorkerOutcome]:
    """Run `script` on `request` in a child process; the outcome is valid inside the block.

    The child reads `request` (plus `out_dir`, `memory_bytes` and `cpu_seconds`) as JSON on
    stdin, limits itself, and writes `RESULT_FILE` (and any other files) into `out_dir`, a
    temporary folder removed when the block ends. Passwords travel on stdin, never in argv.

    Args:
        script: the worker script.
        request: what to do (JSON-serialisable).
        timeout_s: wall-clock limit; the child is killed after it.
        memory_bytes: address-space limit the child sets on itself (Linux, macOS).
        cancelled: polled while the child runs; when it returns True the child is killed and
            the outcome's failure is `Failure.CANCELLED`.
        env: variables added to this process's environment for the child.
        slots: the pool that bounds how many such children run at once (default: the pool of
            `MAX_CONCURRENT_WORKERS` shared by PDF work).

    Yields:
        The outcome.
    """
    with (
        _slots if slots is None else slots,
        tempfile.TemporaryDirectory(prefix="scout-worker-") as tmp,
    ):
        workdir = Path(tmp)
        payload = {
            **request,
            "out_dir": str(workdir),
            "memory_bytes": memory_bytes,
            "cpu_seconds": int(timeout_s) + 5,
        }
        child_env = {**os.environ, **env} if env else None
        yield _run(script, payload, workdir, timeout_s, cancelled, child_env)


def _run(
    script: Path,
    payload: dict[str, Any],
    workdir: Path,
    timeout_s: float,
    cancelled: Callable[[], bool] | None,
    env: dict[str, str] | None,
) -> WorkerOutcome:
    log_path = workdir / _LOG_FILE
    try:
        with log_path.open("wb") as child_log:
            process = subprocess.Popen(
                worker_command(script),
                stdin=subprocess.PIPE,
                stdout=child_log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                env=env,
            )
    except OSError as exc:
        log.error("cannot start worker %s: %s", script, exc)
        return WorkerOutcome(None, Failure.START, None, str(exc), workdir)
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload).encode("utf-8"))
        process.stdin.close()
    except OSError:
        pass  # it died already; its exit status says how
    try:
        code = _wait(process, timeout_s, cancelled)
    except BaseException:  # `cancelled` raised, or the thread is interrupted: no orphan child
        _kill(process)
        raise
    if isinstance(code, Failure):
        return WorkerOutcome(None, code, None, _tail(log_path), workdir)
    if code != 0:
        return WorkerOutcome(None, Failure.CRASHED, code, _tail(log_path), workdir)
    try:
        result = json.loads((workdir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    if not isinstance(result, dict):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    return WorkerOutcome(result, None, code, _tail(log_path), workdir)


def _wait(
    process: subprocess.Popen[bytes], timeout_s: float, cancelled: Callable[[], bool] | None
) -> int | Failure:
    """The child's exit status, or why it was killed (the deadline, or `cancelled`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            return process.wait(timeout=max(0.0, left if cancelled is None else min(left, _POLL_S)))
        except subprocess.TimeoutExpired:
            if cancelled is not None and cancelled():
                _kill(process)
                return Failure.CANCELLED
            if time.monotonic() >= deadline:
                _kill(process)
                return Failure.TIMEOUT


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()  # reaped, so no zombie outlives the run


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
