"""The `scout-desk` command: the GUI by default; subcommands run the same pipeline headless.

Exit codes (a contract): 0 ok, 1 the store or app could not start, 2 usage, 3 bad input,
4 model problem, 5 out of memory. Expected errors print one sentence to stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from app import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_MODEL = 4
EXIT_OUT_OF_MEMORY = 5
EXIT_INTERRUPTED = 130  # Ctrl+C

# Subcommand name → module with `add_arguments(parser)` and `run(args) -> int`. Imported only when
# that subcommand runs, so `scout-desk` (the GUI) never pays for what it does not use.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("app.commands.ask", "answer one question about images and documents"),
    "video": ("app.commands.video", "ask about every sampled frame of a video"),
    "sessions": ("app.commands.sessions", "list, export and import saved chats"),
    "doctor": ("app.commands.doctor", "check this machine and a model folder"),
    "prepare-model": ("app.commands.prepare_model", "convert official weights to per-expert 4-bit"),
}


def _available_subcommands() -> dict[str, tuple[str, str]]:
    """The subcommands whose modules are present in this build."""
    return {
        name: spec
        for name, spec in _SUBCOMMANDS.items()
        if importlib.util.find_spec(spec[0]) is not None
    }


def _add_global_options(parser: argparse.ArgumentParser, *, repeated: bool = False) -> None:
    # Repeated after a subcommand, the options must not reset a value given before it.
    default = argparse.SUPPRESS if repeated else None
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="where sessions, attachments and settings live (env SCOUT_DESK_DATA_DIR)",
    )
    parser.add_argument(
        "--model",
        metavar="DIR",
        default=default,
        help="the Llama 4 model folder (env SCOUT_DESK_MODEL)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options plus every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="scout-desk",
        description="Question images, video and documents with Llama 4 Scout on your own machine. "
        "With no subcommand, opens the window (FILE arguments open in a new chat).",
    )
    parser.add_argument("--version", action="version", version=f"scout-desk {__version__}")
    _add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _available_subcommands().items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        # The global options are accepted after the subcommand too (`scout-desk ask --model X`).
        _add_global_options(sub, repeated=True)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scout-desk", add_help=False)
    _add_global_options(parser)
    parser.add_argument("files", nargs="*", type=Path)
    return parser


def _first_positional(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option or an option's value."""
    takes_value = {"--data-dir", "--model"}
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in takes_value:
            skip_next = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `scout-desk` with `argv` (default: sys.argv[1:]) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = _first_positional(argv)
    wants_help_or_version = any(a in ("-h", "--help", "--version") for a in argv)
    if wants_help_or_version or (first is not None and first in _available_subcommands()):
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # only global options: fall through to the GUI
            return _run_gui(_gui_parser().parse_args(argv))
        module_name = _available_subcommands()[args.command][0]
        return int(importlib.import_module(module_name).run(args))
    return _run_gui(_gui_parser().parse_args(argv))


def _run_gui(args: argparse.Namespace) -> int:
    from app.ui.shell.application import run_gui  # PySide6 only; torch stays unloaded

    missing = [f for f in args.files if not f.exists()]
    if missing:
        print(f"scout-desk: {missing[0]}: no such file or folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_gui(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        files=[f.resolve() for f in args.files],
        model_dir=Path(args.model) if args.model else None,
    )


def entry() -> None:
    """The `scout-desk` command: `main`, then exit with its code.

    After Ctrl+C (exit 130) the process ends at once, once its output and logs are flushed:
    everything is saved and closed by then, and Python's own shutdown (unloading torch and
    transformers) takes about 1.7 s on 2 cores, which would push a Ctrl+C past the 2 s users are
    promised (ARCHITECTURE: exit codes).
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        import logging
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
