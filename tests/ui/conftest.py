"""Fixtures for the window tests: a real store in a temp folder, windows over a scripted engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.inference.scripted import Reply, ScriptedEngine
from app.store.sessions import SessionStore
from app.ui.shell.main_window import MainWindow
from app.ui.tasks.inference_worker import running_worker_threads
from tests.helpers.offscreen import OFFSCREEN_NOISE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.parent == here:
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def _no_running_worker_threads() -> Iterator[None]:
    """Fail a test that leaves an inference worker running (Python cannot see QThreads)."""
    yield
    assert running_worker_threads() == 0, "test left an inference worker thread running"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def open_store(data_dir: Path) -> Iterator[Callable[[], SessionStore]]:
    """Open stores over the same data folder (a "restart"); all are closed after the test."""
    stores: list[SessionStore] = []

    def open_() -> SessionStore:
        stores.append(SessionStore.open(data_dir))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def open_window(qtbot, data_dir: Path, open_store) -> Iterator[WindowFactory]:
    """Open main windows over a scripted engine; each is closed (threads joined) after the test."""
    windows: list[MainWindow] = []

    def open_(
        replies: Sequence[Reply] = ("Hello from the scripted engine.",),
        *,
        chunk_delay_s: float = 0.0,
        engine: ScriptedEngine | None = None,
        settings: Settings | None = None,
        requires_model_dir: bool = False,
        factory: Callable[[Settings], object] | None = None,
    ) -> MainWindow:
        scripted = engine or ScriptedEngine(replies, chunk_delay_s=chunk_delay_s)
        window = MainWindow(
            open_store(),
            data_dir,
            settings or Settings(),
            factory or (lambda _settings: scripted),  # type: ignore[arg-type]
            requires_model_dir=requires_model_dir,
        )
        window.engine = scripted  # type: ignore[attr-defined]  # for the test to inspect
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    yield open_
    for window in windows:
        window.close()
        window.deleteLater()
