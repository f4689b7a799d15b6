"""Folder ingest: a codebase's text files, `.gitignore` honoured, links and odd files contained."""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from app.core.documents import Document, DocumentSource, EntryStatus, ManifestEntry, Section
from app.core.ingest.common import BlobSink, document_attachment, failed, human_size, quoted
from app.core.ingest.sniff import HEAD_BYTES, Family, sniff
from app.core.ingest.text import decode_text, looks_binary
from app.core.messages import Attachment, AttachmentKind
from app.core.settings import IngestLimits

log = logging.getLogger(__name__)

FOLDER_MIME = "inode/directory"
# Never read, ignored or not: version control data, caches and installed dependencies.
_ALWAYS_SKIPPED = {
    ".git": "version-control data",
    ".hg": "version-control data",
    ".svn": "version-control data",
    "__pycache__": "a cache folder",
    ".mypy_cache": "a cache folder",
    ".pytest_cache": "a cache folder",
    ".ruff_cache": "a cache folder",
    ".tox": "a cache folder",
    "node_modules": "installed dependencies",
    ".venv": "installed dependencies",
}
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)
# Never block on a FIFO swapped in after the stat, never follow a link swapped in after it.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)) | getattr(
    os, "O_BINARY", 0
)
#: Only this much of a .gitignore is read (real ones are a few kB; GitHub's largest templates
#: are under 10 kB).
MAX_GITIGNORE_BYTES = 1_000_000
#: pathspec tries every rule on every path, so rules in force at once (a folder's own .gitignore
#: plus those of the folders above it) cost time per file: 40,000 rules over 2,000 files took
#: ~10-25 s, 2,000 take well under a second.
MAX_GITIGNORE_RULES = 2_000
#: Ends the reasons for the folder limits the user sets.
_SET_IN_SETTINGS = " (set in Settings → Limits)"


@dataclass(frozen=True)
class FolderLimits:
    """How much of a folder is read.

    Attributes:
        max_files: text files used; later ones are listed as skipped.
        max_total_bytes: text used in all.
        max_file_bytes: one file; larger ones (minified or generated, mostly) are skipped unread.
        max_depth: folders below the dropped one.
        max_entries: directory entries looked at, so that dropping a huge tree stays quick.
        max_gitignore_rules: .gitignore rules in force at once (see `MAX_GITIGNORE_RULES`).
    """

    max_files: int = IngestLimits().max_folder_files
    max_total_bytes: int = IngestLimits().max_folder_bytes
    max_file_bytes: int = 1_000_000
    max_depth: int = 20
    max_entries: int = 100_000
    max_gitignore_rules: int = MAX_GITIGNORE_RULES

    @classmethod
    def from_settings(cls, limits: IngestLimits) -> FolderLimits:
        """The folder limits for the ingest limits set in Settings (entries scale with files)."""
        return cls(
            max_files=limits.max_folder_files,
            max_total_bytes=limits.max_folder_bytes,
            max_entries=max(cls.max_entries, 5 * limits.max_folder_files),
        )


@dataclass
class _Walk:
    """What the walk has gathered so far."""

    root: Path
    real_root: str
    limits: FolderLimits
    sections: list[Section] = field(default_factory=list)
    entries: list[ManifestEntry] = field(default_factory=list)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    seen_files: dict[tuple[int, int], str] = field(default_factory=dict)
    # Links to files are read after the walk, so the real file wins when both are present.
    linked_files: list[tuple[Path, str, os.stat_result]] = field(default_factory=list)
    looked_at: int = 0
    used_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def skip(self, rel: str, reason: str, size: int = 0) -> None:
        self.entries.append(ManifestEntry(rel, EntryStatus.SKIPPED, reason, size))

    def note(self, sentence: str) -> None:
        """Record a limit that was hit, once however often it is hit."""
        if sentence not in self.notes:
            self.notes.append(sentence)


@dataclass(frozen=True)
class _Rules:
    """One .gitignore's compiled rules, for the paths below `base`."""

    base: str
    spec: pathspec.GitIgnoreSpec
    count: int


_Specs = tuple[_Rules, ...]


def ingest_folder(
    path: Path, name: str, source_path: str, blobs: BlobSink, limits: FolderLimits = FolderLimits()
) -> Attachment:
    """Read a folder's text files into one document: a section per file, a report per entry.

    Args:
        path: the folder.
        name: its base name.
        source_path: its absolute path.
        blobs: where the document is stored.
        limits: files, bytes, depth and entries allowed.

    Returns:
        A READY DOCUMENT attachment (`detail`: "312 files used, 41 skipped") whose `Document`
        has a section per used file (named by its relative path) and an entry per file or
        folder looked at; or an ERROR one when no file could be used.
    """
    try:
        info = path.stat()
        walk = _Walk(path, os.path.realpath(path), limits)
        walk.seen_dirs.add((info.st_dev, info.st_ino))
        _walk_dir(walk, path, "", 0, ())
        for target, rel, target_info in walk.linked_files:
            try:
                _read_file(walk, target, rel, target_info)
            except OSError as exc:
                walk.skip(rel, f"cannot be read: {exc.strerror or exc}")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failed(name, source_path, f"{quoted(name)} cannot be read: {reason}.")
    document = Document(
        name,
        DocumentSource.FOLDER,
        tuple(walk.sections),
        tuple(walk.entries),
        notes=tuple(walk.notes),
    )
    if not walk.sections:
        return _failed(name, source_path, _nothing_used(name, walk.entries))
    used = document.used_files
    summary = f"{used:,} file{'' if used == 1 else 's'} used, {document.skipped_files:,} skipped"
    detail = "; ".join([summary, *walk.notes])
    return document_attachment(document, detail, FOLDER_MIME, source_path, blobs)


def _walk_dir(walk: _Walk, folder: Path, rel: str, depth: int, specs: _Specs) -> None:
    specs = specs + _gitignore(walk, folder, rel, specs)
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        walk.skip(rel or ".", f"cannot be listed: {exc.strerror or exc}")
        return
    for child in children:
        walk.looked_at += 1
        if walk.looked_at > walk.limits.max_entries:
            walk.note(f"stopped after {walk.limits.max_entries:,} entries")
            return
        child_rel = rel + child.name
        try:
            _visit(walk, Path(child.path), child_rel, depth, specs)
        except OSError as exc:  # vanished, unreadable: one entry lost, never the folder
            walk.skip(child_rel, f"cannot be read: {exc.strerror or exc}")


def _visit(walk: _Walk, full: Path, rel: str, depth: int, specs: _Specs) -> None:
    """Decide about one directory entry (stat first: never open what is not a regular file)."""
    info = full.lstat()
    if full.name in _ALWAYS_SKIPPED:  # `.git` may also be a file (worktrees, submodules)
        walk.skip(rel + ("/" if stat.S_ISDIR(info.st_mode) else ""), _ALWAYS_SKIPPED[full.name])
        return
    linked = stat.S_ISLNK(info.st_mode)
    if linked:
        followed = _follow_link(walk, full, rel)
        if followed is None:
            return
        info = followed
    is_dir = stat.S_ISDIR(info.st_mode)
    if _ignored(rel, is_dir, specs):
        walk.skip(rel + ("/" if is_dir else ""), "ignored by .gitignore")
        return
    if is_dir:
        key = (info.st_dev, info.st_ino)
        if key in walk.seen_dirs:
            walk.skip(rel + "/", "a link to a folder already read (a loop)")
        elif depth + 1 > walk.limits.max_depth:
            walk.skip(rel + "/", f"deeper than {walk.limits.max_depth} folders")
        else:
            walk.seen_dirs.add(key)
            _walk_dir(walk, full, rel + "/", depth + 1, specs)
        return
    if not stat.S_ISREG(info.st_mode):
        what = next((label for test, label in _SPECIAL if test(info.st_mode)), "not a file")
        walk.skip(rel, f"{what}, not a regular file")
        return
    if linked:
        walk.linked_files.append((Path(os.path.realpath(full)), rel, info))
    else:
        _read_file(walk, full, rel, info)


def _follow_link(walk: _Walk, full: Path, rel: str) -> os.stat_result | None:
    """The stat of a link's target when it stays inside the dropped folder; else skip it."""
    try:
        target = os.path.realpath(full, strict=True)
        info = full.stat()
    except OSError as exc:
        loop = exc.errno == errno.ELOOP
        walk.skip(rel, "a symbolic link loop" if loop else "a broken symbolic link")
        return None
    if os.path.commonpath([walk.real_root, target]) != walk.real_root:
        walk.skip(rel, "a link to outside the dropped folder")
        return None
    return info


def _read_file(walk: _Walk, path: Path, rel: str, info: os.stat_result) -> None:
    limits = walk.limits
    size = info.st_size
    key = (info.st_dev, info.st_ino)
    if key in walk.seen_files:
        walk.skip(rel, f"the same file as {walk.seen_files[key]}", size)
        return
    if len(walk.sections) >= limits.max_files:
        walk.skip(rel, f"over the limit of {limits.max_files:,} files{_SET_IN_SETTINGS}", size)
        return
    if size == 0:
        walk.skip(rel, "empty")
        return
    if size > limits.max_file_bytes:
        walk.skip(rel, f"too large ({human_size(size)}; the limit is "
                       f"{human_size(limits.max_file_bytes)} a file)", size)  # fmt: skip
        return
    if walk.used_bytes + size > limits.max_total_bytes:
        total = human_size(limits.max_total_bytes)
        walk.skip(rel, f"over the limit of {total} in all{_SET_IN_SETTINGS}", size)
        return
    data = _read_regular(path, key, limits.max_file_bytes)
    if data is None:
        walk.skip(rel, "changed while being read", size)
        return
    reason = _not_text(data)
    if reason:
        walk.skip(rel, reason, size)
        return
    text, fallback = decode_text(data)
    if text is None:
        walk.skip(rel, "a binary file", size)
        return
    walk.seen_files[key] = rel
    walk.used_bytes += len(data)
    walk.sections.append(Section(rel, text))
    note = f"not UTF-8: read as {fallback}" if fallback else ""
    walk.entries.append(ManifestEntry(rel, EntryStatus.USED, note, len(data)))


def _read_regular(path: Path, key: tuple[int, int], limit: int) -> bytes | None:
    """The file's bytes, or None when it is no longer the regular file that was stat'ed."""
    fd = os.open(path, _OPEN_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        now = os.fstat(handle.fileno())
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != key:
            return None
        return handle.read(limit + 1)[:limit]


def _not_text(data: bytes) -> str:
    """Why a file's content is not read as text ("" when it may be text)."""
    family = sniff(data[:HEAD_BYTES]).family
    if family in (Family.IMAGE, Family.OTHER_IMAGE):
        return "an image (attach it on its own to show it)"
    if family in (Family.PDF, Family.ZIP):
        return "a document or archive (attach it on its own to read it)"
    if family in (Family.VIDEO, Family.AUDIO):
        return "a video or audio file"
    if looks_binary(data):
        return "a binary file"
    return ""


def _gitignore(walk: _Walk, folder: Path, rel: str, specs: _Specs) -> _Specs:
    """The folder's own .gitignore as rules rooted at `rel`, within the rules still allowed.

    Args:
        walk: the walk (its limits, and its notes for rules left out).
        folder: the folder.
        rel: its path in the dropped folder ("" or ending with "/").
        specs: the rules already in force here (from the folders above).

    Returns:
        The new rules (none when there is no usable .gitignore or no room left).
    """
    path = folder / ".gitignore"
    where = f"{rel}.gitignore"
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return ()
        fd = os.open(path, _OPEN_FLAGS)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_GITIGNORE_BYTES + 1)
    except FileNotFoundError:  # most folders have none
        return ()
    except OSError as exc:
        walk.note(f"{where} cannot be read ({exc.strerror or exc}), so its rules were not applied")
        return ()
    truncated = len(data) > MAX_GITIGNORE_BYTES
    text = data[:MAX_GITIGNORE_BYTES].decode("utf-8", errors="replace")
    lines = text.splitlines()
    if truncated and lines:
        lines.pop()  # cut in the middle: a partial rule could ignore what the whole does not
    # Blank lines and comments are no rules: they neither cost time nor count against the cap.
    rules = [line for line in lines if line.strip() and not line.startswith("#")]
    room = max(0, walk.limits.max_gitignore_rules - sum(s.count for s in specs))
    applied = rules[:room]
    if truncated:
        walk.note(
            f"{where}: only its first {human_size(MAX_GITIGNORE_BYTES)} was read (the file has "
            f"{human_size(info.st_size)}), so files its later rules would ignore are included"
        )
    elif len(applied) < len(rules):
        limit = walk.limits.max_gitignore_rules
        walk.note(
            f"{where}: only the first {len(applied):,} of its {len(rules):,} rules were applied "
            f"(at most {limit:,} .gitignore rules are in force at once), so files the other "
            "rules would ignore are included"
        )
    if not applied:
        return ()
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(applied)
    except ValueError as exc:  # a rule pathspec cannot compile
        walk.note(f"{where} has a rule that cannot be used ({exc}), so its rules were not applied")
        return ()
    return (_Rules(rel, spec, len(applied)),)


def _ignored(rel: str, is_dir: bool, specs: _Specs) -> bool:
    """Git's verdict: the deepest .gitignore with a matching pattern decides."""
    verdict = False
    for rules in specs:
        local = rel[len(rules.base) :] + ("/" if is_dir else "")
        result = rules.spec.check_file(local)
        if result.include is not None:
            verdict = result.include
    return verdict


def _nothing_used(name: str, entries: list[ManifestEntry]) -> str:
    if not entries:
        return f"{quoted(name)} is an empty folder."
    first = entries[0]
    count = f"{len(entries):,} entr{'y was' if len(entries) == 1 else 'ies were'} skipped"
    return (
        f"{quoted(name)} has no text files Scout Desk can read: {count} "
        f"(first, {first.path}: {first.reason})."
    )


def _failed(name: str, source_path: str, sentence: str) -> Attachment:
    return failed(name, source_path, sentence, AttachmentKind.DOCUMENT, FOLDER_MIME)
