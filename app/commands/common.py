"""What the headless subcommands share: finding the model, opening the store, Ctrl+C, messages."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.core import paths
from app.core.settings import Settings, load_settings
from app.inference.engine import CancelToken, LoadProgress, ModelError
from app.store.db import StoreError
from app.store.sessions import SessionStore

EXIT_FAILED = 1


@dataclass(frozen=True)
class ModelRun:
    """Where a command that runs the model finds its data, settings and model."""

    data_dir: Path
    settings: Settings
    model_dir: Path


def model_run(args: argparse.Namespace) -> ModelRun | int:
    """The data folder, settings and model folder for `args`, or the exit code after saying why not.

    Args:
        args: the parsed command line (`--data-dir`, `--model`).

    Returns:
        The `ModelRun`, or an exit code once the problem has been printed: `EXIT_FAILED` for an
        unusable data folder, `ModelError.exit_code` when no model folder is known.
    """
    try:
        data_dir = paths.data_dir(args.data_dir)
        settings, _warnings = load_settings(paths.settings_file(data_dir))
    except paths.DataDirError as error:
        return fail(error.message, EXIT_FAILED)
    model_dir = model_dir_for(args, settings)
    if model_dir is None:
        return fail(
            "no model folder: pass --model DIR, set SCOUT_DESK_MODEL, or choose one in Settings",
            ModelError.exit_code,
        )
    return ModelRun(data_dir, settings, model_dir)


def model_dir_for(args: argparse.Namespace, settings: Settings) -> Path | None:
    """The model folder: `--model`, else env SCOUT_DESK_MODEL, else the one chosen in Settings."""
    if args.model:
        return Path(args.model)
    return paths.model_dir_from_env() or (Path(settings.model_dir) if settings.model_dir else None)


@contextmanager
def open_store(data_dir: Path, *, keep: bool) -> Iterator[SessionStore]:
    """The user's store, or a throwaway one under a temp folder for `--no-save`."""
    try:
        if keep:
            store = SessionStore.open(data_dir)
            try:
                yield store
            finally:
                store.close()
            return
        with tempfile.TemporaryDirectory(prefix="scout-desk-ask-") as scratch:
            store = SessionStore.open(Path(scratch))
            try:
                yield store
            finally:
                store.close()
    except StoreError as error:
        raise SystemExit(fail(error.message, EXIT_FAILED)) from None


@contextmanager
def cancel_on_interrupt(cancel: CancelToken) -> Iterator[None]:
    """Ctrl+C stops the answer cleanly (saved as cancelled) instead of killing the process."""
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_printer(*, quiet: bool):
    def report(progress: LoadProgress) -> None:
        if quiet:
            return
        counter = f" ({progress.done}/{progress.total})" if progress.total else ""
        print(f"{progress.message}{counter}", file=sys.stderr, flush=True)

    return report


def fail(message: str, code: int) -> int:
    print(f"scout-desk: {message}", file=sys.stderr)
    return code
