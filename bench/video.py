"""Video sampling benchmark: 16 frames from a 10-minute 720p clip by seeking vs a sequential read.

    .venv/bin/python bench/video.py                # 2 cores (the CI machine), clip cached in /tmp
    .venv/bin/python bench/video.py --cores 0      # every core
    .venv/bin/python bench/video.py --minutes 2 --fourcc MJPG

The clip (a gradient with a moving square, 10 fps, mp4v by default) is written once with OpenCV
into the temp folder and reused. Figures, all wall-clock:

- probe: `probe_video` (a child process: start, open, find the end by seeking).
- sampled: `sample_frames` with 16 frames spread over the clip (a child process: start, seek to
  each frame, encode 16 JPEGs and 16 thumbnails) — the issue's goal is <= 1.5 s on 2 cores.
- sequential: a plain `VideoCapture.read()` of every frame, in this process (what sampling would
  cost without seeking), and the ratio sequential / sampled.
- seek strategies, in this process, for the same 16 times: `set(CAP_PROP_POS_MSEC)`,
  `set(CAP_PROP_POS_FRAMES)` and `grab()` forward; each is checked to return the same frames as
  the sequential read, and its time printed.

Prints only; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.video.data import Sampling, SamplingMode
from app.core.video.probe import probe_video
from app.core.video.sampling import plan_times, sample_frames

SIZE = (1280, 720)
FPS = 10
SAMPLES = 16


def write_clip(path: Path, minutes: float, fourcc: str) -> None:
    """A gradient background with a moving square and a frame counter (cheap to encode)."""
    frames = round(minutes * 60 * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {fourcc} here")
    x = np.linspace(0, 255, SIZE[0], dtype=np.float32)
    base = np.repeat(np.repeat(x[None, :, None], SIZE[1], axis=0), 3, axis=2).astype(np.uint8)
    for index in range(frames):
        frame = base.copy()
        frame[..., 0] = (frame[..., 0].astype(np.int32) + index) % 256
        left = (index * 7) % (SIZE[0] - 100)
        frame[300:400, left : left + 100] = 255
        cv2.putText(frame, str(index), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 3)
        writer.write(frame)
    writer.release()


def sequential(path: Path, keep_ms: set[int]) -> tuple[float, dict[int, np.ndarray], int]:
    """Read every frame, keeping only those at `keep_ms` (decoder times, in ms)."""
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames: dict[int, np.ndarray] = {}
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        millis = round(capture.get(cv2.CAP_PROP_POS_MSEC))
        if millis in keep_ms:
            frames[millis] = frame
    capture.release()
    return time.perf_counter() - start, frames, count


def seek_strategy(path: Path, times: list[float], how: str) -> tuple[float, list[int], list]:
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    got_ms, images = [], []
    for t in times:
        if how == "msec":
            capture.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        elif how == "frames":
            capture.set(cv2.CAP_PROP_POS_FRAMES, round(t * FPS))
        else:  # grab forward
            while capture.get(cv2.CAP_PROP_POS_MSEC) < t * 1000 - 500 / FPS:
                if not capture.grab():
                    break
        if how == "grab" and capture.get(cv2.CAP_PROP_POS_MSEC) >= t * 1000 - 500 / FPS:
            ok, frame = capture.retrieve()
        else:
            ok, frame = capture.read()
        got_ms.append(round(capture.get(cv2.CAP_PROP_POS_MSEC)))
        images.append(frame if ok else None)
    capture.release()
    return time.perf_counter() - start, got_ms, images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2, help="CPU cores to use (0: all)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fourcc", default="mp4v", choices=("mp4v", "MJPG"))
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        # The decode child inherits this affinity, so both paths run on the same cores.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    cv2.setNumThreads(max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity")
                      else 0)  # fmt: skip
    ext = "mp4" if args.fourcc == "mp4v" else "avi"
    folder = Path(tempfile.gettempdir()) / "scout-desk-bench"
    folder.mkdir(exist_ok=True)
    clip = folder / f"clip-720p-{args.minutes:g}min-{FPS}fps-{args.fourcc}.{ext}"
    if not clip.exists():
        print(f"writing {clip} ...", flush=True)
        started = time.perf_counter()
        partial = clip.with_suffix(".partial." + ext)
        write_clip(partial, args.minutes, args.fourcc)
        partial.replace(clip)
        print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"clip: {clip.name}, {clip.stat().st_size / 1e6:.0f} MB; cores: {cores}")

    started = time.perf_counter()
    info = probe_video(clip, timeout_s=120)
    probe_s = time.perf_counter() - started
    print(f"probe:      {probe_s:6.2f} s  ({info.duration_s:.1f} s, {info.fps:g} fps, "
          f"{info.width}x{info.height}, {info.frame_count} frames)")  # fmt: skip

    sampling = Sampling(SamplingMode.COUNT, count=SAMPLES)
    started = time.perf_counter()
    frames = sample_frames(clip, sampling, info, timeout_s=300)
    sampled_s = time.perf_counter() - started
    print(f"sampled:    {sampled_s:6.2f} s  ({len(frames)} frames; goal <= 1.5 s on 2 cores)")

    times = plan_times(info, sampling)
    strategies = {how: seek_strategy(clip, times, how) for how in ("msec", "frames", "grab")}
    wanted = {ms for _took, got, _images in strategies.values() for ms in got}
    sequential_s, decoded, count = sequential(clip, wanted)
    print(f"sequential: {sequential_s:6.2f} s  ({count} frames read)")
    print(f"ratio:      {sequential_s / sampled_s:6.1f}x faster sampled than sequential")

    print("seek strategies for the same 16 times (in this process, no JPEG encoding):")
    for how, (took, got, images) in strategies.items():
        same = all(img is not None and np.array_equal(img, decoded.get(ms)) for ms, img in
                   zip(got, images, strict=True))  # fmt: skip
        print(f"  {how:7s} {took:6.2f} s  frames equal to the sequential read: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
