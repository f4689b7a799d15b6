"""Child side of the sandbox protocol, shared by the worker scripts (standard library only).

`pdf_worker.py` and `video/video_worker.py` run as `python -I script.py` and import no `app` code,
so a decoder's crash or a hostile file never runs inside the app. They put this folder on
`sys.path` and import this module by its bare name, before any decoder is loaded.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What the parent (`sandbox.run_worker`) reads back from `out_dir`.
RESULT_FILE = "result.json"

Handler = Callable[[dict[str, Any], Path], dict[str, Any]]


def serve(handle: Handler) -> int:
    """Read one JSON request on stdin, limit this process, handle it, write the answer.

    The memory and CPU limits are set before `handle` runs, so a decoder it imports is loaded
    under them. Any exception becomes an answer (`{"ok": False, "error": ...}`) for the parent.

    Args:
        handle: does the request's work; gets the request and its `out_dir`, returns the answer.

    Returns:
        The exit status (0: an answer was written).
    """
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    limit_self(int(request["memory_bytes"]), int(request["cpu_seconds"]))
    out_dir = Path(request["out_dir"])
    try:
        result = handle(request, out_dir)
    except MemoryError:
        result = {"ok": False, "error": "memory"}
    except Exception as exc:  # an unexpected failure still answers, for the parent's log
        result = {"ok": False, "error": "unknown", "message": repr(exc)}
    write_result(out_dir, result)
    return 0


def limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process's address space and CPU time, and turn off core files.

    Args:
        memory_bytes: the address-space limit (`RLIMIT_AS`).
        cpu_seconds: the CPU-time limit (`RLIMIT_CPU`).
    """
    try:
        import resource
    except ImportError:  # Windows: the parent's timeout is the only guard
        return
    limits = (
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_CORE, 0),  # decoders abort when out of memory: no core files
    )
    for which, value in limits:
        # macOS refuses RLIMIT_AS; the parent's timeout still holds there.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))


def write_result(out_dir: Path, result: dict[str, Any]) -> None:
    """Write the answer into `out_dir` as `RESULT_FILE`.

    Args:
        out_dir: the folder the parent gave.
        result: the answer (JSON-serialisable).
    """
    # Written then renamed: a child killed mid-write leaves no half answer for the parent.
    partial = out_dir / (RESULT_FILE + ".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(out_dir / RESULT_FILE)
