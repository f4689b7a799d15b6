"""Soak-test child: reads, or exports and re-imports, chats in a loop until it is killed.

Run as `python store_soak_child.py list|import DATA_DIR SEED` with the repository root on
PYTHONPATH (writers are `store_crash_child.py`).
  list    open the store (which finalises the answers of writers that are gone), list the
          chats, read a few, search, close; again. It prints nothing.
  import  export a random chat as JSON and import it back as a new chat, printing
          `I <new session id>` once the import returned (so is committed).
Any exception ends the child with a traceback and a non-zero status, which the soak reports.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from app.store.export import export_session, import_session
from app.store.sessions import SessionStore


def list_forever(data_dir: str, rng: random.Random) -> None:
    """Open, read and close the store over and over, as `scout-desk sessions list` does."""
    while True:
        with SessionStore.open(data_dir) as store:
            sessions = store.list_sessions()
            for session in rng.sample(sessions, min(3, len(sessions))):
                store.messages(session.id)
            store.search(rng.choice(["question", "chunk", "done", "é"]))


def import_forever(data_dir: str, rng: random.Random) -> None:
    """Round-trip random chats through a JSON export while the writers go on."""
    with SessionStore.open(data_dir) as store, tempfile.TemporaryDirectory() as scratch:
        while True:
            sessions = store.list_sessions()
            if not sessions:
                continue
            exported = Path(scratch) / "chat.json"
            export_session(store, rng.choice(sessions).id, "json", exported)
            info = import_session(store, exported)
            sys.stdout.write(f"I {info.id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    mode, folder, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"list": list_forever, "import": import_forever}[mode](folder, random.Random(seed))
