"""Exporting a video run from the panel: CSV and JSON rows, and PNG frames with their boxes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QImage

from app.ui.viewer.overlay_render import OUTLINE_PX, colour_of
from tests.helpers.video_clips import write_clip
from tests.helpers.video_ui import QUESTION, FakeAnswers, open_clip, sample, video_window


def _run(qtbot, open_window, tmp_path, frames: int = 3):
    window, video = video_window(open_window)
    video.answer_frames = FakeAnswers()
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", frames)
    video.panel.question_edit.setText(QUESTION)
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
    return window, video


def _menu_action(video, kind: str) -> QAction:
    return video.panel.export_button.menu().findChild(QAction, f"videoExport_{kind}")


def test_csv_and_json_exports_hold_one_row_per_answered_frame(qtbot, open_window, tmp_path):
    window, video = _run(qtbot, open_window, tmp_path)
    asked: list[tuple[str, str, str]] = []

    def choose(_parent, caption: str, suggested: str, name_filter: str) -> Path:
        asked.append((caption, suggested, name_filter))
        return tmp_path / "out" / suggested

    video.choose_path = choose
    with qtbot.waitSignal(video.export_finished, timeout=5000) as blocker:
        _menu_action(video, "csv").trigger()
    [csv_file] = blocker.args[0]
    assert asked[0][1:] == ("clip-frames.csv", "CSV (*.csv)")
    rows = list(csv.DictReader(csv_file.read_text(encoding="utf-8-sig").splitlines()))
    assert [int(r["index"]) for r in rows] == [0, 1, 2]
    assert [r["answer"] for r in rows] == [f.answer for f in video.frames]
    assert rows[0]["time"].startswith("00:00.")
    assert all(r["box_count"] == "1" for r in rows)
    first_box = json.loads(rows[0]["boxes"])[0]
    box = video.frames[0].boxes[0]
    assert (first_box["label"], first_box["x1"], first_box["y2"]) == ("square", box.x1, box.y2)

    with qtbot.waitSignal(video.export_finished, timeout=5000) as blocker:
        _menu_action(video, "json").trigger()
    [json_file] = blocker.args[0]
    document = json.loads(json_file.read_text(encoding="utf-8"))
    assert document["question"] == QUESTION and document["video_name"] == "clip.avi"
    assert document["video"] == {
        "duration_s": 4.0, "fps": 10.0, "width": 160, "height": 120, "frame_count": 40,
    }  # fmt: skip
    assert [f["answer"] for f in document["frames"]] == [f.answer for f in video.frames]
    assert [len(f["boxes"]) for f in document["frames"]] == [1, 1, 1]
    assert document["summary"] is None
    assert "Saved clip-frames.json" in window.statusBar().currentMessage()


def test_annotated_frames_are_pngs_with_the_boxes_painted(qtbot, open_window, tmp_path):
    _window, video = _run(qtbot, open_window, tmp_path)
    folder = tmp_path / "frames"
    video.choose_folder = lambda _parent, _caption: folder
    with qtbot.waitSignal(video.export_finished, timeout=10_000) as blocker:
        _menu_action(video, "frames").trigger()
    written = blocker.args[0]

    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in written] == [p.name for p in pngs] + ["boxes.json"]
    assert pngs[0].name.startswith("clip_0001_00-00-")
    colour = colour_of("square")
    for png, frame in zip(pngs, video.frames, strict=True):
        image = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB32)
        assert (image.width(), image.height()) == (160, 120)
        box = frame.boxes[0]
        middle = (box.y1 + box.y2) // 2
        assert image.pixelColor(box.x1, middle) == colour  # the outline, inside the box
        assert image.pixelColor(box.x2 - 1, middle) == colour
        assert image.pixelColor(box.x1 + OUTLINE_PX + 3, middle) != colour  # inside is the frame
    boxes = json.loads((folder / "boxes.json").read_text(encoding="utf-8"))
    assert [i["name"] for i in boxes["images"]] == [p.name for p in pngs]
    assert [b["image"] for b in boxes["boxes"]] == [0, 1, 2]
    assert len(boxes["times_s"]) == 3
    assert "Saved 3 annotated frames" in video.panel.status_label.text()


def test_a_cancelled_dialog_writes_nothing_and_an_unwritable_place_says_why(
    qtbot, open_window, tmp_path
):
    _window, video = _run(qtbot, open_window, tmp_path, frames=2)
    video.choose_path = lambda *_args: None
    assert not video.export("csv")
    assert list(tmp_path.glob("*.csv")) == []

    blocker_file = tmp_path / "not-a-folder"
    blocker_file.write_text("a file where the folder should be", encoding="utf-8")
    with qtbot.waitSignal(video.export_finished, timeout=5000) as blocker:
        assert not video.export("json", blocker_file / "run.json")
    assert blocker.args == [[]]
    assert "run.json was not written" in video.panel.status_label.text()
    assert video.panel.status_label.property("kind") == "error"


def test_nothing_to_export_before_any_frame_is_answered(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 2)
    assert not video.panel.export_button.isEnabled()
    assert not video.export("csv", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    assert "Ask every frame first" in video.panel.status_label.text()
