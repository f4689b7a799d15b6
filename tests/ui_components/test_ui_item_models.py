"""Every Qt item model of the UI passes Qt's model tester, filled with real data and then changed.

`qtmodeltester.check(model)` attaches Qt's QAbstractItemModelTester to the empty model (its
failures are Qt warnings, which fail the test); it stays attached, so every reset and change
after it is checked too. Once the model is filled, `check(model, force_py=True)` adds
pytest-qt's Python tester, which also checks the type of what each standard role returns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from app.core.grounding.boxes import parse_boxes
from app.core.messages import StopReason
from app.core.video.data import Sampling, SamplingMode
from app.core.video.probe import probe_video
from app.core.video.sampling import sample_frames
from app.store.sessions import SessionStore
from app.ui.chat.session_list_model import SESSION_ID_ROLE, SessionListModel
from app.ui.video.frame_list import FRAME_ROLE, FrameListModel
from app.ui.video.timeline import TimelineFrame
from app.ui.viewer.box_list_model import BOX_INDEX_ROLE, COORDS_ROLE, BoxListModel
from app.ui.viewer.overlay_render import label_colours
from tests.helpers.video_clips import write_clip


def _column(model, role: int = Qt.ItemDataRole.DisplayRole) -> list[object]:
    return [model.index(row, 0).data(role) for row in range(model.rowCount())]


@pytest.fixture
def store(tmp_path: Path):
    with SessionStore.open(tmp_path / "data") as opened:
        yield opened


def test_session_list_model_over_a_real_store(qtbot, qtmodeltester, store: SessionStore):
    model = SessionListModel()
    qtmodeltester.check(model)  # Qt's tester, from the empty model on
    for question, answer in [
        ("What breed is this dog?", "A border collie."),
        ("Summarise the report", "Revenue grew by 12 percent."),
        ("Where is the ruler?", "**Ruler**\n<BBOX>0.1,0.5,0.9,0.6</BBOX>"),
    ]:
        session = store.create_session()
        store.add_user_message(session.id, question)
        reply = store.begin_assistant_message(session.id)
        store.finish_message(reply.id, answer, StopReason.EOS)
    store.create_session()  # an untitled chat with no message yet

    model.set_sessions(store.list_sessions())
    qtmodeltester.check(model, force_py=True)  # and the Python one, from here on
    listed = store.list_sessions()
    assert _column(model, SESSION_ID_ROLE) == [s.id for s in listed]
    assert "Where is the ruler?" in _column(model)

    store.rename_session(listed[1].id, "Renamed chat")
    store.trash_session(listed[2].id)
    model.set_sessions(store.list_sessions())
    assert "Renamed chat" in _column(model)
    assert model.rowCount() == 3

    # The trash view: the same model over the trashed sessions.
    model.set_sessions(store.list_sessions(trashed=True))
    assert _column(model, SESSION_ID_ROLE) == [listed[2].id]
    model.set_sessions([])
    assert model.rowCount() == 0


def test_box_list_model_over_parsed_boxes(qtbot, qtmodeltester):
    model = BoxListModel()
    qtmodeltester.check(model)  # Qt's tester, from the empty model on
    answer = (
        "**Objects detected:**\n- **Laptop** [0.1, 0.1, 0.6, 0.5]\n"
        "- **Mouse** [0.7, 0.6, 0.8, 0.7]\n- **Laptop** [0.05, 0.55, 0.3, 0.9]"
    )
    boxes = parse_boxes(answer, (640, 480))
    assert len(boxes) == 3
    colours = label_colours(b.label for b in boxes)

    model.set_boxes(list(enumerate(boxes)), colours)
    qtmodeltester.check(model, force_py=True)  # and the Python one, from here on
    assert _column(model, BOX_INDEX_ROLE) == [0, 1, 2]
    assert _column(model, COORDS_ROLE)[1] == "448, 288, 512, 336"
    assert all(isinstance(c, QColor) for c in _column(model, Qt.ItemDataRole.DecorationRole))

    # One image's boxes, then another's, without the message's colours, then none.
    model.set_boxes([(1, boxes[1])])
    assert model.rowCount() == 1 and model.row_of(1) == 0
    model.set_boxes([(0, boxes[0]), (2, boxes[2])], colours)
    assert model.row_of(2) == 1
    model.set_boxes([])
    assert model.rowCount() == 0


def test_frame_list_model_over_frames_sampled_from_a_real_clip(qtbot, qtmodeltester, tmp_path):
    clip = write_clip(tmp_path / "clip.avi")
    sampled = sample_frames(clip, Sampling(SamplingMode.COUNT, count=4), probe_video(clip))
    frames = [TimelineFrame(f.time_s, QImage.fromData(f.thumbnail or f.jpeg)) for f in sampled]
    assert len(frames) == 4 and not any(f.thumb.isNull() for f in frames)

    model = FrameListModel()
    qtmodeltester.check(model)  # Qt's tester, from the empty model on
    model.set_frames(frames)
    qtmodeltester.check(model, force_py=True)  # and the Python one, from here on
    assert _column(model, FRAME_ROLE) == frames

    # A frame-by-frame pass: frames queue, get answers (one with a box), one is stopped.
    boxes = parse_boxes("**Square** [0.1, 0.4, 0.2, 0.55]", (160, 120))
    for position, frame in enumerate(frames):
        frame.waiting = True
        model.frame_changed(position)
    assert all("Waiting" in str(text) for text in _column(model))
    for position, frame in enumerate(frames[:3]):
        frame.waiting = False
        frame.answer = f"The square is near the left, frame {position}."
        frame.boxes = tuple(boxes) if position == 1 else ()
        frame.stop_reason = StopReason.EOS
        model.frame_changed(position)
    frames[3].waiting = False
    frames[3].answer = "The square is"
    frames[3].stop_reason = StopReason.CANCELLED
    model.frame_changed(3)
    model.frame_changed(99)  # outside the list: nothing to repaint, no signal
    shown = _column(model)
    assert "1 box" in str(shown[1]) and str(shown[3]).endswith("(stopped)")

    model.set_frames(frames[:2])
    assert model.rowCount() == 2
    model.set_frames([])
    assert model.rowCount() == 0
