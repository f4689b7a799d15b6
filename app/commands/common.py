"""What the headless subcommands share: finding the model, opening the store, Ctrl+C, messages."""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from app.commands.terminal import printable
from app.core import paths
from app.core.messages import StopReason
from app.core.settings import Settings, check_server_url, load_settings
from app.inference.engine import CancelToken, Engine, LoadProgress, ModelError
from app.store.db import StoreError
from app.store.sessions import SessionStore

#: What `signal.signal` takes and returns (None: a handler not set from Python).
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

log = logging.getLogger(__name__)

#: The note on an answer the user stopped with Ctrl+C before the command could finish it.
STOPPED_BY_USER = "stopped with Ctrl+C"

#: The data folder or its database could not be used: opening it, or saving during an answer.
EXIT_FAILED = 1
#: Stopped by Ctrl+C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: How long a command line write waits out another program holding the database (a large
#: import in the window) before it gives up, retrying with back-off meanwhile.
CLI_LOCK_PATIENCE_S = 60.0
#: After Ctrl+C, how long the command may take to stop by itself before it saves what it has
#: and exits regardless (a prefill or a native call does not look at the cancel flag).
INTERRUPT_GRACE_S = 1.5


#: The environment variable naming an OpenAI-compatible server (vLLM) to answer with.
SERVER_ENV = "SCOUT_DESK_SERVER"


@dataclass(frozen=True)
class ServerChoice:
    """The server a command answers with.

    Attributes:
        url: its base URL (".../v1").
        model: the model id to use ("": the server's first).
        api_key: from SCOUT_DESK_API_KEY or the keyring (None: the server needs none).
    """

    url: str
    model: str = ""
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ModelRun:
    """Where a command that runs the model finds its data, settings and model.

    Exactly one of `model_dir` (the local engine) and `server` (the remote one) is set.
    """

    data_dir: Path
    settings: Settings
    model_dir: Path | None = None
    server: ServerChoice | None = None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """`--server URL [--server-model NAME]`: answer with a vLLM server instead of a folder."""
    parser.add_argument(
        "--server", metavar="URL", default=None,
        help="an OpenAI-compatible server such as vLLM (env SCOUT_DESK_SERVER)",
    )  # fmt: skip
    parser.add_argument("--server-model", metavar="NAME", default=None,
                        help="the model id on that server (default: its first)")  # fmt: skip


def model_run(args: argparse.Namespace) -> ModelRun | int:
    """The data folder, settings and model (folder or server) for `args`, or an exit code.

    A server given with `--server` wins; then `--model`; then SCOUT_DESK_SERVER, then
    SCOUT_DESK_MODEL; then what Settings chose.

    Args:
        args: the parsed command line (`--data-dir`, `--model`, `--server`, `--server-model`).

    Returns:
        The `ModelRun`, or an exit code once the problem has been printed: `EXIT_FAILED` for an
        unusable data folder, `ModelError.exit_code` when no model is known or the server's URL
        is not one.
    """
    try:
        data_dir = paths.data_dir(args.data_dir)
        settings, _warnings = load_settings(paths.settings_file(data_dir))
    except paths.DataDirError as error:
        return fail(error.message, EXIT_FAILED)
    try:
        server = server_for(args, settings)
    except ValueError as exc:
        return fail(f"the server URL is not usable: {exc}", ModelError.exit_code)
    if server is not None:
        return ModelRun(data_dir, settings, server=server)
    model_dir = model_dir_for(args, settings)
    if model_dir is None:
        return fail(
            "no model folder or server: pass --model DIR or --server URL, set SCOUT_DESK_MODEL or "
            "SCOUT_DESK_SERVER, or choose one in Settings",
            ModelError.exit_code,
        )
    return ModelRun(data_dir, settings, model_dir=model_dir)


def server_for(args: argparse.Namespace, settings: Settings) -> ServerChoice | None:
    """The server to answer with, or None for the local model folder.

    Raises:
        ValueError: the URL given is not an http(s) URL (the sentence says why).
    """
    from app.core.api_keys import load_api_key

    url = getattr(args, "server", None)
    if url is None and not getattr(args, "model", None):
        url = os.environ.get(SERVER_ENV, "").strip() or None
        if url is None and paths.model_dir_from_env() is None and settings.backend == "server":
            url = settings.server_url or None
    if url is None:
        return None
    url = check_server_url(url)
    model = getattr(args, "server_model", None) or (
        settings.server_model if url == settings.server_url else ""
    )
    return ServerChoice(url, model, load_api_key(url))


def add_local_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a local model run: how the weights, the KV cache and the head are kept."""
    from app.inference.llama4_head import OUTPUT_HEADS
    from app.inference.llama4_kv import KV_CACHES

    parser.add_argument("--quantization", choices=("nf4", "int8", "bf16"), default=None)
    parser.add_argument(
        "--kv-cache", choices=KV_CACHES, default=None,
        help="the long-context layers' KV cache (local only; default: the one in Settings)",
    )  # fmt: skip
    parser.add_argument(
        "--output-head", choices=OUTPUT_HEADS, default=None,
        help="the output head's weights; int8 reads 1 GB less a token (local only; default: the"
        " one in Settings)",
    )  # fmt: skip


def open_engine(
    run: ModelRun,
    *,
    quantization: str | None = None,
    kv_cache: str | None = None,
    output_head: str | None = None,
    moe: str = "sparse",
    prefill_progress: Callable[[int, int], None] | None = None,
) -> Engine:
    """The engine a run asked for, not loaded yet: the remote one or the local folder's.

    Args:
        run: what `model_run` found.
        quantization: overrides the settings' quantization (local only).
        kv_cache: overrides the settings' KV cache (local only).
        output_head: overrides the settings' output head (local only).
        moe: the MoE path (local only).
        prefill_progress: told (done, total) prompt tokens as a long prompt is read (local
            only: a server reads the prompt on its side).
    """
    if run.server is not None:
        from app.inference.remote_engine import RemoteEngine

        server = run.server
        return RemoteEngine(server.url, server.model or None, api_key=server.api_key)
    from app.inference.local_engine import LocalLlama4Engine

    assert run.model_dir is not None
    return LocalLlama4Engine(
        run.model_dir,
        quantization=quantization or run.settings.quantization,
        kv_cache=kv_cache or run.settings.kv_cache,
        output_head=output_head or run.settings.output_head,
        moe=moe,
        prefill_progress=prefill_progress,
    )


def model_dir_for(args: argparse.Namespace, settings: Settings) -> Path | None:
    """The model folder: `--model`, else env SCOUT_DESK_MODEL, else the one chosen in Settings."""
    if args.model:
        return Path(args.model)
    return paths.model_dir_from_env() or (Path(settings.model_dir) if settings.model_dir else None)


@contextmanager
def open_store(data_dir: Path, *, keep: bool) -> Iterator[SessionStore]:
    """The user's store, or a throwaway one under a temp folder for `--no-save`.

    A `StoreError` anywhere in the block (opening, or saving mid-answer: disk full, locked
    past `CLI_LOCK_PATIENCE_S`) ends the command with its sentence and `EXIT_FAILED`.
    """
    try:
        if keep:
            store = SessionStore.open(data_dir, lock_patience_s=CLI_LOCK_PATIENCE_S)
            try:
                yield store
            finally:
                store.close()
            return
        with tempfile.TemporaryDirectory(prefix="scout-desk-ask-") as scratch:
            store = SessionStore.open(Path(scratch), lock_patience_s=CLI_LOCK_PATIENCE_S)
            try:
                yield store
            finally:
                store.close()
    except StoreError as error:
        raise SystemExit(fail(error.message, EXIT_FAILED)) from None


class Interrupt:
    """Ctrl+C for a headless command: stop cleanly, and within 2 s whatever the command is doing.

    The first Ctrl+C sets the cancel token, which the engine checks every step; a command that
    notices returns `EXIT_INTERRUPTED` itself, having saved its answer as cancelled. If it has
    not ended `INTERRUPT_GRACE_S` later (a long prefill, a native call, a hung template), or at
    a second Ctrl+C, the watchdog runs the rescue (saving what was streamed) and ends the
    process with `EXIT_INTERRUPTED`: Python could not join a thread stuck in native code, and
    leaving it running at exit aborts the interpreter.

    All of this runs on the watchdog thread, which the C-level signal handler wakes through
    `signal.set_wakeup_fd`: it hears Ctrl+C even while the main thread is inside a native call
    (where a Python handler cannot run), and the Python handler does nothing, so it takes no
    lock. A second Ctrl+C can run that handler nested inside the first, and a lock taken there
    would deadlock the process for good.

    Use as a context manager around the whole command, from the main thread.
    """

    def __init__(self, cancel: CancelToken) -> None:
        self.cancel = cancel
        self._rescue: Callable[[], None] | None = None
        self._pressed = False
        self._wakeup: tuple[int, int] | None = None
        self._watchdog: threading.Thread | None = None
        self._previous: SignalHandler = None
        self._previous_wakeup_fd = -1

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl+C was pressed."""
        return self._pressed

    def set_rescue(self, rescue: Callable[[], None] | None) -> None:
        """What to save if the command must be ended from outside (runs on the watchdog)."""
        self._rescue = rescue

    def __enter__(self) -> Interrupt:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # set_wakeup_fd requires it
        self._wakeup = (read_end, write_end)
        self._watchdog = threading.Thread(target=self._watch, name="ctrl-c-watchdog", daemon=True)
        self._watchdog.start()
        self._previous = signal.signal(signal.SIGINT, _ignore_in_python)
        self._previous_wakeup_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        # None: the handler was not set from Python; the default is what it was then.
        previous = signal.SIG_DFL if self._previous is None else self._previous
        signal.signal(signal.SIGINT, previous)
        assert self._wakeup is not None and self._watchdog is not None
        read_end, write_end = self._wakeup
        os.write(write_end, _WATCHDOG_QUIT)
        # A watchdog already rescuing ends the process itself; one waiting quits at once.
        self._watchdog.join()
        os.close(read_end)
        os.close(write_end)

    def _watch(self) -> None:
        """Wait for Ctrl+C; cancel at the first, end the process at a second or after the grace."""
        assert self._wakeup is not None
        read_end = self._wakeup[0]
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([read_end], [], [], timeout)
            if not ready:  # the grace ran out and the command has not ended
                break
            woken = os.read(read_end, 512)
            if _WATCHDOG_QUIT in woken:
                return
            presses = woken.count(bytes([signal.SIGINT]))
            if presses and deadline is not None:  # a second Ctrl+C
                break
            if presses:
                self._pressed = True
                self.cancel.cancel()
                if presses > 1:
                    break
                deadline = time.monotonic() + INTERRUPT_GRACE_S
        self._end_now()

    def _end_now(self) -> None:
        rescue, self._rescue = self._rescue, None
        if rescue is not None:
            try:
                rescue()
            except Exception as exc:  # the process ends either way; say what was not saved
                print(f"scout-desk: could not save the partial answer: {exc}", file=sys.stderr)
        print("\nscout-desk: stopped", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)


#: What `Interrupt.__exit__` writes to the wakeup pipe to end its watchdog (no signal is 0).
_WATCHDOG_QUIT = b"\0"


def _ignore_in_python(_signum: int, _frame: object) -> None:
    """SIGINT's Python handler: the watchdog does the work (see `Interrupt`)."""


def rescue_answer(
    store: SessionStore,
    answer_id: str | None,
    text: Callable[[], str] = str,
    *,
    keep: bool,
) -> Callable[[], None]:
    """A rescue for `Interrupt`: save `text()` as the cancelled answer from the watchdog thread.

    The command's own connection belongs to its thread, so the watchdog opens its own (its
    lease leaves the answer alone) and finishes the answer by id (None: nothing is streaming,
    what was saved stays as it is). For `--no-save` it removes the scratch folder instead,
    which `os._exit` would otherwise leave behind.
    """
    data_dir = store.path.parent

    def rescue() -> None:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
            return
        if answer_id is None:
            return
        # Brief patience: the whole stop must stay within about two seconds.
        with SessionStore.open(data_dir, lock_patience_s=0.3) as own:
            own.finish_message(answer_id, text(), StopReason.CANCELLED, error=STOPPED_BY_USER)

    return rescue


def progress_printer(*, quiet: bool) -> Callable[[LoadProgress], None]:
    def report(progress: LoadProgress) -> None:
        if quiet:
            return
        counter = f" ({progress.done}/{progress.total})" if progress.total else ""
        print(f"{progress.message}{counter}", file=sys.stderr, flush=True)

    return report


#: A prompt shorter than this is read too fast for progress lines to help.
PREFILL_REPORTED_FROM = 8192
#: Seconds between two "reading N / M tokens" lines.
PREFILL_REPORT_EVERY_S = 1.0


def prefill_printer(*, quiet: bool) -> Callable[[int, int], None]:
    """Says on stderr how much of a long prompt has been read, about once a second."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        if quiet or total < PREFILL_REPORTED_FROM:
            return
        now = time.monotonic()
        if done < total and done and now - last[0] < PREFILL_REPORT_EVERY_S:
            return
        last[0] = now
        print(f"reading {done:,} / {total:,} tokens", file=sys.stderr, flush=True)

    return report


def fail(message: str, code: int) -> int:
    """Print one sentence to stderr (file names and model text in it escaped); return `code`."""
    print(f"scout-desk: {printable(message, sys.stderr.encoding)}", file=sys.stderr)
    return code
