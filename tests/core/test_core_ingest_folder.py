"""Folder ingest: one document per dropped folder, .gitignore honoured, hostile trees contained."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from PIL import Image

from app.core.documents import Document, EntryStatus, document_from_json
from app.core.ingest import ingest_path
from app.core.ingest.folder import FolderLimits, ingest_folder
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.store.blobs import BlobStore


def _only(attachments: list[Attachment]) -> Attachment:
    assert len(attachments) == 1
    return attachments[0]


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def _read(blobs: BlobStore, att: Attachment) -> Document:
    assert att.status is AttachmentStatus.READY, att.detail
    return document_from_json(blobs.read(att.sha256))


def _report(document: Document) -> dict[str, tuple[str, str]]:
    return {e.path: (e.status.value, e.reason) for e in document.entries}


def _symlink(link: Path, target: Path | str) -> None:
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("cannot create symlinks here")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_codebase_becomes_one_document_with_a_report(files: Path, blobs: BlobStore) -> None:
    root = _tree(
        files / "project",
        {
            "README.md": "# Project\n",
            "src/app/main.py": "def main():\n    return 42\n",
            "src/app/util.py": "X = 1\n",
            "src/.gitignore": "secret.txt\n",
            "src/secret.txt": "password",
            ".gitignore": "build/\n*.log\n!keep.log\n",
            "build/out.txt": "generated",
            "debug.log": "noise",
            "keep.log": "kept",
            ".git/config": "[core]",
            "logo.png": _png(),
            "blob.bin": b"\x00\x01\x02" * 10,
            "legacy.txt": "caf\xe9".encode("cp1252"),
            "empty.txt": "",
        },
    )

    att = _only(ingest_path(root, blobs))

    assert (att.name, att.kind, att.mime) == ("project", AttachmentKind.DOCUMENT, "inode/directory")
    document = _read(blobs, att)
    assert [s.file for s in document.sections] == [
        ".gitignore",
        "README.md",
        "keep.log",
        "legacy.txt",
        "src/.gitignore",
        "src/app/main.py",
        "src/app/util.py",
    ]
    assert document.sections[5].text == "def main():\n    return 42\n"
    assert document.sections[3].text == "café"
    report = _report(document)
    assert report[".git/"] == ("skipped", "version-control data")
    assert report["build/"] == ("skipped", "ignored by .gitignore")
    assert report["debug.log"] == ("skipped", "ignored by .gitignore")
    assert report["src/secret.txt"] == ("skipped", "ignored by .gitignore")
    assert report["logo.png"] == ("skipped", "an image (attach it on its own to show it)")
    assert report["blob.bin"] == ("skipped", "a binary file")
    assert report["empty.txt"] == ("skipped", "empty")
    assert report["legacy.txt"] == ("used", "not UTF-8: read as Windows-1252")
    assert report["src/app/main.py"] == ("used", "")
    assert att.detail == "7 files used, 7 skipped"
    assert {e.bytes for e in document.entries if e.path == "src/app/main.py"} == {26}


def test_caps_on_files_bytes_and_size_are_reported_per_file(files: Path, blobs: BlobStore) -> None:
    root = _tree(files / "many", {f"f{i}.txt": "x" * 10 for i in range(6)})
    (root / "big.txt").write_text("y" * 50)

    att = ingest_folder(
        root,
        "many",
        str(root),
        blobs,
        FolderLimits(max_files=4, max_total_bytes=35, max_file_bytes=40),
    )

    report = _report(_read(blobs, att))
    assert report["big.txt"] == ("skipped", "too large (50 bytes; the limit is 40 bytes a file)")
    assert [p for p, (status, _) in report.items() if status == "used"] == [
        "f0.txt",
        "f1.txt",
        "f2.txt",
    ]
    assert report["f3.txt"] == (
        "skipped",
        "over the limit of 35 bytes in all (set in Settings → Limits)",
    )
    over = ingest_folder(root, "many", str(root), blobs, FolderLimits(max_files=2))
    assert _report(_read(blobs, over))["f2.txt"] == (
        "skipped",
        "over the limit of 2 files (set in Settings → Limits)",
    )


def test_a_50_mb_single_line_is_skipped_unread(files: Path, blobs: BlobStore) -> None:
    root = _tree(files / "repo", {"small.py": "print(1)\n"})
    with (root / "minified.js").open("wb") as handle:
        handle.truncate(50_000_000)  # sparse: 50 MB without writing them

    att = _only(ingest_path(root, blobs))

    report = _report(_read(blobs, att))
    assert report["minified.js"] == (
        "skipped",
        "too large (50.0 MB; the limit is 1.0 MB a file)",
    )
    assert att.detail == "1 file used, 1 skipped"


def test_deep_nesting_stops_at_the_depth_limit(files: Path, blobs: BlobStore) -> None:
    deep = files / "deep"
    level = deep
    for i in range(30):
        level = level / f"d{i}"
    level.mkdir(parents=True)
    (level / "bottom.txt").write_text("too deep")
    (deep / "top.txt").write_text("shallow")

    att = _only(ingest_path(deep, blobs))

    document = _read(blobs, att)
    assert [s.file for s in document.sections] == ["top.txt"]
    skipped = [e for e in document.entries if e.status is EntryStatus.SKIPPED]
    assert len(skipped) == 1
    assert skipped[0].path == "/".join(f"d{i}" for i in range(21)) + "/"  # d0..d19 were read
    assert skipped[0].reason == "deeper than 20 folders"


def test_symlink_loops_and_escapes_are_never_followed(files: Path, blobs: BlobStore) -> None:
    outside = files / "outside.txt"
    outside.write_text("private")
    root = _tree(files / "linked", {"real.txt": "real", "sub/inner.txt": "inner"})
    _symlink(root / "escape.txt", outside)
    _symlink(root / "escape_dir", files)
    _symlink(root / "loop_a", root / "loop_b")
    _symlink(root / "loop_b", root / "loop_a")
    _symlink(root / "sub" / "back_up", root)
    _symlink(root / "alias.txt", root / "real.txt")
    _symlink(root / "dangling.txt", root / "missing.txt")

    att = _only(ingest_path(root, blobs))

    document = _read(blobs, att)
    assert [s.file for s in document.sections] == ["real.txt", "sub/inner.txt"]
    report = _report(document)
    assert report["escape.txt"] == ("skipped", "a link to outside the dropped folder")
    assert report["escape_dir"] == ("skipped", "a link to outside the dropped folder")
    assert report["loop_a"] == ("skipped", "a symbolic link loop")
    assert report["loop_b"] == ("skipped", "a symbolic link loop")
    assert report["sub/back_up/"] == ("skipped", "a link to a folder already read (a loop)")
    assert report["alias.txt"] == ("skipped", "the same file as real.txt")  # the real one wins
    assert report["dangling.txt"] == ("skipped", "a broken symbolic link")
    assert "private" not in blobs.read(att.sha256).decode()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifos_and_sockets_are_skipped_without_opening(files: Path, blobs: BlobStore) -> None:
    root = _tree(files / "odd", {"ok.txt": "fine"})
    os.mkfifo(root / "pipe")  # opening it to read would block forever
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(root / "sock"))
    except OSError:
        server.close()
        pytest.skip("cannot bind a Unix socket here (path too long?)")

    try:
        att = _only(ingest_path(root, blobs))
    finally:
        server.close()

    report = _report(_read(blobs, att))
    assert report["pipe"] == ("skipped", "a named pipe, not a regular file")
    assert report["sock"] == ("skipped", "a socket, not a regular file")
    assert report["ok.txt"] == ("used", "")


def test_the_entry_limit_keeps_a_huge_tree_quick(files: Path, blobs: BlobStore) -> None:
    root = _tree(files / "huge", {f"{i:03}.txt": "x" for i in range(50)})

    att = ingest_folder(root, "huge", str(root), blobs, FolderLimits(max_entries=10))

    document = _read(blobs, att)
    assert len(document.sections) == 10
    assert att.detail == "10 files used, 0 skipped; stopped after 10 entries"


def test_a_folder_with_nothing_readable_is_an_error(files: Path, blobs: BlobStore) -> None:
    root = _tree(files / "pics", {"a.png": _png(), "b.png": _png()})
    (files / "void").mkdir()

    pictures = _only(ingest_path(root, blobs))
    empty = _only(ingest_path(files / "void", blobs))

    assert pictures.status is AttachmentStatus.ERROR
    assert pictures.detail == (
        "“pics” has no text files Scout Desk can read: 2 entries were skipped "
        "(first, a.png: an image (attach it on its own to show it))."
    )
    assert (empty.status, empty.detail) == (AttachmentStatus.ERROR, "“void” is an empty folder.")


def test_an_unreadable_subfolder_costs_only_itself(files: Path, blobs: BlobStore) -> None:
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("root reads anything")
    root = _tree(files / "perm", {"ok.txt": "fine", "locked/x.txt": "hidden"})
    (root / "locked").chmod(0)
    try:
        att = _only(ingest_path(root, blobs))
    finally:
        (root / "locked").chmod(0o700)

    report = _report(_read(blobs, att))
    assert report["locked/"][0] == "skipped"
    assert report["ok.txt"] == ("used", "")
