"""The child-process runner that contains PDFium: answers, crashes, hangs, memory, clean-up."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from app.core.ingest.sandbox import Failure, run_worker, worker_command

# A worker that follows the protocol: request on stdin, limits itself, answers in out_dir.
_WORKER = """
import json, sys, time, resource
from pathlib import Path
request = json.loads(sys.stdin.read())
if request.get("limit", True):
    memory = request["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
out = Path(request["out_dir"])
mode = request["mode"]
if mode == "answer":
    (out / "extra.bin").write_bytes(b"pixels")
    (out / "result.json").write_text(json.dumps({"ok": True, "echo": request["secret"]}))
elif mode == "hang":
    time.sleep(60)
elif mode == "exit":
    sys.exit(3)
elif mode == "silent":
    pass
elif mode == "allocate":
    block = bytearray(2 * 1024 * 1024 * 1024)
    (out / "result.json").write_text(json.dumps({"ok": True, "size": len(block)}))
elif mode == "not_a_dict":
    (out / "result.json").write_text("[1, 2]")
"""


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_WORKER))
    return script


def test_an_answer_and_its_files_are_returned_then_cleaned_up(worker: Path) -> None:
    with run_worker(worker, {"mode": "answer", "secret": "pw"}, timeout_s=30) as outcome:
        assert outcome.failure is None
        assert outcome.result == {"ok": True, "echo": "pw"}
        assert (outcome.workdir / "extra.bin").read_bytes() == b"pixels"
        workdir = outcome.workdir
    assert not workdir.exists()


def test_a_hang_is_killed_at_the_deadline(worker: Path) -> None:
    with run_worker(worker, {"mode": "hang"}, timeout_s=1.0) as outcome:
        assert (outcome.failure, outcome.result) == (Failure.TIMEOUT, None)


def test_a_cancelled_run_kills_the_child_long_before_its_deadline(worker: Path) -> None:
    asked: list[bool] = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) >= 3

    with run_worker(worker, {"mode": "hang"}, timeout_s=60, cancelled=cancelled) as outcome:
        assert (outcome.failure, outcome.result, len(asked)) == (Failure.CANCELLED, None, 3)


def test_a_run_that_is_never_cancelled_answers(worker: Path) -> None:
    request = {"mode": "answer", "secret": "s"}
    with run_worker(worker, request, timeout_s=30, cancelled=lambda: False) as outcome:
        assert (outcome.failure, outcome.result) == (None, {"ok": True, "echo": "s"})


def test_a_failing_exit_is_a_crash(worker: Path) -> None:
    with run_worker(worker, {"mode": "exit"}, timeout_s=30) as outcome:
        assert (outcome.failure, outcome.returncode) == (Failure.CRASHED, 3)


@pytest.mark.parametrize("mode", ["silent", "not_a_dict"])
def test_no_usable_answer_is_reported(worker: Path, mode: str) -> None:
    with run_worker(worker, {"mode": mode}, timeout_s=30) as outcome:
        assert (outcome.failure, outcome.result) == (Failure.NO_RESULT, None)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_the_memory_limit_stops_a_runaway_allocation(worker: Path) -> None:
    request = {"mode": "allocate"}

    with run_worker(worker, request, timeout_s=30, memory_bytes=256 * 1024 * 1024) as limited:
        assert limited.failure is Failure.CRASHED
        assert "MemoryError" in limited.log_tail


def test_requests_travel_on_stdin_not_in_the_command_line(worker: Path) -> None:
    command = worker_command(worker)

    assert command[:2] == [sys.executable, "-I"]
    assert command[2:] == [str(worker)]
