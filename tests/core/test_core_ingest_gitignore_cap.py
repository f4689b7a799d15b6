"""A hostile .gitignore cannot stall a folder drop: its rules are capped, and the report says so.

pathspec checks every rule against every path, so a 40,000-line .gitignore over 2,000 files took
tens of seconds. At most `MAX_GITIGNORE_RULES` rules are in force at once (and only the first
`MAX_GITIGNORE_BYTES` of a file are read); the rules left out are named in the folder's notes,
which the chip, the per-file report and `ask --doc --json` show.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.core.documents import Document, document_from_json
from app.core.ingest.folder import (
    MAX_GITIGNORE_BYTES,
    MAX_GITIGNORE_RULES,
    FolderLimits,
    ingest_folder,
)
from app.core.messages import Attachment, AttachmentStatus
from app.store.blobs import BlobStore


def _ingest(root: Path, blobs: BlobStore, limits: FolderLimits | None = None) -> Attachment:
    return ingest_folder(root, root.name, str(root), blobs, limits or FolderLimits())


def _read(blobs: BlobStore, att: Attachment) -> Document:
    assert att.status is AttachmentStatus.READY, att.detail
    return document_from_json(blobs.read(att.sha256))


def _reasons(document: Document) -> dict[str, str]:
    return {e.path: f"{e.status.value}: {e.reason}" for e in document.entries}


def test_a_40000_rule_gitignore_is_capped_and_the_report_says_so(files: Path, blobs: BlobStore):
    root = files / "repo"
    (root / "src").mkdir(parents=True)
    rules = ["early.txt", *(f"p{i}.tmp" for i in range(39_998)), "late.txt"]
    (root / ".gitignore").write_text("\n".join(rules) + "\n", encoding="utf-8")
    (root / "early.txt").write_text("ignored by the first rule\n")
    (root / "late.txt").write_text("the rule for me is beyond the cap\n")
    for i in range(1_997):  # 2,000 files in all, with the three above
        (root / "src" / f"f{i}.py").write_text(f"x = {i}\n")

    start = time.perf_counter()
    att = _ingest(root, blobs)
    print(f"\n40,000-rule .gitignore over 2,000 files: {time.perf_counter() - start:.2f} s")

    document = _read(blobs, att)
    reasons = _reasons(document)
    assert reasons["early.txt"] == "skipped: ignored by .gitignore"
    assert reasons["late.txt"] == "used: "  # the rule for it was one of those not applied
    assert reasons["src/f1996.py"] == "used: "
    note = (
        f".gitignore: only the first {MAX_GITIGNORE_RULES:,} of its 40,000 rules were applied "
        f"(at most {MAX_GITIGNORE_RULES:,} .gitignore rules are in force at once), so files the "
        "other rules would ignore are included"
    )
    assert document.notes == (note,)
    assert note in att.detail


def test_the_cap_counts_the_rules_of_every_gitignore_above_a_file(files: Path, blobs: BlobStore):
    root = files / "repo"
    (root / "sub").mkdir(parents=True)
    (root / ".gitignore").write_text("# rules for the repo\n\na1\na2\na3\n")
    (root / "sub" / ".gitignore").write_text("b1\nb2\n# a comment is no rule\nb3\nb4\n")
    for name in ("a1", "a3", "sub/b2", "sub/b3", "sub/keep"):
        (root / name).write_text("text\n")
    (root / "other").mkdir()
    (root / "other" / ".gitignore").write_text("c1\nc2\n")  # a sibling's rules do not count
    (root / "other" / "c2").write_text("text\n")

    att = _ingest(root, blobs, FolderLimits(max_gitignore_rules=5))

    document = _read(blobs, att)
    reasons = _reasons(document)
    assert reasons["a3"] == "skipped: ignored by .gitignore"
    assert reasons["sub/b2"] == "skipped: ignored by .gitignore"
    assert reasons["sub/b3"] == "used: "
    assert reasons["other/c2"] == "skipped: ignored by .gitignore"
    assert document.notes == (
        "sub/.gitignore: only the first 2 of its 4 rules were applied (at most 5 .gitignore rules "
        "are in force at once), so files the other rules would ignore are included",
    )


def test_only_the_first_part_of_a_huge_gitignore_is_read(files: Path, blobs: BlobStore):
    root = files / "repo"
    root.mkdir()
    padding = "# " + "x" * 98 + "\n"
    body = "early.txt\n" + padding * (MAX_GITIGNORE_BYTES * 13 // 10 // len(padding)) + "late.txt\n"
    (root / ".gitignore").write_text(body)
    (root / "early.txt").write_text("text\n")
    (root / "late.txt").write_text("text\n")

    att = _ingest(root, blobs)

    document = _read(blobs, att)
    reasons = _reasons(document)
    assert reasons["early.txt"] == "skipped: ignored by .gitignore"
    assert reasons["late.txt"] == "used: "
    assert document.notes == (
        ".gitignore: only its first 1.0 MB was read (the file has 1.3 MB), so files its later "
        "rules would ignore are included",
    )


def test_every_limit_hit_gets_its_note(files: Path, blobs: BlobStore):
    root = files / "repo"
    root.mkdir()
    (root / ".gitignore").write_text("a\nb\n")
    for i in range(6):
        (root / f"{i}.txt").write_text("text\n")

    att = _ingest(root, blobs, FolderLimits(max_entries=4, max_gitignore_rules=1))

    notes = _read(blobs, att).notes
    assert len(notes) == 2
    assert notes[0].startswith(".gitignore: only the first 1 of its 2 rules were applied")
    assert notes[1] == "stopped after 4 entries"
