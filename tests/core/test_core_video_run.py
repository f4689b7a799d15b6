"""A run saved in a real session store rebuilds into the same timeline, and exports it."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.grounding import answer_images
from app.core.ingest import ingest_path
from app.core.messages import AttachmentStatus, Box, StopReason
from app.core.video.attachments import frame_refs, frames_to_attachments, info_from_detail
from app.core.video.data import FrameResult, Sampling, SamplingMode
from app.core.video.export import (
    export_annotated_frames,
    export_frames_csv,
    export_frames_json,
)
from app.core.video.run import load_video_run, run_json, save_frame_answer, save_summary
from app.core.video.sampling import sample_frames
from app.core.video.timecode import format_time, frame_name, parse_frame_name, parse_time
from app.store.sessions import SessionStore
from tests.helpers.video_clips import write_clip


@pytest.fixture
def store(tmp_path: Path):
    store = SessionStore.open(tmp_path / "data")
    yield store
    store.close()


def _save_run(store: SessionStore, clip: Path, answered: int):
    """Save a run as `scout-desk video` does; returns (session id, frame refs, results)."""
    [video] = ingest_path(clip, store.blobs)
    info = info_from_detail(video.detail)
    frames = sample_frames(store.blobs.path(video.sha256), Sampling(SamplingMode.COUNT, 3), info)
    images = frames_to_attachments(frames, video.name, video.source_path, store.blobs)
    used = [replace(a, status=AttachmentStatus.USED) for a in (video, *images)]
    session = store.create_session()
    question = store.add_user_message(session.id, "Where is the square?", used)
    refs = frame_refs(question.attachments, store.blobs.path)
    results = []
    for ref in refs[:answered]:
        box = Box("square", ref.index, 10 * ref.index, 50, 10 * ref.index + 16, 66)
        result = FrameResult(ref.index, ref.time_s, f"answer {ref.index}", (box,), StopReason.EOS)
        save_frame_answer(store, session.id, result)
        results.append(result)
    return session.id, refs, results


def test_a_saved_run_rebuilds_its_timeline(store: SessionStore, tmp_path: Path) -> None:
    session_id, refs, results = _save_run(store, write_clip(tmp_path / "clip.avi"), answered=3)
    save_summary(store, session_id, "The square moves right.", StopReason.EOS)
    messages = store.messages(session_id)

    run = load_video_run(messages)

    assert run is not None and run.question == "Where is the square?"
    assert run.video.name == "clip.avi" and run.info is not None and run.info.frame_count == 40
    assert [f.time_s for f in run.frames] == pytest.approx([0.7, 2.0, 3.3])
    assert [f.index for f in run.frames] == [r.index for r in refs] == [0, 1, 2]
    assert run.results == results
    assert run.summary == "The square moves right."
    assert [f.image.name for f in run.frames] == ["clip.avi @ 00:00.700", "clip.avi @ 00:02.000",
                                                  "clip.avi @ 00:03.300"]  # fmt: skip
    # The chat's own overlay finds each answer's boxes on the right frame.
    second_answer = messages[2]
    box = second_answer.boxes[0]
    assert answer_images(messages, 2)[box.image].name == run.frames[1].image.name


def test_a_stopped_run_keeps_unanswered_frames_on_the_timeline(
    store: SessionStore, tmp_path: Path
) -> None:
    session_id, _refs, _results = _save_run(store, write_clip(tmp_path / "c.avi"), answered=1)
    run = load_video_run(store.messages(session_id))
    assert run is not None and run.summary is None
    assert [f.result is not None for f in run.frames] == [True, False, False]
    assert len(run.results) == 1


def test_messages_without_a_video_are_not_a_run(store: SessionStore) -> None:
    session = store.create_session()
    store.add_user_message(session.id, "hello")
    assert load_video_run(store.messages(session.id)) is None
    assert load_video_run([]) is None


def test_exports_write_csv_json_and_frames_with_boxes(store: SessionStore, tmp_path: Path) -> None:
    session_id, _refs, results = _save_run(store, write_clip(tmp_path / "clip.avi"), answered=2)
    run = load_video_run(store.messages(session_id))
    assert run is not None

    export_frames_csv(run, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["time"] for r in rows] == ["00:00.700", "00:02.000"]
    assert rows[1]["answer"] == "answer 1" and rows[1]["box_count"] == "1"
    assert json.loads(rows[1]["boxes"])[0] == {"label": "square", "image": 1, "x1": 10, "y1": 50,
                                               "x2": 26, "y2": 66}  # fmt: skip

    export_frames_json(run, tmp_path / "out.json")
    document = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert document["frames"] == run_json(run.info, results, None)["frames"]
    assert document["video"]["frame_count"] == 40 and document["summary"] is None

    written = export_annotated_frames(run, store.blobs.path, tmp_path / "frames")
    assert [p.name for p in written] == ["clip_0001_00-00.700.jpg", "clip_0002_00-02.000.jpg",
                                         "clip_0003_00-03.300.jpg", "boxes.json"]  # fmt: skip
    boxes = json.loads(written[-1].read_text(encoding="utf-8"))
    assert [b["image"] for b in boxes["boxes"]] == [0, 1]
    assert boxes["images"][1]["name"] == "clip_0002_00-02.000.jpg"
    assert boxes["times_s"] == [0.7, 2.0, 3.3]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00.000"), (12.4, "00:12.400"), (61.0006, "01:01.001"), (3723.5, "1:02:03.500"),
     (-3, "00:00.000"), (float("nan"), "00:00.000")],
)  # fmt: skip
def test_times_are_written_and_read_back(seconds: float, text: str) -> None:
    assert format_time(seconds) == text
    assert parse_time(text) == pytest.approx(max(0, seconds) if seconds == seconds else 0, abs=1e-3)


def test_frame_names_parse_back_to_video_and_time() -> None:
    assert parse_frame_name(frame_name("my @ clip.mp4", 12.4)) == ("my @ clip.mp4", 12.4)
    for name in ("photo.jpg", "clip.mp4 @ soon", " @ 00:01.000", "clip.mp4 @ 00:61.000"):
        assert parse_frame_name(name) is None
