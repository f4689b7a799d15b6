"""Citations: ask the model to name pages and files, and find those names in its answers."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.core.documents import Document, DocumentSource


@dataclass(frozen=True)
class Citation:
    """A place an answer cites, found by `find_citations`.

    Attributes:
        start: offset in the answer where the citation text starts (inside its brackets).
        end: offset just past it (`text[start:end]` is e.g. "report.pdf p. 12").
        file: the cited file, as attached ("report.pdf", "src/app/main.py").
        page: 1-based page, when one is cited.
        line: 1-based line, when one is cited.
    """

    start: int
    end: int
    file: str
    page: int | None = None
    line: int | None = None


def citation_instruction(documents: Sequence[Document], *, number_lines: bool = False) -> str:
    """The sentence that asks the model to cite, with examples taken from these documents.

    Args:
        documents: the documents of the message (their names make the examples concrete).
        number_lines: whether the files were inlined with line numbers (then lines are asked).

    Returns:
        A paragraph to append after the documents ("" when there are none).
    """
    if not documents:
        return ""
    examples: list[str] = []
    for document in documents:
        first = next(iter(document.text_sections()), None)
        if document.source is DocumentSource.PDF:
            page = first.page if first and first.page else 1
            examples.append(f"[{document.name} p. {page}]")
        elif document.source is DocumentSource.FOLDER and first is not None:
            suffix = ":12" if number_lines else ""
            examples.append(f"[{first.file}{suffix}]")
        else:
            examples.append(f"[{document.name}]")
    shown = ", ".join(dict.fromkeys(examples))
    lines = " and the line number after a colon" if number_lines else ""
    return (
        "\n\nWhen you use the documents above, cite where each fact comes from in square "
        f"brackets right after it, like {shown}: the name exactly as in its '--- file: ---' "
        f"header, with the page number for PDFs{lines}. Cite only places you actually read."
    )


_BRACKETS = re.compile(r"\[([^\[\]\n]{1,400})\](?!\()|\(([^()\[\]\n]{1,400})\)")
# Code and markdown link targets: nothing in them is a citation.
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`|\]\([^)\n]*\)", re.DOTALL)
_RANGE = r"(?:\s*(?:-|–|—|to)\s*\d+)?"
_PART = re.compile(
    r"^(?P<file>.*?)"
    r"(?:(?:\s*,\s*|\s+|^)(?:pp?\.|pages?|pg\.)\s*(?P<page>\d{1,6})" + _RANGE
    + r"|:(?P<line>\d{1,7})" + _RANGE
    + r"|(?:\s*,\s*|\s+)(?:lines?|l\.)\s*(?P<line2>\d{1,7})" + _RANGE
    + r")?$",
    re.IGNORECASE,
)  # fmt: skip
_FILE_LIKE = re.compile(r"^[^\s\"'<>|*?][^\"<>|*?]{0,250}\.[A-Za-z][A-Za-z0-9]{0,9}$")


def find_citations(text: str, known_files: Collection[str] | None = None) -> list[Citation]:
    """Find the citations in an answer, to turn them into links.

    Accepts what models write: "[report.pdf p. 12]", "[report.pdf, page 12]", "[report.pdf,
    pp. 3-4]", "[src/app/main.py:40]", "[src/app/main.py:40-52]", "[main.py, line 40]",
    "[notes.docx]", several separated by ";" in one pair of brackets, and "[p. 12]" when one
    file is known. Markdown links and code are left alone.

    Args:
        text: the answer.
        known_files: the names and relative paths of the attached documents' files. With it, only
            those files count (a shortened path like "main.py" maps to "src/app/main.py" when
            that is unambiguous) and parentheses are accepted too; without it, anything that
            looks like a file name with an extension counts, in square brackets only.

    Returns:
        The citations in order of appearance; ranges cite their first page or line.
    """
    known = _KnownFiles(known_files) if known_files is not None else None
    code = [match.span() for match in _CODE.finditer(text)]
    found: list[Citation] = []
    for match in _BRACKETS.finditer(text):
        if any(start <= match.start() < end for start, end in code):
            continue
        square = match.group(1) is not None
        if not square and known is None:
            continue
        group = 1 if square else 2
        offset = match.start(group)
        for part_start, part in _parts(match.group(group)):
            citation = _parse_part(part, offset + part_start, known)
            if citation is not None:
                found.append(citation)
    return found


def _parts(inner: str) -> list[tuple[int, str]]:
    """The ";"-separated parts of a bracket's content, each stripped, with its offset."""
    parts = []
    position = 0
    for piece in inner.split(";"):
        stripped = piece.strip()
        if stripped:
            parts.append((position + piece.index(stripped), stripped))
        position += len(piece) + 1
    return parts


def _parse_part(part: str, start: int, known: _KnownFiles | None) -> Citation | None:
    match = _PART.match(part)
    if match is None:
        return None
    name = match["file"].strip().strip(",").strip().strip("`'\"")
    page = int(match["page"]) if match["page"] else None
    line_text = match["line"] or match["line2"]
    line = int(line_text) if line_text else None
    if page == 0 or line == 0:
        return None
    if not name:
        # "[p. 12]": only meaningful when a single file could be meant.
        if page is None or known is None or known.single is None:
            return None
        return Citation(start, start + len(part), known.single, page, None)
    file = known.resolve(name) if known is not None else _file_like(name)
    if file is None:
        return None
    return Citation(start, start + len(part), file, page, line)


def _file_like(name: str) -> str | None:
    if "://" in name or not _FILE_LIKE.match(name) or name.replace(".", "").isdigit():
        return None
    return name


class _KnownFiles:
    """The attached files, looked up exactly, then case-blind, then by a unique path ending."""

    def __init__(self, files: Collection[str]) -> None:
        self.exact = set(files)
        self.folded = {f.casefold(): f for f in files}
        self.single = next(iter(files)) if len(self.exact) == 1 else None
        self.by_tail: dict[str, list[str]] = {}
        for f in files:
            parts = PurePosixPath(f).parts
            for i in range(1, len(parts)):
                self.by_tail.setdefault("/".join(parts[i:]).casefold(), []).append(f)

    def resolve(self, name: str) -> str | None:
        cleaned = name.removeprefix("./")
        if cleaned in self.exact:
            return cleaned
        folded = cleaned.casefold()
        if folded in self.folded:
            return self.folded[folded]
        candidates = self.by_tail.get(folded, [])
        return candidates[0] if len(candidates) == 1 else None
