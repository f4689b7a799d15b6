"""Probing and sampling real clips in the decode child: decoder times, modes, seek == decode."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from app.core.video.data import Sampling, SamplingMode, VideoInfo
from app.core.video.probe import probe_video
from app.core.video.sampling import JPEG_QUALITY, frame_at, plan_times, sample_frames
from tests.helpers.video_clips import (
    CUT_FRAME,
    FPS,
    FRAMES,
    SIZE,
    STEP,
    decode_jpeg,
    square_x,
    write_clip,
)

CLIPS = [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")]


@pytest.fixture(params=CLIPS, ids=["mjpg-avi", "mp4v-mp4"])
def clip(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name, fourcc = request.param
    return write_clip(tmp_path / name, fourcc)


def _probed(clip: Path) -> VideoInfo:
    return probe_video(clip)


def test_probe_reports_what_the_decoder_sees(clip: Path) -> None:
    info = _probed(clip)
    assert (info.width, info.height) == SIZE
    assert info.fps == pytest.approx(FPS)
    assert info.frame_count == FRAMES
    assert info.duration_s == pytest.approx(FRAMES / FPS)
    assert not info.estimated


def test_n_frames_are_spread_over_the_clip_with_decoder_times(clip: Path) -> None:
    frames = sample_frames(clip, Sampling(SamplingMode.COUNT, count=4), _probed(clip))
    assert [f.time_s for f in frames] == pytest.approx([0.5, 1.5, 2.5, 3.5])
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for frame in frames:
        image = decode_jpeg(frame.jpeg)
        assert (frame.width, frame.height) == SIZE == (image.shape[1], image.shape[0])
        # The picture is the one drawn for that time: the square moved STEP pixels a frame.
        assert abs(square_x(image) - STEP * round(frame.time_s * FPS)) <= 2
        assert decode_jpeg(frame.thumbnail).shape[1] <= 160


def test_every_t_seconds_starts_at_zero_and_stays_inside_the_clip(clip: Path) -> None:
    frames = sample_frames(clip, Sampling(SamplingMode.EVERY, every_s=1.5), _probed(clip))
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.5, 3.0])


def test_scene_mode_finds_the_hard_cut_and_not_the_motion(clip: Path) -> None:
    frames = sample_frames(clip, Sampling(SamplingMode.SCENES), _probed(clip))
    assert [f.time_s for f in frames] == pytest.approx([0.0, CUT_FRAME / FPS])
    assert frames[1].score is not None and frames[1].score > 27


def test_seek_sampled_frames_equal_sequentially_decoded_ones(clip: Path) -> None:
    """Seeking (and decoding forward across short gaps) returns exactly the frame at that time."""
    info = _probed(clip)
    frames = sample_frames(clip, Sampling(SamplingMode.EVERY, every_s=0.7), info)
    capture = cv2.VideoCapture(str(clip))
    sequential = {}
    while True:
        ok, image = capture.read()
        if not ok:
            break
        sequential[round(capture.get(cv2.CAP_PROP_POS_MSEC))] = image
    capture.release()
    assert len(frames) == 6
    for frame in frames:
        expected = sequential[round(frame.time_s * 1000)]
        ok, encoded = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok and frame.jpeg == encoded.tobytes()


def test_frame_at_gives_the_nearest_frame_and_clamps_to_the_clip(clip: Path) -> None:
    info = _probed(clip)
    preview = frame_at(clip, 1.24, info)
    assert preview is not None and preview.time_s == pytest.approx(1.2)
    last = frame_at(clip, 99.0, info)
    assert last is not None and last.time_s == pytest.approx((FRAMES - 1) / FPS)


def test_plans_for_count_and_every() -> None:
    info = VideoInfo(10.0, 25.0, 640, 360, 250)
    assert plan_times(info, Sampling(SamplingMode.COUNT, count=2)) == [2.5, 7.5]
    assert plan_times(info, Sampling(SamplingMode.EVERY, every_s=5)) == [0.0, 5.0]
    assert plan_times(info, Sampling(SamplingMode.EVERY, every_s=3)) == [0.0, 3.0, 6.0, 9.0]
    assert len(plan_times(info, Sampling(SamplingMode.EVERY, every_s=0.001))) == 500
    assert plan_times(info, Sampling(SamplingMode.SCENES)) == []


@pytest.mark.parametrize(
    "bad", [{"count": 0}, {"count": 501}, {"every_s": 0}, {"every_s": -1}, {"threshold": 0}]
)
def test_impossible_samplings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Sampling(**bad)
