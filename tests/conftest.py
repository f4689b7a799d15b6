"""Suite-wide guards: Qt runs offscreen, and no test may leave a thread running behind it."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a loaded 2-core CI machine an example can take
# longer than hypothesis' default 200 ms deadline, which would fail a correct test at random.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

# Before any Qt import: tests never need a display, and must not pick up the user's data folder.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Point SCOUT_DESK_DATA_DIR at a fresh folder so no test touches real user data."""
    monkeypatch.setenv("SCOUT_DESK_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv("SCOUT_DESK_MODEL", raising=False)


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail a test that leaves a Python thread (or an inference worker thread) running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
def _no_running_worker_threads():
    """Fail a test that leaves an inference worker QThread running (Python cannot see QThreads)."""
    yield
    worker = sys.modules.get("app.ui.tasks.inference_worker")
    if worker is not None:
        assert worker.running_worker_threads() == 0, "test left an inference worker thread running"
