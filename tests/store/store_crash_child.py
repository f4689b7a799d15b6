"""Crash-test child: writes to the store in a loop and acknowledges each call once it returned.

Run as `python store_crash_child.py DATA_DIR SEED [PACE_S]` with the repository root on
PYTHONPATH; PACE_S (default 0) spaces checkpoints up to that many seconds apart, as a model
streaming an answer does, which leaves other processes time to open the store mid-answer. Every
line on stdout is printed only after the call it reports has returned (so is committed):
  READY <session id>
  U <message id> <sha256 of text> [<blob sha256>]   a user message (with an attachment)
  C <message id> <length> <sha256 of text>          an answer checkpoint
  F <message id> <sha256 of text>                   a finished answer (stop reason eos)
It imports only the store (no torch, no Qt), so it starts fast; the parent SIGKILLs it.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, StopReason
from app.store.sessions import SessionStore


def digest(text: str) -> str:
    """Return the SHA-256 of `text` as UTF-8, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ack(*fields: str) -> None:
    """Print one acknowledgement line and flush it, as a single write."""
    sys.stdout.write(" ".join(fields) + "\n")
    sys.stdout.flush()


def main(data_dir: str, seed: int, pace_s: float = 0.0) -> None:
    """Write questions and streamed answers until killed."""
    rng = random.Random(seed)
    store = SessionStore.open(data_dir)
    session = store.create_session()
    ack("READY", session.id)
    for n in range(1_000_000):
        text = f"question {seed}-{n} é " + "q" * rng.randint(0, 300)
        attachments = []
        if rng.random() < 0.3:
            blob = rng.randbytes(rng.randint(1, 20_000))
            sha = store.blobs.put_bytes(blob)
            attachments.append(
                Attachment(
                    "file.bin", AttachmentKind.TEXT, AttachmentStatus.READY, sha256=sha,
                    size=len(blob),
                )
            )  # fmt: skip
        message = store.add_user_message(session.id, text, attachments)
        ack("U", message.id, digest(text), *(a.sha256 or "" for a in attachments))
        answer = store.begin_assistant_message(session.id)
        streamed = ""
        for k in range(rng.randint(1, 6)):
            if pace_s:
                time.sleep(rng.uniform(0, pace_s))
            streamed += f"chunk {k} " + "a" * rng.randint(0, 400)
            store.checkpoint_message(answer.id, streamed)
            ack("C", answer.id, str(len(streamed)), digest(streamed))
        streamed += " done."
        store.finish_message(answer.id, streamed, StopReason.EOS)
        ack("F", answer.id, digest(streamed))
        if rng.random() < 0.1:
            session = store.create_session()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
