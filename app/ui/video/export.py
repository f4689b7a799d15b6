"""Export a video run: per-frame results as CSV or JSON, and every frame as a PNG with its boxes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.messages import Box
from app.store.sessions import SessionStore
from app.ui.video.clip_state import ClipState, TaskSlots
from app.ui.video.panel import VideoPanel
from app.ui.viewer.image_viewer import load_upright
from app.ui.viewer.overlay_export import ChoosePath, ExportError
from app.ui.viewer.overlay_render import label_colours, render_annotated

if TYPE_CHECKING:
    from app.core.video.run import VideoRun

#: Asks for a folder: (parent, caption) → a folder or None when cancelled.
ChooseFolder = Callable[[QWidget | None, str], Path | None]

CSV_FILTER = "CSV (*.csv)"
JSON_FILTER = "JSON (*.json)"


def ask_folder(parent: QWidget | None, caption: str) -> Path | None:
    """The default `ChooseFolder`: the platform's folder dialog.

    Args:
        parent: the dialog's parent.
        caption: the dialog's title.

    Returns:
        The chosen folder, or None when the user cancelled.
    """
    chosen = QFileDialog.getExistingDirectory(parent, caption)
    return Path(chosen) if chosen else None


def save_results_csv(run: VideoRun, dest: Path) -> None:
    """Write one CSV row per answered frame (`app.core.video.export_frames_csv`).

    Raises:
        ExportError: the file cannot be written (the sentence names it).
    """
    from app.core.video.export import export_frames_csv

    _guarded(dest, lambda: export_frames_csv(run, dest))


def save_results_json(run: VideoRun, dest: Path) -> None:
    """Write the run as the `scout-desk video --json` object (`export_frames_json`).

    Raises:
        ExportError: the file cannot be written (the sentence names it).
    """
    from app.core.video.export import export_frames_json

    _guarded(dest, lambda: export_frames_json(run, dest))


def save_annotated_frames(
    run: VideoRun, blob_path: Callable[[str], Path], folder: Path
) -> list[Path]:
    """Write every frame as a PNG with its boxes painted, and `boxes.json` describing them.

    Safe off the GUI thread (QImage and QPainter on an image only). Files are named
    "clip_0003_00-01-200.png" (the clip's name, the frame's position, its time); `boxes.json`
    is a `boxes_to_json` document over those files, plus `times_s`.

    Args:
        run: the run.
        blob_path: the store's `blobs.path`.
        folder: where to write (created if missing).

    Returns:
        The PNG files in time order, then `boxes.json`.

    Raises:
        ExportError: a frame cannot be read or a file cannot be written.
    """
    from app.core.grounding import boxes_to_json
    from app.core.video.timecode import format_time

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{folder} could not be created: {exc.strerror or exc}.") from None
    colours = label_colours(
        b.label for f in run.frames if f.result is not None for b in f.result.boxes
    )
    stem = Path(run.video.name).stem or "frame"
    written: list[Path] = []
    sizes: list[tuple[int, int]] = []
    all_boxes: list[Box] = []
    for position, frame in enumerate(run.frames):
        image, problem = load_upright(blob_path(frame.image.sha256 or ""))
        if image.isNull():
            raise ExportError(f"{frame.image.name} could not be exported. {problem}")
        boxes = list(frame.result.boxes) if frame.result is not None else []
        clock = format_time(frame.time_s).replace(":", "-").replace(".", "-")
        dest = folder / f"{stem}_{position + 1:04d}_{clock}.png"
        annotated = render_annotated(image, boxes, colours=colours)
        _write(dest, lambda tmp, picture=annotated, target=dest: _save_png(picture, tmp, target))
        written.append(dest)
        sizes.append((image.width(), image.height()))
        all_boxes += [replace(b, image=position) for b in boxes]
    document = boxes_to_json(all_boxes, sizes, [p.name for p in written])
    document["times_s"] = [round(f.time_s, 3) for f in run.frames]
    boxes_file = folder / "boxes.json"
    data = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    _write(boxes_file, lambda tmp: tmp.write_bytes(data))
    return [*written, boxes_file]


class VideoExporter:
    """The panel's Export menu: the saved run shown as CSV, JSON or annotated frames.

    Args:
        store: the session store (its blobs hold the frame images).
        panel: the panel's widgets (the dialogs' parent, the status line).
        clip: the clip shown (its saved run is what is exported).
        tasks: the clip's background work (annotated frames are written there).
        choose_path: returns the function that asks where to save a CSV or JSON file (read
            at each export, so a test may swap it on the controller).
        choose_folder: returns the function that asks for the annotated frames' folder.
        post: shows a sentence in the status bar.
        finished: told the files an export wrote ([] when it failed).
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        panel: VideoPanel,
        clip: ClipState,
        tasks: TaskSlots,
        choose_path: Callable[[], ChoosePath],
        choose_folder: Callable[[], ChooseFolder],
        post: Callable[[str], None],
        finished: Callable[[list[Path]], None],
    ) -> None:
        self._store = store
        self._panel = panel
        self._clip = clip
        self._tasks = tasks
        self._choose_path = choose_path
        self._choose_folder = choose_folder
        self._post = post
        self._finished = finished

    def export(self, kind: str, dest: Path | None = None) -> bool:
        """Export the saved run: "csv" or "json" (a file) or "frames" (PNGs in a folder).

        Args:
            kind: what to write.
            dest: the file or folder; None asks with `choose_path` / `choose_folder`.

        Returns:
            True when it was written (or, for "frames", started on the pool).
        """
        run = self._clip.run
        if run is None or (kind != "frames" and not run.results):
            self._panel.set_status("Ask every frame first: there are no answers to export yet.")
            return False
        stem = Path(run.video.name).stem or "video"
        if kind == "frames":
            ask_for = self._choose_folder()
            folder = dest or ask_for(self._panel, "Export annotated frames to a folder")
            return folder is not None and self._export_frames(run, folder)
        name_filter = CSV_FILTER if kind == "csv" else JSON_FILTER
        caption = f"Export per-frame results as {kind.upper()}"
        ask_where = self._choose_path()
        dest = dest or ask_where(self._panel, caption, f"{stem}-frames.{kind}", name_filter)
        if dest is None:
            return False
        try:
            (save_results_csv if kind == "csv" else save_results_json)(run, dest)
        except ExportError as exc:
            self._export_failed(exc.message)
            return False
        self._post(f"Saved {dest.name}.")
        self._panel.set_status(f"Saved {dest}.")
        self._finished([dest])
        return True

    def _export_frames(self, run: VideoRun, folder: Path) -> bool:
        blob_path = self._store.blobs.path

        def done(paths: list[Path]) -> None:
            frames = len(paths) - 1
            self._panel.set_status(f"Saved {frames} annotated frames and boxes.json to {folder}.")
            self._post(f"Saved {frames} annotated frames.")
            self._finished(paths)

        self._panel.set_status(f"Writing annotated frames to {folder}…")
        self._tasks.start("export", lambda _c: save_annotated_frames(run, blob_path, folder),
                          done, self._export_failed)  # fmt: skip
        return True

    def _export_failed(self, sentence: str) -> None:
        self._panel.set_status(sentence, error=True)
        self._post(sentence)
        self._finished([])


def _guarded(dest: Path, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:
        raise ExportError(f"{dest.name} was not written: {exc.strerror or exc}.") from None


def _save_png(image: QImage, tmp: Path, dest: Path) -> None:
    if not image.save(str(tmp), "PNG"):
        raise ExportError(f"{dest.name} was not written: the PNG could not be encoded.")


def _write(dest: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder, then rename: never half a file."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"{dest.name} was not written: {exc.strerror or exc}.") from None
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(dest)
    except OSError as exc:
        raise ExportError(f"{dest.name} was not written: {exc.strerror or exc}.") from None
    finally:
        tmp.unlink(missing_ok=True)
