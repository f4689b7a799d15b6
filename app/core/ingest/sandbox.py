"""Run a native decoder (PDFium) in a child process with a memory limit and a timeout.

PDFium is not thread-safe, even across documents, and a hostile file can make it allocate
gigabytes or abort. In a child process each job has its own PDFium, a crash or a hang costs one
attachment, and `RLIMIT_AS` turns a decompression bomb into a quick, contained failure.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Address space a worker may map; Python + PDFium need about 100 MB, a normal page far less.
DEFAULT_MEMORY_BYTES = 768 * 1024 * 1024
#: Workers running at once: each may use `DEFAULT_MEMORY_BYTES`, and PDFium work is CPU-bound.
MAX_CONCURRENT_WORKERS = 2
RESULT_FILE = "result.json"
_LOG_FILE = "worker.log"
_LOG_TAIL_BYTES = 2000

_slots = threading.BoundedSemaphore(MAX_CONCURRENT_WORKERS)


class Failure(StrEnum):
    """Why a worker gave no answer."""

    TIMEOUT = "timeout"  # still running at the deadline: killed
    CRASHED = "crashed"  # died by a signal or a non-zero exit (PDFium aborts when out of memory)
    NO_RESULT = "no_result"  # exited without writing its answer
    START = "start"  # could not be started at all


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

    Yields:
        The outcome.
    """
    with _slots, tempfile.TemporaryDirectory(prefix="scout-worker-") as tmp:
        workdir = Path(tmp)
        payload = {
            **request,
            "out_dir": str(workdir),
            "memory_bytes": memory_bytes,
            "cpu_seconds": int(timeout_s) + 5,
        }
        yield _run(script, payload, workdir, timeout_s)


def _run(script: Path, payload: dict[str, Any], workdir: Path, timeout_s: float) -> WorkerOutcome:
    log_path = workdir / _LOG_FILE
    try:
        with log_path.open("wb") as child_log:
            completed = subprocess.run(
                worker_command(script),
                input=json.dumps(payload).encode("utf-8"),
                stdout=child_log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
                close_fds=True,
            )
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        return WorkerOutcome(None, Failure.TIMEOUT, None, _tail(log_path), workdir)
    except OSError as exc:
        log.error("cannot start worker %s: %s", script, exc)
        return WorkerOutcome(None, Failure.START, None, str(exc), workdir)
    code = completed.returncode
    if code != 0:
        return WorkerOutcome(None, Failure.CRASHED, code, _tail(log_path), workdir)
    try:
        result = json.loads((workdir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    if not isinstance(result, dict):
        return WorkerOutcome(None, Failure.NO_RESULT, code, _tail(log_path), workdir)
    return WorkerOutcome(result, None, code, _tail(log_path), workdir)


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
