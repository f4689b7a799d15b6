"""Child-process side of video decoding: probe, sample frames, find scenes, one frame to preview.

Run by `app.core.video.child.run_video_worker` as a script (`python -I video_worker.py`): it
imports only the standard library, numpy, OpenCV and its two sibling modules `decode` and
`scenes` — never `app` — and limits its own memory and CPU time first, so FFmpeg crashing or
spinning on a hostile file costs this process only.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# FFmpeg may only read local files: a crafted file must not make it open a network address.
os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "protocol_whitelist;file,pipe"
_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))  # `decode` and `scenes`
# The shared child side; appended, so it can shadow nothing installed.
sys.path.append(str(_HERE.parent / "ingest"))
if TYPE_CHECKING:  # the same file, under the package name the type checker knows
    from app.core.ingest import sandbox_child
else:
    import sandbox_child  # standard library only


def main() -> int:
    """Read one JSON request on stdin, do it, write `result.json` into its `out_dir`."""
    return sandbox_child.serve(_handle)


def _handle(request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    # Imported here, after `serve` has limited this process, so FFmpeg loads under the limits.
    if TYPE_CHECKING:
        from app.core.video import decode
    else:
        import decode

    action = _ACTIONS[request["action"]]
    try:
        return action(decode, request, out_dir)
    except decode.VideoUnreadable as exc:  # a named failure: its reason becomes a sentence
        return {"ok": False, "error": exc.reason, "message": repr(exc)}


def _deadline(request: dict[str, Any]) -> float:
    return time.monotonic() + float(request["soft_deadline_s"])


def _probe(decode: Any, request: dict[str, Any]) -> Any:
    cap = decode.open_capture(request["path"])
    try:
        return decode.probe(cap, _deadline(request))
    finally:
        cap.release()


def _info(found: Any) -> dict[str, Any]:
    return {
        "duration_s": found.duration_s,
        "fps": found.fps,
        "width": found.width,
        "height": found.height,
        "frame_count": found.frame_count,
        "start_s": found.start_s,
        "estimated": found.estimated,
    }


def _do_probe(decode: Any, request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    return {"ok": True, "info": _info(_probe(decode, request))}


class _FrameWriter:
    """Writes each frame (and its thumbnail) as JPEG files and lists them for the answer."""

    def __init__(self, decode: Any, request: dict[str, Any], out_dir: Path) -> None:
        self.decode, self.out_dir = decode, out_dir
        self.max_side = int(request["max_side"])
        self.thumb_side = int(request.get("thumb_side") or 0)
        self.quality = int(request.get("quality") or 90)
        self.frames: list[dict[str, Any]] = []

    def add(self, time_s: float, frame: Any) -> None:
        number = len(self.frames)
        data, width, height = self.decode.encode(frame, self.max_side, self.quality)
        name = f"frame-{number:05d}.jpg"
        (self.out_dir / name).write_bytes(data)
        entry = {"file": name, "time_s": time_s, "width": width, "height": height, "thumb": ""}
        if self.thumb_side:
            thumb, _, _ = self.decode.encode(frame, self.thumb_side, 75)
            entry["thumb"] = f"thumb-{number:05d}.jpg"
            (self.out_dir / entry["thumb"]).write_bytes(thumb)
        self.frames.append(entry)


def _do_sample(decode: Any, request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    path = request["path"]
    writer = _FrameWriter(decode, request, out_dir)
    times = sorted(float(t) for t in request["times"])
    for when, frame in decode.frames_at(lambda: decode.open_capture(path), times, request["fps"]):
        writer.add(when, frame)
    return {"ok": True, "frames": writer.frames}


def _do_scenes(decode: Any, request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    if TYPE_CHECKING:
        from app.core.video import scenes
    else:
        import scenes

    writer = _FrameWriter(decode, request, out_dir)
    detector = scenes.SceneDetector(float(request["threshold"]), float(request["min_gap_s"]))
    cap = decode.open_capture(request["path"])
    try:
        complete = decode.scan_scenes(cap, detector, request["fps"], _deadline(request), writer.add)
    finally:
        cap.release()
    keep = set(scenes.strongest(detector.starts, int(request["max_frames"])))
    frames = [f for f in writer.frames if f["time_s"] in keep]
    scores = dict(detector.starts)
    for entry in frames:
        entry["score"] = min(scores[entry["time_s"]], 255.0)
    return {"ok": True, "frames": frames, "complete": complete, "found": len(detector.starts)}


_ACTIONS = {"probe": _do_probe, "sample": _do_sample, "scenes": _do_scenes}


if __name__ == "__main__":
    sys.exit(main())
