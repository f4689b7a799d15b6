"""Citations: the instruction to the model, and finding pages and files in realistic answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.core.citations import Citation, citation_instruction, find_citations
from app.core.documents import Document, DocumentSource, Section

PDF_ANSWER = """Revenue grew 12% year on year [report.pdf p. 3], driven mostly by the North
region [report.pdf, page 4]. Costs are broken down in the table on pages 7–8
[Report.pdf, pp. 7-8]; see also [notes.docx].

1. Rent rose [report.pdf p.12; notes.docx]
2. Staff stayed flat ([report.pdf p. 9])."""

CODE_ANSWER = """The entry point is `main()` in [src/app/main.py:40], which calls
`load_settings` [src/app/settings.py:12-30]. Errors are logged ([app/main.py, line 88]).

```python
x = data[src/app/main.py:1]  # not a citation: code
```

See the [docs](https://example.com/[a.py]) and [1] and [x, y] for details."""


def _cited(text: str, found: list[Citation]) -> list[tuple[str, str, int | None, int | None]]:
    return [(text[c.start : c.end], c.file, c.page, c.line) for c in found]


def test_pdf_pages_are_found_in_a_realistic_answer() -> None:
    found = find_citations(PDF_ANSWER, ["report.pdf", "notes.docx"])

    assert _cited(PDF_ANSWER, found) == [
        ("report.pdf p. 3", "report.pdf", 3, None),
        ("report.pdf, page 4", "report.pdf", 4, None),
        ("Report.pdf, pp. 7-8", "report.pdf", 7, None),
        ("notes.docx", "notes.docx", None, None),
        ("report.pdf p.12", "report.pdf", 12, None),
        ("notes.docx", "notes.docx", None, None),
        ("report.pdf p. 9", "report.pdf", 9, None),
    ]


def test_files_and_lines_are_found_and_code_and_links_are_not() -> None:
    known = ["src/app/main.py", "src/app/settings.py", "README.md"]

    found = find_citations(CODE_ANSWER, known)

    assert _cited(CODE_ANSWER, found) == [
        ("src/app/main.py:40", "src/app/main.py", None, 40),
        ("src/app/settings.py:12-30", "src/app/settings.py", None, 12),
        ("app/main.py, line 88", "src/app/main.py", None, 88),  # a shortened path
    ]


def test_without_known_files_anything_file_like_in_square_brackets_counts() -> None:
    text = "See [guide.md] and [chapter two] and [3.14] and (report.pdf p. 2) and [a.py:7]."

    found = find_citations(text)

    assert _cited(text, found) == [
        ("guide.md", "guide.md", None, None),
        ("a.py:7", "a.py", None, 7),
    ]


def test_link_targets_are_not_citations() -> None:
    assert find_citations("the [guide](https://x.org/[a.py]) says") == []


def test_unknown_or_ambiguous_files_are_not_links() -> None:
    known = ["src/a/util.py", "src/b/util.py", "report.pdf"]
    text = "[util.py:3] [other.pdf p. 2] [src/a/util.py:3] [p. 4]"

    found = find_citations(text, known)

    assert [(c.file, c.line) for c in found] == [("src/a/util.py", 3)]


def test_a_bare_page_cites_the_only_document() -> None:
    text = "It is on the cover [p. 1] and later (p. 5)."

    found = find_citations(text, ["report.pdf"])

    assert [(c.file, c.page) for c in found] == [("report.pdf", 1), ("report.pdf", 5)]


def test_page_zero_is_no_citation() -> None:
    assert find_citations("[report.pdf p. 0]", ["report.pdf"]) == []


@given(st.text(max_size=300))
def test_any_text_is_safe_and_spans_point_inside_it(text: str) -> None:
    for citation in find_citations(text, ["report.pdf", "src/x.py"]) + find_citations(text):
        assert 0 <= citation.start < citation.end <= len(text)
        assert citation.file in text[citation.start : citation.end] or citation.file in (
            "report.pdf",
            "src/x.py",
        )


def test_the_instruction_uses_the_documents_own_names() -> None:
    pdf = Document("report.pdf", DocumentSource.PDF, (Section("report.pdf", "x", page=2),))
    folder = Document("proj", DocumentSource.FOLDER, (Section("src/app/main.py", "y"),))

    plain = citation_instruction([pdf, folder])
    lines = citation_instruction([folder], number_lines=True)

    assert "like [report.pdf p. 2], [src/app/main.py]:" in plain
    assert "[src/app/main.py:12]" in lines and "line number" in lines
    assert citation_instruction([]) == ""
