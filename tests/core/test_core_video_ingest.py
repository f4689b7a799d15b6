"""A video file becomes a READY VIDEO attachment with decoder facts, or an ERROR naming the file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from app.core.ingest import ingest_path
from app.core.ingest.sandbox import Failure
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.video import attachments as video_attachments
from app.core.video.attachments import info_from_detail, video_detail
from app.core.video.child import run_video_worker
from app.core.video.data import VideoCancelled, VideoError, VideoInfo
from app.core.video.probe import check_outcome
from app.store.blobs import BlobStore
from tests.helpers.video_clips import FPS, FRAMES, SIZE, write_clip


def _only(attachments: list[Attachment]) -> Attachment:
    assert len(attachments) == 1
    return attachments[0]


@pytest.mark.parametrize(
    ("name", "fourcc", "mime"),
    [("clip.mp4", "mp4v", "video/mp4"), ("clip.avi", "MJPG", "video/x-msvideo")],
)
def test_a_video_is_ready_with_its_facts_and_the_original_stored(
    files: Path, blobs: BlobStore, name: str, fourcc: str, mime: str
) -> None:
    path = write_clip(files / name, fourcc)
    att = _only(ingest_path(path, blobs))
    assert (att.kind, att.status, att.mime) == (AttachmentKind.VIDEO, AttachmentStatus.READY, mime)
    assert (att.width, att.height) == SIZE
    assert att.size == path.stat().st_size
    assert att.sha256 is not None and blobs.read(att.sha256) == path.read_bytes()
    info = info_from_detail(att.detail)
    assert info is not None
    assert (info.duration_s, info.fps, info.frame_count) == (FRAMES / FPS, FPS, FRAMES)


def test_a_header_that_lies_about_the_length_is_overruled_by_the_decoder(
    files: Path, blobs: BlobStore
) -> None:
    path = write_clip(files / "liar.avi")
    data = bytearray(path.read_bytes())
    # avih.dwTotalFrames, strh.dwLength and the OpenDML frame count all claim 5,000 frames.
    for tag, offset in ((b"avih", 16), (b"strh", 32), (b"dmlh", 0)):
        at = data.find(tag)
        if at >= 0:
            struct.pack_into("<I", data, at + 8 + offset, 5000)
    path.write_bytes(bytes(data))
    att = _only(ingest_path(path, blobs))
    info = info_from_detail(att.detail)
    assert att.status is AttachmentStatus.READY and info is not None
    assert (info.duration_s, info.frame_count) == (FRAMES / FPS, FRAMES)


def _truncated_mp4(folder: Path) -> Path:
    path = write_clip(folder / "cut.mp4", "mp4v")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is written last: it is gone
    return path


def _fake_header_mp4(folder: Path) -> Path:
    path = folder / "liar.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(4000))
    return path


def _random_bytes(folder: Path) -> Path:
    path = folder / "noise.mp4"
    path.write_bytes(b"\x00\x01" + os.urandom(5000))
    return path


def _playlist(folder: Path) -> Path:
    path = folder / "stream.mp4"
    path.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nhttp://127.0.0.1:9/seg0.ts\n")
    return path


def _empty(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def _cut_avi(folder: Path) -> Path:
    path = write_clip(folder / "stub.avi")
    path.write_bytes(path.read_bytes()[:3000])  # the headers and not one whole frame
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_empty, "is empty"),
        (_random_bytes, "not in any format"),
        (_truncated_mp4, "cannot be opened as a video"),
        (_cut_avi, "cannot be opened as a video"),
        (_fake_header_mp4, "cannot be opened as a video"),
        (_playlist, "is a playlist"),
    ],
    ids=["zero-byte", "random", "truncated-mp4", "truncated-avi", "lying-header", "playlist"],
)
def test_bad_video_files_are_errors_that_name_the_file(
    files: Path, blobs: BlobStore, make, words: str
) -> None:
    path = make(files)
    att = _only(ingest_path(path, blobs))
    assert att.status is AttachmentStatus.ERROR
    assert att.kind is AttachmentKind.VIDEO
    assert att.detail.startswith(f"“{path.name}”") and words in att.detail
    assert att.sha256 is None


def test_a_file_over_the_size_limit_is_refused_before_decoding(
    files: Path, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_clip(files / "big.avi")
    monkeypatch.setattr(video_attachments, "MAX_VIDEO_BYTES", 1000)
    att = _only(ingest_path(path, blobs))
    assert att.status is AttachmentStatus.ERROR
    assert att.detail.startswith("“big.avi” is ") and "up to 1.0 kB" in att.detail


def test_a_decoder_that_runs_too_long_is_stopped_with_a_sentence(files: Path) -> None:
    path = write_clip(files / "slow.avi")
    request = {"action": "probe", "path": str(path)}
    with run_video_worker(request, timeout_s=0.01) as outcome:
        assert outcome.failure is Failure.TIMEOUT
        with pytest.raises(VideoError, match=r"“slow\.avi” took longer than 0\.01 seconds"):
            check_outcome(outcome, "slow.avi", 0.01)


def test_a_decoder_that_dies_costs_only_that_video(files: Path) -> None:
    path = write_clip(files / "crash.avi")
    # 20 MB of address space: the child cannot even load numpy, and dies.
    request = {"action": "probe", "path": str(path)}
    with run_video_worker(request, timeout_s=30, memory_bytes=20_000_000) as outcome:
        assert outcome.result is None or not outcome.result.get("ok")
        with pytest.raises(VideoError, match=r"^“crash\.avi” "):
            check_outcome(outcome, "crash.avi", 30)


def test_cancelling_kills_the_decoder(files: Path) -> None:
    path = write_clip(files / "stop.avi")
    with (
        pytest.raises(VideoCancelled),
        run_video_worker(
            {"action": "probe", "path": str(path)}, timeout_s=30, cancelled=lambda: True
        ),
    ):
        pass


def test_detail_round_trips_the_clip_facts() -> None:
    info = VideoInfo(12.4, 29.97, 1280, 720, 372, estimated=True, start_s=1.4)
    assert info_from_detail(video_detail(info)) == info
    assert info_from_detail(video_detail(VideoInfo(1.0, 1.0, 2, 2, 1))) == VideoInfo(
        1.0, 1.0, 2, 2, 1
    )
    assert info_from_detail("a skipped video") is None
