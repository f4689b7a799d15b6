"""Videos and their frames as attachments: ingest a clip, store frames, read both back."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from app.core.ingest.common import BlobSink, failed, human_size, put_blob_file, quoted
from app.core.ingest.images import ingest_image
from app.core.ingest.sniff import Family, Sniffed
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.video.data import FrameRef, VideoError, VideoFrame, VideoInfo
from app.core.video.probe import probe_video
from app.core.video.timecode import frame_name, parse_frame_name

#: Largest video file accepted (it is copied into the attachment store).
MAX_VIDEO_BYTES = 2_000_000_000
_JPEG = Sniffed(Family.IMAGE, "jpeg", "image/jpeg", "a JPEG image")
_DETAIL = re.compile(
    r"^(?P<duration>[\d.]+) s(?P<estimated> \(estimated\))? · (?P<fps>[\d.]+) fps · "
    r"(?P<width>\d+)×(?P<height>\d+) · (?P<frames>\d+) frames?"
    r"(?: · starts at (?P<start>[\d.]+) s)?$"
)


def ingest_video(
    path: Path,
    name: str,
    source_path: str,
    sniffed: Sniffed,
    file_size: int,
    blobs: BlobSink,
) -> Attachment:
    """Probe a video in the sandboxed decoder and store the file itself.

    Args:
        path: the video file.
        name: its base name.
        source_path: its absolute path.
        sniffed: what its first bytes say it is.
        file_size: its size in bytes.
        blobs: where the file is stored.

    Returns:
        A READY VIDEO attachment (blob: the original file; `width`/`height`: an upright frame;
        `detail`: `video_detail(info)`), or an ERROR one whose sentence names the file.
    """
    if file_size > MAX_VIDEO_BYTES:
        sentence = (
            f"{quoted(name)} is {human_size(file_size)}; Scout Desk takes video files up to "
            f"{human_size(MAX_VIDEO_BYTES)} — cut or compress it first."
        )
        return failed(name, source_path, sentence, AttachmentKind.VIDEO, sniffed.mime)
    try:
        info = probe_video(path, name=name)
    except VideoError as error:
        return failed(name, source_path, error.message, AttachmentKind.VIDEO, sniffed.mime)
    return Attachment(
        name=name,
        kind=AttachmentKind.VIDEO,
        status=AttachmentStatus.READY,
        detail=video_detail(info),
        sha256=put_blob_file(blobs, path),
        mime=sniffed.mime,
        size=file_size,
        width=info.width,
        height=info.height,
        source_path=source_path,
    )


def video_detail(info: VideoInfo) -> str:
    """The chip's sentence about a clip, which `info_from_detail` reads back.

    "12.4 s · 25 fps · 1280×720 · 310 frames" (with " (estimated)" after the duration when the
    end was not found, and " · starts at 1.4 s" when the first frame is not at 0).
    """
    estimated = " (estimated)" if info.estimated else ""
    frames = f"{info.frame_count} frame{'' if info.frame_count == 1 else 's'}"
    start = f" · starts at {info.start_s:.3f} s" if info.start_s else ""
    return (
        f"{info.duration_s:.3f} s{estimated} · {info.fps:.3f} fps · {info.width}×{info.height} · "
        f"{frames}{start}"
    )


def info_from_detail(detail: str) -> VideoInfo | None:
    """The clip facts a READY video attachment's `detail` holds (None if it holds none)."""
    match = _DETAIL.match(detail)
    if match is None:
        return None
    return VideoInfo(
        duration_s=float(match["duration"]),
        fps=float(match["fps"]),
        width=int(match["width"]),
        height=int(match["height"]),
        frame_count=int(match["frames"]),
        estimated=bool(match["estimated"]),
        start_s=float(match["start"] or 0.0),
    )


def frames_to_attachments(
    frames: Sequence[VideoFrame], video_name: str, source_path: str, blobs: BlobSink
) -> list[Attachment]:
    """Store sampled frames as IMAGE attachments named "clip.mp4 @ 00:12.400".

    Args:
        frames: the sampled frames, in order.
        video_name: the clip's name (the part before " @ ").
        source_path: the clip's path (what `ask --json` would report).
        blobs: where the frame images are stored.

    Returns:
        One READY image attachment per frame (JPEG blob, width and height), in order.
    """
    return [
        ingest_image(f.jpeg, _JPEG, frame_name(video_name, f.time_s), source_path, blobs)
        for f in frames
    ]


def frame_refs(
    attachments: Sequence[Attachment], blob_path: Callable[[str], Path]
) -> list[FrameRef]:
    """The frame images among a message's attachments, as the engine reads them.

    `index` counts every usable image of the message (what `Box.image` indexes), so it matches
    `app.core.grounding.question_images`; images whose names are not frame names are skipped.

    Args:
        attachments: a question's attachments (the video, then its frames).
        blob_path: the store's `blobs.path`.

    Returns:
        One reference per frame image, in order.
    """
    from app.core.grounding import question_images

    refs = []
    for index, image in enumerate(question_images(attachments)):
        parsed = parse_frame_name(image.name)
        if parsed is None or image.sha256 is None:
            continue
        path = blob_path(image.sha256)
        refs.append(FrameRef(index, parsed[1], path, image.width or 0, image.height or 0))
    return refs


#: Frames a clip is seen through when it is asked about in the chat (Scout was tested with 5).
CLIP_FRAMES = 5


def clip_frames(
    video: Attachment, blob_path: Callable[[str], Path], blobs: BlobSink
) -> list[Attachment]:
    """Frames spread over a READY clip, as image attachments: how Scout sees a video in a chat.

    Their names carry their times ("clip.mp4 @ 00:12.400"), which compose puts in the prompt.

    Args:
        video: a READY video attachment (its detail holds the probed facts).
        blob_path: maps a blob's SHA-256 to its file (the stored clip).
        blobs: where the frame images are stored.

    Returns:
        Up to `CLIP_FRAMES` READY image attachments, or one ERROR attachment naming the clip.
    """
    from app.core.video.data import Sampling, SamplingMode
    from app.core.video.sampling import sample_frames

    info = info_from_detail(video.detail)
    try:
        if info is None or video.sha256 is None:
            raise VideoError(f"{quoted(video.name)}: its facts were not recorded; attach it again")
        frames = sample_frames(
            blob_path(video.sha256),
            Sampling(mode=SamplingMode.COUNT, count=CLIP_FRAMES),
            info,
            name=video.name,
        )
    except VideoError as error:
        return [
            Attachment(
                name=video.name,
                kind=AttachmentKind.VIDEO,
                status=AttachmentStatus.ERROR,
                detail=error.message,
                source_path=video.source_path,
            )
        ]
    return frames_to_attachments(frames, video.name, video.source_path, blobs)
