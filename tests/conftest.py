"""Suite-wide guards and fixtures: Qt runs offscreen, no test may leave a thread running behind
it, and one tiny Llama 4 folder is built per session for every test that needs a real model."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
    # Threads that are ending get up to 2 s in all: join them (not poll) until the deadline.
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
        ]
        left = deadline - time.monotonic()
        if not leaked or left <= 0:
            break
        leaked[0].join(left)
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
def _no_running_worker_threads():
    """Fail a test that leaves an inference worker QThread running (Python cannot see QThreads)."""
    yield
    worker = sys.modules.get("app.ui.tasks.inference_worker")
    if worker is not None:
        assert worker.running_worker_threads() == 0, "test left an inference worker thread running"


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path) and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A complete tiny random Llama 4 folder (bf16 safetensors shards, processor, configs).

    Built once per test session and shared by every test that needs a real model folder, so no
    test may change it: a test that needs a variant (another config, a damaged or extra file)
    copies it first (`shutil.copytree(tiny_model, tmp_path / "model")`). The folder is checked
    at the end of the session, and a change fails the run.
    """
    from app.inference.tiny import build_tiny_llama4

    folder = build_tiny_llama4(tmp_path_factory.mktemp("tiny-llama4") / "model")
    built = _fingerprint(folder)
    yield folder
    assert _fingerprint(folder) == built, (
        "a test changed the shared tiny model folder; copy it (shutil.copytree) and change the copy"
    )


@pytest.fixture(scope="session")
def endless_tiny_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with no end-of-answer token, so an answer runs to its length.

    For tests that stop an answer midway: the random model samples `<|eot|>` now and then, and
    at ~170 tok/s a 30-token answer can be over before a Stop or a SIGINT lands.
    """
    import json
    import shutil

    folder = tmp_path_factory.mktemp("endless-llama4") / "model"
    shutil.copytree(tiny_model, folder)
    config_path = folder / "generation_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["eos_token_id"] = None
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return folder
