"""`scout-desk sessions list | export | import`: saved chats from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.commands.common import fail
from app.commands.terminal import json_text, printable
from app.core import paths
from app.store.db import StoreError
from app.store.sessions import SessionStore

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `list`, `export` and `import` under `sessions`."""
    actions = parser.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list saved chats, newest first")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.add_argument("--trash", action="store_true", help="list chats in the trash instead")
    export = actions.add_parser("export", help="write one chat to a file")
    export.add_argument("id", help="the session id (see `sessions list`)")
    export.add_argument("--format", choices=("md", "html", "json"), required=True)
    export.add_argument("-o", "--output", required=True, type=Path, metavar="PATH")
    imported = actions.add_parser("import", help="read a chat exported as JSON (as a new chat)")
    imported.add_argument("path", type=Path)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; expected failures print one sentence and return an exit code."""
    try:
        store = SessionStore.open(paths.data_dir(args.data_dir))
    except (StoreError, paths.DataDirError) as error:
        return fail(str(error), EXIT_FAILED)
    try:
        return _ACTIONS[args.sessions_command](store, args)
    except StoreError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    finally:
        store.close()


def _list(store: SessionStore, args: argparse.Namespace) -> int:
    sessions = store.list_sessions(trashed=args.trash)
    if args.json:
        rows = [
            {
                "id": s.id,
                "title": s.title,
                "created_at": s.created_at,
                "updated_at": s.updated_at,
                "message_count": s.message_count,
            }
            for s in sessions
        ]
        # The store reads every time back finite and in range, so this is strict JSON.
        print(json_text(rows))
        return EXIT_OK
    if not sessions:
        print("No saved chats." if not args.trash else "The trash is empty.")
    for s in sessions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated_at))
        print(f"{printable(s.id)}  {when}  {s.message_count:>4} msgs  {printable(s.title)}")
    return EXIT_OK


def _export(store: SessionStore, args: argparse.Namespace) -> int:
    # Here, not at the top: the import schema (pydantic) would double the start-up of `list`.
    from app.store.export import export_session

    if not any(s.id == args.id for s in store.list_sessions()):
        return fail(f"no saved chat has the id {args.id!r}", EXIT_BAD_INPUT)
    export_session(store, args.id, args.format, args.output)
    print(f"Wrote {printable(str(args.output))}")
    return EXIT_OK


def _import(store: SessionStore, args: argparse.Namespace) -> int:
    from app.store.export import import_session

    if not args.path.is_file():
        return fail(f"{args.path}: no such file", EXIT_BAD_INPUT)
    session = import_session(store, args.path)
    print(f"Imported {printable(str(args.path))} as {session.id} ({printable(session.title)})")
    return EXIT_OK


_ACTIONS = {"list": _list, "export": _export, "import": _import}
