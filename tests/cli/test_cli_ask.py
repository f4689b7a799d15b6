"""`scout-desk ask` end to end on a tiny real Llama 4: the JSON contract, saving, and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.cli import main
from app.conversation.grounding import detect_boxes
from app.core.ingest import ingest_path
from app.core.messages import Attachment, AttachmentStatus, Box, Message, Role, StopReason
from app.store.blobs import BlobStore
from app.store.rows import box_to_dict
from app.store.sessions import SessionStore

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(path)
    return path


def _ask(data_dir: Path, model: Path, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(data_dir),
        "ask",
        "--model",
        str(model),
        "--max-new-tokens",
        "6",
        *extra,
    ]


def test_json_answer_has_every_contract_field_and_is_saved(tmp_path, tiny_model, photo, capsys):
    data = tmp_path / "data"
    code = main(
        _ask(
            data,
            tiny_model,
            "--quantization",
            "bf16",
            "--image",
            str(photo),
            "--json",
            "What is this?",
        )
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "answer",
        "boxes",
        "attachments",
        "usage",
        "timings",
        "stop_reason",
        "session_id",
    }
    assert isinstance(report["answer"], str) and isinstance(report["boxes"], list)
    [attachment] = report["attachments"]
    assert attachment["path"] == str(photo) and attachment["kind"] == "image"
    assert attachment["status"] == "used" and attachment["tokens"] > 0
    assert report["usage"]["completion_tokens"] == 6
    assert report["usage"]["prompt_tokens"] > attachment["tokens"]
    assert report["stop_reason"] == "length"
    assert set(report["timings"]) == {"load_s", "ttft_s", "decode_tokens_per_s"}
    assert report["timings"]["load_s"] > 0

    store = SessionStore.open(data)
    try:
        [session] = store.list_sessions()
        assert session.id == report["session_id"]
        question, answer = store.messages(session.id)
        assert (question.role, question.text) == (Role.USER, "What is this?")
        assert question.attachments[0].width == 640
        assert (answer.role, answer.text) == (Role.ASSISTANT, report["answer"])
        assert answer.stop_reason is StopReason.LENGTH
    finally:
        store.close()


def test_no_save_leaves_the_store_empty(tmp_path, tiny_model, capsys):
    data = tmp_path / "data"
    assert main(_ask(data, tiny_model, "--quantization", "bf16", "--no-save", "--json", "Hi")) == 0
    assert json.loads(capsys.readouterr().out)["session_id"] is None
    store = SessionStore.open(data)
    try:
        assert store.list_sessions() == []
    finally:
        store.close()


def test_kv_cache_int8_answers_through_the_8_bit_cache(tmp_path, tiny_model, capsys, monkeypatch):
    from app.inference import llama4_kv

    made: list[str] = []
    real = llama4_kv.new_cache
    monkeypatch.setattr(
        llama4_kv, "new_cache", lambda config, kind: made.append(kind) or real(config, kind)
    )
    args = ("--quantization", "bf16", "--kv-cache", "int8", "--no-save", "--json", "Hi")
    assert main(_ask(tmp_path / "d", tiny_model, *args)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usage"]["completion_tokens"] == 6 and report["stop_reason"] == "length"
    assert made == ["int8"]


def test_output_head_int8_answers_through_an_8_bit_head(tmp_path, tiny_model, capsys, monkeypatch):
    from app.inference import llama4_head

    heads: list[str] = []
    real = llama4_head.quantize_output_head

    def quantize(model: Any) -> int:
        heads.append(type(model).__name__)
        return real(model)

    monkeypatch.setattr(llama4_head, "quantize_output_head", quantize)
    args = ("--quantization", "bf16", "--output-head", "int8", "--no-save", "--json", "Hi")
    assert main(_ask(tmp_path / "d", tiny_model, *args)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usage"]["completion_tokens"] == 6 and report["stop_reason"] == "length"
    assert heads == ["Llama4ForConditionalGeneration"]


def test_without_json_the_answer_streams_as_plain_text(tmp_path, tiny_model, capsys):
    data = tmp_path / "d"
    assert main(_ask(data, tiny_model, "--quantization", "bf16", "Hello")) == 0
    out = capsys.readouterr().out
    store = SessionStore.open(data)
    try:
        [session] = store.list_sessions()
        answer = store.messages(session.id)[-1]
    finally:
        store.close()
    # What streamed to stdout is exactly the saved answer (plus the closing newline), not JSON.
    assert out == answer.text + "\n"
    assert answer.stop_reason is StopReason.LENGTH


def test_an_unusable_image_exits_3_naming_it(tmp_path, tiny_model, capsys):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert main(_ask(tmp_path / "d", tiny_model, "--image", str(empty), "What?")) == 3
    assert "empty.png" in capsys.readouterr().err


def test_a_text_file_passed_as_image_exits_3(tmp_path, tiny_model, capsys):
    notes = tmp_path / "notes.png"
    notes.write_text("just words", encoding="utf-8")
    assert main(_ask(tmp_path / "d", tiny_model, "--image", str(notes), "What?")) == 3
    assert "is not an image" in capsys.readouterr().err


def test_no_model_folder_exits_4(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "d"), "ask", "What?"]) == 4
    assert "model folder" in capsys.readouterr().err


def test_a_model_folder_with_a_missing_shard_exits_4_without_a_traceback(tmp_path, tiny_model):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    shards = sorted(broken.glob("model-*.safetensors"))
    assert shards, "the tiny model is expected to be sharded"
    shards[0].unlink()
    result = subprocess.run(
        [sys.executable, "-m", "app", *_ask(tmp_path / "d", broken, "--json", "What?")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 4
    assert shards[0].name in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def _boxes_for(answer: str, attachments: list[Attachment]) -> tuple[list[Box], list[str]]:
    """The boxes the pipeline finds in `answer` to a question sent with `attachments`."""
    history = [
        Message("q", "s", Role.USER, "Where?", 0.0, attachments=tuple(attachments)),
        Message("a", "s", Role.ASSISTANT, answer, 0.0),
    ]
    return detect_boxes(history, "a", answer)


def test_boxes_are_in_pixels_of_the_upright_images_among_those_used(tmp_path):

    blobs = BlobStore(tmp_path / "blobs")
    # Stored 640x480 sideways with EXIF "rotate 90": upright it is 480 wide and 640 tall.
    sideways = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (640, 480), (10, 200, 10)).save(sideways, exif=exif)
    second = tmp_path / "second.png"
    Image.new("RGB", (100, 50), (0, 0, 200)).save(second)
    [upright] = ingest_path(sideways, blobs)
    [other] = ingest_path(second, blobs)
    assert (upright.width, upright.height) == (480, 640)
    used = [
        replace(upright, status=AttachmentStatus.USED),
        replace(other, status=AttachmentStatus.USED),
    ]
    answer = "**Bottle**\n<BBOX>0,0,1,0.5</BBOX>\n\nIn image 2: - lid: [0.5, 0.0, 1.0, 1.0]"
    boxes, notes = _boxes_for(answer, used)
    assert boxes == [Box("Bottle", 0, 0, 0, 480, 320), Box("lid", 1, 50, 0, 100, 50)]
    assert notes == []
    # A skipped image takes no index: the model saw one image, so every box is on it.
    skipped = [used[0], replace(used[1], status=AttachmentStatus.SKIPPED)]
    boxes, notes = _boxes_for(answer, skipped)
    assert boxes == [Box("Bottle", 0, 0, 0, 480, 320), Box("lid", 0, 240, 0, 480, 640)]
    # Three images: "image 2" is the second one, whatever came before it.
    three = [used[1], *used]
    assert [b.image for b in _boxes_for(answer, three)[0]] == [0, 1]
    assert _boxes_for(answer, []) == ([], [])


def test_json_boxes_are_valid_and_saved_with_the_answer(tmp_path, tiny_model, photo, capsys):
    data = tmp_path / "data"
    args = ["--quantization", "bf16", "--image", str(photo), "--json", "Where is the red?"]
    assert main(_ask(data, tiny_model, *args)) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["boxes"], list)
    for box in report["boxes"]:  # the tiny model writes random text: usually none
        assert set(box) == {"label", "image", "x1", "y1", "x2", "y2"}
        assert box["image"] == 0 and 0 <= box["x1"] < box["x2"] <= 640
        assert 0 <= box["y1"] < box["y2"] <= 480
    store = SessionStore.open(data)
    try:
        question, answer = store.messages(report["session_id"])
    finally:
        store.close()
    assert [box_to_dict(b) for b in answer.boxes] == report["boxes"]
    assert list(answer.boxes) == _boxes_for(report["answer"], list(question.attachments))[0]


def test_doc_folder_lists_every_file_with_status_reason_and_tokens(tmp_path, tiny_model, capsys):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "main.py").write_text("def main():\n    return 42\n", encoding="utf-8")
    (repo / "README.md").write_text("# Demo\nA tiny project.\n", encoding="utf-8")
    (repo / "logo.bin").write_bytes(b"\x00\x01\x02" * 100)
    (repo / ".gitignore").write_text("build/\n", encoding="utf-8")
    (repo / "build").mkdir()
    (repo / "build" / "out.txt").write_text("generated", encoding="utf-8")
    args = ["--quantization", "bf16", "--doc", str(repo), "--json", "What does main return?"]
    assert main(_ask(tmp_path / "d", tiny_model, *args)) == 0
    rows = {
        Path(r["path"]).relative_to(repo).as_posix(): r
        for r in json.loads(capsys.readouterr().out)["attachments"]
    }
    assert rows["src/main.py"]["status"] == "used" and rows["src/main.py"]["tokens"] > 0
    assert rows["README.md"]["status"] == "used" and rows["README.md"]["tokens"] > 0
    assert rows["logo.bin"]["status"] == "skipped" and rows["logo.bin"]["detail"]
    assert rows["logo.bin"]["tokens"] == 0
    # .gitignore honoured: nothing under build/ was read, and the folder says why it was skipped.
    build = [row for path, row in rows.items() if path.startswith("build")]
    assert build and all(row["status"] == "skipped" and row["tokens"] == 0 for row in build)
    assert "ignore" in build[0]["detail"].lower()


def test_doc_pdf_is_a_used_document_with_tokens(tmp_path, tiny_model, capsys):
    from tests.helpers.pdf_samples import text_pdf

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(text_pdf(["Revenue grew by 12 percent.", "Costs fell."]))
    args = ["--quantization", "bf16", "--doc", str(pdf), "--json", "How much did revenue grow?"]
    assert main(_ask(tmp_path / "d", tiny_model, *args)) == 0
    [row] = json.loads(capsys.readouterr().out)["attachments"]
    assert (row["path"], row["kind"], row["status"]) == (str(pdf), "document", "used")
    assert row["tokens"] > 10


def test_a_password_protected_pdf_exits_3_naming_it(tmp_path, tiny_model, capsys):
    from tests.helpers.pdf_samples import encrypted_pdf

    pdf = tmp_path / "secret.pdf"
    pdf.write_bytes(encrypted_pdf(["hidden"], user_password="pw"))
    assert main(_ask(tmp_path / "d", tiny_model, "--doc", str(pdf), "What?")) == 3
    err = capsys.readouterr().err
    assert "secret.pdf" in err and "password" in err.lower()


def test_video_is_seen_through_five_frames_with_their_times(tmp_path, tiny_model, capsys):
    from tests.helpers.video_clips import write_clip

    clip = tmp_path / "clip.avi"
    write_clip(clip)
    args = ["--quantization", "bf16", "--video", str(clip), "--json", "What happens?"]
    assert main(_ask(tmp_path / "d", tiny_model, *args)) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = [(row["kind"], row["status"]) for row in report["attachments"]]
    assert kinds == [("video", "used")] + [("image", "used")] * 5
    assert all(row["tokens"] > 0 for row in report["attachments"][1:])
    store = SessionStore.open(tmp_path / "d")
    try:
        question = store.messages(report["session_id"])[0]
    finally:
        store.close()
    times = [a.name.rpartition(" @ ")[2] for a in question.attachments[1:]]
    assert times == sorted(times) and len(set(times)) == 5  # spread over the clip, in order
