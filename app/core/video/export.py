"""Per-frame results out of the app: CSV, JSON, and frame images with their boxes as JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.core.atomic import write_atomically
from app.core.grounding import boxes_to_json
from app.core.messages import Box
from app.core.video.data import VideoInfo
from app.core.video.run import VideoRun, box_dict, run_json
from app.core.video.timecode import format_time

CSV_COLUMNS = ("index", "time_s", "time", "answer", "box_count", "boxes")


def export_frames_csv(run: VideoRun, dest: Path) -> None:
    """Write one CSV row per answered frame (UTF-8 with a BOM, so spreadsheets read it right).

    Columns: index, time_s, time ("00:12.400"), answer, box_count, boxes (a JSON list of the
    `ask --json` box objects).

    Args:
        run: the run.
        dest: the file to write (replaced atomically).
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for result in run.results:
        boxes = json.dumps([box_dict(b) for b in result.boxes], ensure_ascii=False)
        writer.writerow(
            [result.index, f"{result.time_s:.3f}", format_time(result.time_s), result.answer,
             len(result.boxes), boxes]
        )  # fmt: skip
    _write(dest, text.getvalue().encode("utf-8-sig"))


def export_frames_json(run: VideoRun, dest: Path) -> None:
    """Write the run as the `scout-desk video --json` object, plus the question and video name.

    Args:
        run: the run.
        dest: the file to write (replaced atomically).
    """
    info = run.info or VideoInfo(0.0, 0.0, run.video.width or 0, run.video.height or 0, 0)
    document = {"question": run.question, "video_name": run.video.name,
                **run_json(info, run.results, run.summary)}  # fmt: skip
    _write(dest, _json_bytes(document))


def export_annotated_frames(
    run: VideoRun, blob_path: Callable[[str], Path], dest_dir: Path
) -> list[Path]:
    """Copy every frame image into a folder, with one `boxes.json` describing all their boxes.

    The images are the stored frames as they are (the UI paints the boxes over them);
    `boxes.json` is a `boxes_to_json` document (plus `times_s`) whose `images` list names the
    written files in time order and whose boxes' `image` indexes that list.

    Args:
        run: the run.
        blob_path: the store's `blobs.path`.
        dest_dir: the folder (created if missing).

    Returns:
        The written image files, in time order, followed by `boxes.json`.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(run.video.name).stem or "frame"
    written: list[Path] = []
    sizes: list[tuple[int, int]] = []
    boxes: list[Box] = []
    for position, frame in enumerate(run.frames):
        clock = format_time(frame.time_s).replace(":", "-")
        target = dest_dir / f"{stem}_{position + 1:04d}_{clock}.jpg"
        _write(target, blob_path(frame.image.sha256 or "").read_bytes())
        written.append(target)
        sizes.append((frame.image.width or 0, frame.image.height or 0))
        if frame.result is not None:
            boxes += [replace(b, image=position) for b in frame.result.boxes]
    document = boxes_to_json(boxes, sizes, [p.name for p in written])
    document["times_s"] = [round(f.time_s, 3) for f in run.frames]
    boxes_file = dest_dir / "boxes.json"
    _write(boxes_file, _json_bytes(document))
    return [*written, boxes_file]


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(dest, data)
