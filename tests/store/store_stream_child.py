"""Ownership-test child: streams one answer into the store, one checkpoint per line of stdin.

Run as `python store_stream_child.py DATA_DIR` with the repository root on PYTHONPATH. It prints
`READY <session id> <answer id>` once the answer is begun, then for every line read:
  `C <text>`  checkpoint the answer with <text>; prints `OK` or `ERR <error class> <sentence>`
  `F <text>`  finish it (eos) with <text>; prints `OK`, then exits 0
Like the crash child it imports only the store, so it starts fast.
"""

from __future__ import annotations

import sys

from app.core.messages import StopReason
from app.store.db import StoreError
from app.store.sessions import SessionStore


def main(data_dir: str) -> None:
    """Begin an answer, then checkpoint or finish it as the parent says."""
    store = SessionStore.open(data_dir)
    session = store.create_session()
    store.add_user_message(session.id, "tell me a long story")
    answer = store.begin_assistant_message(session.id)
    print("READY", session.id, answer.id, flush=True)
    for line in sys.stdin:
        command, _, text = line.rstrip("\n").partition(" ")
        try:
            if command == "C":
                store.checkpoint_message(answer.id, text)
            else:
                store.finish_message(answer.id, text, StopReason.EOS)
        except StoreError as error:
            print("ERR", type(error).__name__, error.message, flush=True)
            continue
        print("OK", flush=True)
        if command == "F":
            break
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
