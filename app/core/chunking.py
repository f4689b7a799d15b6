"""Map-reduce over documents too long for one prompt: chunks on page/file boundaries, prompts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.documents import Document, Section, format_section

#: The map step's answer when a chunk says nothing about the question; `is_irrelevant` sees it.
NOTHING_RELEVANT = "NOTHING RELEVANT"

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    """One map step's share of the documents.

    Attributes:
        index: 1-based position among the chunks.
        total: how many chunks there are.
        sections: the sections (or pieces of sections) it holds, in order.
        text: the sections as they enter the prompt, each under its "--- file: ... ---" header.
        tokens: `count_tokens(text)`.
    """

    index: int
    total: int
    sections: tuple[Section, ...]
    text: str
    tokens: int

    @property
    def label(self) -> str:
        """Where the chunk lies, for progress and the reduce step ("report.pdf pp. 1–12")."""
        return describe_sections(self.sections)


@dataclass(frozen=True)
class PartialAnswer:
    """What the map step answered for one chunk."""

    label: str
    text: str


def split_sections(
    sections: Sequence[Section],
    max_tokens: int,
    count_tokens: TokenCounter,
    *,
    number_lines: bool = False,
) -> list[Chunk]:
    """Pack sections into chunks of at most `max_tokens`, breaking only between sections.

    A section too long on its own is cut between paragraphs (or lines, or at worst inside a
    line); each piece keeps its own header ("--- file: src/big.py, from line 812 ---"), so a
    header is never parted from its text and every piece stays citable.

    Args:
        sections: the documents' sections in reading order (`Document.text_sections()`).
        max_tokens: the budget for a chunk's text.
        count_tokens: the model's tokenizer (`len(tokenizer.encode(text))`).
        number_lines: inline files with line numbers (see `format_section`).

    Returns:
        The chunks, in order; none when there is no text.

    Raises:
        ValueError: `max_tokens` is too small to hold even a header and a few words.
    """
    if max_tokens < 32:
        raise ValueError(f"max_tokens must be at least 32, not {max_tokens}")
    pieces: list[tuple[Section, str, int]] = []
    for section in sections:
        if not section.text.strip():
            continue
        for piece in _fit(section, max_tokens, count_tokens, number_lines):
            block = format_section(piece, number_lines=number_lines)
            pieces.append((piece, block, count_tokens(block)))
    groups: list[list[tuple[Section, str, int]]] = []
    used = 0
    for item in pieces:
        # +1 for the newline that joins blocks; the real count is checked below.
        if groups and used + 1 + item[2] <= max_tokens:
            groups[-1].append(item)
            used += 1 + item[2]
        else:
            groups.append([item])
            used = item[2]
    groups = _verified(groups, max_tokens, count_tokens)
    total = len(groups)
    return [
        Chunk(i, total, tuple(p[0] for p in group), text, count_tokens(text))
        for i, group in enumerate(groups, 1)
        for text in ["\n".join(p[1] for p in group)]
    ]


def _verified(
    groups: list[list[tuple[Section, str, int]]], max_tokens: int, count_tokens: TokenCounter
) -> list[list[tuple[Section, str, int]]]:
    """Tokenizers are not quite additive across a join: move a last block on if a chunk is over."""
    result: list[list[tuple[Section, str, int]]] = []
    queue = list(groups)
    while queue:
        group = queue.pop(0)
        while len(group) > 1 and count_tokens("\n".join(p[1] for p in group)) > max_tokens:
            moved = group.pop()
            if queue:
                queue[0] = [moved, *queue[0]]
            else:
                queue.append([moved])
        result.append(group)
    return result


def _fit(
    section: Section, max_tokens: int, count_tokens: TokenCounter, number_lines: bool
) -> list[Section]:
    """The section, or pieces of it, each of which fits `max_tokens` with its header."""
    if count_tokens(format_section(section, number_lines=number_lines)) <= max_tokens:
        return [section]
    units = _units(section.text)
    if len(units) == 1:
        return _cut_line(section, max_tokens, count_tokens, number_lines)
    pieces: list[Section] = []
    start = 0
    first_line = section.first_line
    while start < len(units):
        end = _longest_fitting(
            units, start, section, first_line, max_tokens, count_tokens, number_lines
        )
        text = "".join(units[start:end])
        piece = Section(section.file, text, section.page, first_line)
        if (
            end == start + 1
            and count_tokens(format_section(piece, number_lines=number_lines)) > max_tokens
        ):
            pieces.extend(_fit(piece, max_tokens, count_tokens, number_lines))
        else:
            pieces.append(piece)
        first_line += text.count("\n")
        start = end
    return pieces


def _longest_fitting(
    units: list[str],
    start: int,
    section: Section,
    first_line: int,
    max_tokens: int,
    count_tokens: TokenCounter,
    number_lines: bool,
) -> int:
    """The largest `end` such that units[start:end] fits (at least start + 1), by bisection."""
    low, high = start + 1, len(units)
    while low < high:
        middle = (low + high + 1) // 2
        piece = Section(section.file, "".join(units[start:middle]), section.page, first_line)
        if count_tokens(format_section(piece, number_lines=number_lines)) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


_PARAGRAPH_END = re.compile(r"(?<=\n\n)")


def _units(text: str) -> list[str]:
    """Paragraphs (blank-line separated) when there are several, else lines; ends kept."""
    paragraphs = [p for p in _PARAGRAPH_END.split(text) if p]
    if len(paragraphs) > 1:
        return paragraphs
    return text.splitlines(keepends=True) or [text]


def _cut_line(
    section: Section, max_tokens: int, count_tokens: TokenCounter, number_lines: bool
) -> list[Section]:
    """Cut one over-long line (a minified file) into pieces by characters."""
    text = section.text
    pieces: list[Section] = []
    start = 0
    while start < len(text):
        low, high = start + 1, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            piece = Section(section.file, text[start:middle], section.page, section.first_line)
            if count_tokens(format_section(piece, number_lines=number_lines)) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        pieces.append(Section(section.file, text[start:low], section.page, section.first_line))
        start = low
    return pieces


def describe_sections(sections: Sequence[Section]) -> str:
    """A short place name for a run of sections ("report.pdf pp. 3–9", "src/a.py … src/z.py")."""
    if not sections:
        return ""
    first, last = sections[0], sections[-1]
    if first.file == last.file:
        if first.page is not None and last.page is not None and first.page != last.page:
            return f"{first.file} pp. {first.page}–{last.page}"
        if first.page is not None:
            return f"{first.file} p. {first.page}"
        return first.file
    return f"{_place(first)} … {_place(last)}"


def _place(section: Section) -> str:
    return section.file if section.page is None else f"{section.file} p. {section.page}"


def plan_map(
    question: str,
    documents: Sequence[Document],
    max_prompt_tokens: int,
    count_tokens: TokenCounter,
    *,
    number_lines: bool = False,
) -> list[Chunk]:
    """Chunks such that `map_prompt(question, chunk)` stays within `max_prompt_tokens`.

    Args:
        question: the user's question.
        documents: the documents to go through.
        max_prompt_tokens: the usable context minus the answer's room (max_new_tokens).
        count_tokens: the model's tokenizer.
        number_lines: inline files with line numbers.

    Returns:
        The chunks.

    Raises:
        ValueError: the question alone leaves no room for document text.
    """
    empty = Chunk(1, 1, (), "", 0)
    overhead = count_tokens(map_prompt(question, empty)) + 8  # +8: joins, rounding
    sections = [s for d in documents for s in d.text_sections()]
    return split_sections(
        sections, max_prompt_tokens - overhead, count_tokens, number_lines=number_lines
    )


def map_prompt(question: str, chunk: Chunk) -> str:
    """The user message for one map step: part of the documents and the question.

    Args:
        question: the user's question.
        chunk: the part to read.

    Returns:
        The prompt text.
    """
    return (
        f"You are reading part {chunk.index} of {chunk.total} of some documents "
        f"({chunk.label or 'empty'}). Only this part is shown.\n\n"
        f"{chunk.text}\n\n"
        f"Question: {question}\n\n"
        "Answer from this part only, briefly, citing pages or files in square brackets like "
        "[report.pdf p. 12] or [src/app/main.py]. If this part says nothing that helps, reply "
        f"with exactly {NOTHING_RELEVANT}."
    )


def is_irrelevant(answer: str) -> bool:
    """Whether a map step answered that its chunk holds nothing about the question."""
    return answer.strip().strip(".").upper() == NOTHING_RELEVANT


def reduce_prompt(question: str, partial_answers: Sequence[PartialAnswer]) -> str:
    """The user message that combines the map steps' answers into one.

    Args:
        question: the user's question.
        partial_answers: the map answers, in document order (irrelevant ones may be left out).

    Returns:
        The prompt text.
    """
    useful = [p for p in partial_answers if not is_irrelevant(p.text)]
    if not useful:
        notes = "(No part of the documents said anything about the question.)"
    else:
        notes = "\n\n".join(f"### Notes on {p.label}\n{p.text.strip()}" for p in useful)
    return (
        "The documents were too long to read at once, so they were read part by part. These "
        f"are the notes taken on each part:\n\n{notes}\n\n"
        f"Question: {question}\n\n"
        "Write one complete answer from these notes. Keep every citation in square brackets "
        "exactly as written; do not invent new ones. Say so if the notes do not answer it."
    )


def plan_reduce(
    question: str,
    partial_answers: Sequence[PartialAnswer],
    max_prompt_tokens: int,
    count_tokens: TokenCounter,
) -> list[list[PartialAnswer]]:
    """Group partial answers so that each group's `reduce_prompt` fits; one group: final step.

    With several groups, reduce each group, wrap each result as a `PartialAnswer` (label:
    `describe_sections` of its chunks, or "parts 1–8") and plan again, until one group is left.

    Args:
        question: the user's question.
        partial_answers: the map answers (irrelevant ones are dropped here).
        max_prompt_tokens: as for `plan_map`.
        count_tokens: the model's tokenizer.

    Returns:
        The groups, in order (a single answer too long on its own still forms its own group).
    """
    useful = [p for p in partial_answers if not is_irrelevant(p.text)]
    # Counted once each (re-tokenising a growing prompt would be quadratic), with a margin
    # for the joins; the overhead is the prompt around the notes.
    overhead = count_tokens(reduce_prompt(question, [])) + 16
    groups: list[list[PartialAnswer]] = []
    used = 0
    for answer in useful:
        tokens = count_tokens(f"### Notes on {answer.label}\n{answer.text.strip()}") + 2
        if groups and overhead + used + tokens <= max_prompt_tokens:
            groups[-1].append(answer)
            used += tokens
        else:
            groups.append([answer])
            used = tokens
    return groups or [[]]
