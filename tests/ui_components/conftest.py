"""Fixtures for the UI building blocks: a started inference worker that is always joined."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.inference.engine import Engine
from app.ui.tasks.inference_worker import InferenceWorker


@pytest.fixture
def start_worker(qtbot) -> Iterator[Callable[[Callable[[], Engine]], InferenceWorker]]:
    """Start workers on demand; every one is shut down (and its thread joined) after the test."""
    workers: list[InferenceWorker] = []

    def start(factory: Callable[[], Engine]) -> InferenceWorker:
        worker = InferenceWorker()
        worker.start(factory)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        assert worker.shutdown(5000), "worker thread did not stop"
