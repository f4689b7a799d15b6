"""Map-reduce chunking: budgets kept, headers never parted from their text, prompts that fit."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.chunking import (
    NOTHING_RELEVANT,
    Chunk,
    PartialAnswer,
    is_irrelevant,
    map_prompt,
    plan_map,
    plan_reduce,
    reduce_prompt,
    split_sections,
)
from app.core.documents import Document, DocumentSource, Section

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: words and punctuation marks (a real one is passed in the app)."""
    return len(_TOKEN.findall(text))


def _header_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n")) if line.startswith("--- file: ")]


def _pages(count: int, words: int) -> list[Section]:
    return [
        Section("report.pdf", " ".join(f"w{page}x{i}" for i in range(words)), page=page)
        for page in range(1, count + 1)
    ]


def test_pages_are_packed_whole_within_the_budget() -> None:
    chunks = split_sections(_pages(10, 40), 170, count_tokens)  # 54 tokens a page

    assert all(chunk.tokens <= 170 for chunk in chunks)
    assert [len(c.sections) for c in chunks] == [3, 3, 3, 1]
    assert [(c.index, c.total) for c in chunks] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert chunks[0].label == "report.pdf pp. 1–3"
    assert chunks[3].label == "report.pdf p. 10"
    assert chunks[0].text.split("\n")[0] == "--- file: report.pdf, page 1 ---"


def test_a_long_file_is_cut_between_lines_and_each_piece_is_citable() -> None:
    code = "".join(f"line_{n} = {n}\n" for n in range(1, 201))
    chunks = split_sections([Section("src/app/big.py", code)], 120, count_tokens)

    assert len(chunks) > 1
    assert all(chunk.tokens <= 120 for chunk in chunks)
    pieces = [s for c in chunks for s in c.sections]
    assert "".join(p.text for p in pieces) == code
    for piece in pieces:  # each piece says where it starts
        first = piece.text.split("\n")[0]
        assert first == f"line_{piece.first_line} = {piece.first_line}"
    assert chunks[1].text.startswith(f"--- file: src/app/big.py, from line {pieces[1].first_line}")


def test_line_numbers_continue_across_pieces() -> None:
    code = "".join(f"v{n} = {n}\n" for n in range(1, 101))
    chunks = split_sections([Section("a.py", code)], 100, count_tokens, number_lines=True)

    numbered = [line for c in chunks for line in c.text.split("\n") if not line.startswith("---")]
    assert [line for line in numbered if line] == [f"{n}: v{n} = {n}" for n in range(1, 101)]


def test_a_single_huge_line_is_cut_inside_it() -> None:
    minified = "var a=1;" * 2_000
    chunks = split_sections([Section("app.min.js", minified)], 200, count_tokens)

    assert all(chunk.tokens <= 200 for chunk in chunks)
    assert "".join(s.text for c in chunks for s in c.sections) == minified


def test_empty_sections_are_left_out() -> None:
    chunks = split_sections([Section("scan.pdf", "  \n", page=1)], 100, count_tokens)

    assert chunks == []


def test_a_budget_too_small_for_anything_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        split_sections(_pages(1, 5), 10, count_tokens)


@given(
    texts=st.lists(
        st.text(st.sampled_from("ab c\n.,"), min_size=0, max_size=400), min_size=1, max_size=8
    ),
    budget=st.integers(min_value=40, max_value=300),
)
def test_every_chunk_fits_and_every_header_keeps_its_text(texts: list[str], budget: int) -> None:
    sections = [Section(f"f{i}.txt", text) for i, text in enumerate(texts)]

    chunks = split_sections(sections, budget, count_tokens)

    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text) <= budget
        assert _header_lines(chunk.text)[0] == 0  # a chunk opens with a header
        assert len(_header_lines(chunk.text)) == len(chunk.sections)
    for i, text in enumerate(texts):
        pieces = [s.text for c in chunks for s in c.sections if s.file == f"f{i}.txt"]
        assert "".join(pieces) == (text if text.strip() else "")


def test_map_prompts_fit_the_context() -> None:
    document = Document("report.pdf", DocumentSource.PDF, tuple(_pages(30, 50)), page_count=30)
    question = "What changed in the outlook between the quarters?"

    chunks = plan_map(question, [document], 400, count_tokens)

    assert len(chunks) > 1
    for chunk in chunks:
        prompt = map_prompt(question, chunk)
        assert count_tokens(prompt) <= 400
        assert f"part {chunk.index} of {chunk.total}" in prompt
        assert question in prompt and chunk.text in prompt


def test_reduce_keeps_labels_and_drops_parts_with_nothing() -> None:
    answers = [
        PartialAnswer("report.pdf pp. 1–3", "Revenue rose [report.pdf p. 2]."),
        PartialAnswer("report.pdf pp. 4–6", f"{NOTHING_RELEVANT}."),
        PartialAnswer("report.pdf pp. 7–9", "Costs fell [report.pdf p. 8]."),
    ]

    prompt = reduce_prompt("How did the year go?", answers)

    assert "### Notes on report.pdf pp. 1–3\nRevenue rose [report.pdf p. 2]." in prompt
    assert "pp. 4–6" not in prompt
    assert prompt.index("pp. 1–3") < prompt.index("pp. 7–9")
    assert "Question: How did the year go?" in prompt
    assert is_irrelevant(" nothing relevant ") and not is_irrelevant("Nothing relevant here: x")


def test_reduce_prompt_without_useful_notes_says_so() -> None:
    prompt = reduce_prompt("q?", [PartialAnswer("a", NOTHING_RELEVANT)])

    assert "No part of the documents said anything about the question." in prompt


def test_plan_reduce_groups_answers_so_each_prompt_fits() -> None:
    answers = [PartialAnswer(f"part {i}", "word " * 60) for i in range(10)]

    groups = plan_reduce("Summarise.", answers, 300, count_tokens)

    assert len(groups) > 1
    assert [a for group in groups for a in group] == answers
    for group in groups:
        assert count_tokens(reduce_prompt("Summarise.", group)) <= 300


def test_a_chunk_label_spans_files() -> None:
    chunk = Chunk(1, 1, (Section("src/a.py", "x"), Section("src/z.py", "y")), "", 0)

    assert chunk.label == "src/a.py … src/z.py"
