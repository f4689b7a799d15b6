"""`scout-desk video` end to end on a tiny real Llama 4: JSON contract, saved run, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import cli
from app.cli import main
from app.core.messages import AttachmentKind, Role
from app.core.video.run import load_video_run
from app.store.sessions import SessionStore
from tests.helpers.video_clips import CUT_FRAME, FPS, FRAMES, write_clip


def test_video_is_a_registered_subcommand():
    assert cli._SUBCOMMANDS["video"][0] == "app.commands.video"


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.avi")


def _video(data: Path, model: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "video", "--model", str(model), "--quantization", "bf16",
            "--max-new-tokens", "4", *extra]  # fmt: skip


@pytest.mark.slow
def test_json_follows_the_contract_and_the_run_is_saved(tmp_path, tiny_model, clip, capsys):
    data = tmp_path / "data"
    code = main(_video(data, tiny_model, str(clip), "Where is the square?", "--frames", "3",
                       "--json"))  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"video", "frames", "summary"}
    assert report["video"] == {"duration_s": FRAMES / FPS, "fps": FPS, "width": 160,
                               "height": 120, "frame_count": FRAMES}  # fmt: skip
    assert [f["index"] for f in report["frames"]] == [0, 1, 2]
    assert [f["time_s"] for f in report["frames"]] == [0.7, 2.0, 3.3]
    for frame in report["frames"]:
        assert set(frame) == {"index", "time_s", "answer", "boxes"}
        assert isinstance(frame["answer"], str) and isinstance(frame["boxes"], list)
    assert isinstance(report["summary"], str)

    with SessionStore.open(data) as store:
        [session] = store.list_sessions()
        messages = store.messages(session.id)
        question = messages[0]
        assert [a.kind for a in question.attachments] == [AttachmentKind.VIDEO] + [
            AttachmentKind.IMAGE
        ] * 3
        assert [m.role for m in messages[1:]] == [Role.ASSISTANT] * 4
        run = load_video_run(messages)
    assert run is not None and run.question == "Where is the square?"
    assert [r.answer for r in run.results] == [f["answer"] for f in report["frames"]]
    assert run.summary == report["summary"]


@pytest.mark.slow
def test_scene_mode_streams_a_line_per_frame(tmp_path, tiny_model, clip, capsys):
    code = main(_video(tmp_path / "d", tiny_model, str(clip), "What changes?", "--scenes"))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("00:00.000  ")
    assert lines[1].startswith(f"00:0{CUT_FRAME // FPS}.{CUT_FRAME % FPS}00  ")
    assert lines[2].startswith("Summary: ")


@pytest.mark.slow
def test_every_t_seconds_without_saving(tmp_path, tiny_model, clip, capsys):
    data = tmp_path / "d"
    code = main(_video(data, tiny_model, str(clip), "Q", "--every", "2", "--no-save", "--json"))
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["time_s"] for f in report["frames"]] == [0.0, 2.0]
    with SessionStore.open(data) as store:
        assert store.list_sessions() == []


def _random(folder: Path) -> Path:
    path = folder / "noise.mp4"
    path.write_bytes(bytes(range(256)) * 20)
    return path


def _playlist(folder: Path) -> Path:
    path = folder / "live.mp4"
    path.write_text("#EXTM3U\n#EXTINF:5,\nhttp://127.0.0.1:9/a.ts\n")
    return path


def _truncated(folder: Path) -> Path:
    path = write_clip(folder / "cut.mp4", "mp4v")
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _empty(folder: Path) -> Path:
    path = folder / "empty.mov"
    path.touch()
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("not a video")
    return path


@pytest.mark.parametrize("make", [_random, _playlist, _truncated, _empty, _text])
def test_a_file_that_is_not_a_usable_video_exits_3_naming_it(tmp_path, make, capsys):
    path = make(tmp_path)
    model = tmp_path / "no-model-needed"
    code = main(["--data-dir", str(tmp_path / "d"), "video", "--model", str(model), str(path),
                 "What?"])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert f"“{path.name}”" in err and "Traceback" not in err


def test_a_missing_model_folder_exits_4(tmp_path, clip, capsys, monkeypatch):
    monkeypatch.delenv("SCOUT_DESK_MODEL", raising=False)
    code = main(["--data-dir", str(tmp_path / "d"), "video", "--model", str(tmp_path / "none"),
                 str(clip), "What?", "--frames", "1"])  # fmt: skip
    assert code == 4
    assert "none" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra", [["--frames", "0"], ["--every", "-1"], ["--every", "x"], ["--frames", "2", "--scenes"]]
)
def test_bad_options_are_usage_errors(tmp_path, clip, extra):
    with pytest.raises(SystemExit) as stop:
        main(["--data-dir", str(tmp_path / "d"), "video", str(clip), "Q", *extra])
    assert stop.value.code == 2
