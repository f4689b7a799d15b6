"""How an answer given chunk by chunk is stored: the combined answer, then every chunk's notes."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.chunking import PartialAnswer, is_irrelevant

#: Opens the stored notes; the message bubble folds everything from here on.
NOTES_HEADING = "### Notes taken chunk by chunk"
_MARKER = f"\n\n---\n\n{NOTES_HEADING}\n"


def chunked_answer_text(
    answer: str,
    notes: Sequence[PartialAnswer],
    chunks: int,
    *,
    stopped: str = "",
) -> str:
    """The message text of an answer given chunk by chunk.

    Args:
        answer: the combined answer ("" when the run stopped before combining).
        notes: each chunk's answer, in order (kept even when it says nothing relevant).
        chunks: how many chunks the documents were cut into.
        stopped: a sentence saying why the run ended early ("" when it finished).

    Returns:
        Markdown: the answer, a one-line note, then the notes under `NOTES_HEADING`.
    """
    head = answer.strip() or "*No combined answer: the run ended before the notes were combined.*"
    word = "chunk" if chunks == 1 else "chunks"
    note = f"*{stopped}*" if stopped else f"*Answered chunk by chunk, in {chunks} {word}.*"
    if not notes:
        return f"{head}\n\n{note}"
    listed = "\n\n".join(
        f"**{i}. {n.label or 'part ' + str(i)}**\n\n"
        + ("*nothing relevant*" if is_irrelevant(n.text) else n.text.strip() or "*(no answer)*")
        for i, n in enumerate(notes, 1)
    )
    return f"{head}\n\n{note}{_MARKER}\n{listed}"


def split_chunk_notes(text: str) -> tuple[str, str]:
    """Split a stored answer into what is shown and the folded notes.

    Args:
        text: a message's text.

    Returns:
        (answer, notes); notes is "" for an ordinary answer.
    """
    at = text.find(_MARKER)
    if at < 0:
        return text, ""
    return text[:at], text[at + len(_MARKER) :].strip("\n")
