"""Video: probe clips, sample frames, and keep per-frame answers (no Qt; decoding in a child).

The public API the CLI and the video panel build on; see each module for details.
"""

from app.core.video.attachments import (
    MAX_VIDEO_BYTES,
    frame_refs,
    frames_to_attachments,
    info_from_detail,
    video_detail,
)
from app.core.video.data import (
    MAX_FRAMES,
    FrameRef,
    FrameResult,
    Sampling,
    SamplingMode,
    VideoCancelled,
    VideoError,
    VideoFrame,
    VideoInfo,
)
from app.core.video.export import export_annotated_frames, export_frames_csv, export_frames_json
from app.core.video.probe import probe_video
from app.core.video.run import (
    RunFrame,
    VideoRun,
    frame_answer_text,
    load_video_run,
    run_json,
    save_frame_answer,
    save_summary,
    summary_text,
)
from app.core.video.sampling import frame_at, plan_times, sample_frames, thumbnail
from app.core.video.timecode import format_time, frame_name, parse_frame_name, parse_time

__all__ = [
    "MAX_FRAMES",
    "MAX_VIDEO_BYTES",
    "FrameRef",
    "FrameResult",
    "RunFrame",
    "Sampling",
    "SamplingMode",
    "VideoCancelled",
    "VideoError",
    "VideoFrame",
    "VideoInfo",
    "VideoRun",
    "export_annotated_frames",
    "export_frames_csv",
    "export_frames_json",
    "format_time",
    "frame_answer_text",
    "frame_at",
    "frame_name",
    "frame_refs",
    "frames_to_attachments",
    "info_from_detail",
    "load_video_run",
    "parse_frame_name",
    "parse_time",
    "plan_times",
    "probe_video",
    "run_json",
    "sample_frames",
    "save_frame_answer",
    "save_summary",
    "summary_text",
    "thumbnail",
    "video_detail",
]
