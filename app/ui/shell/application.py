"""Starts the GUI: application, theme, store, main window; crash dialog, log file, start-up probe.

Exit codes: 0 after a normal close, 1 when the app cannot start (the data folder or the session
database is unusable; a dialog and stderr say why).

Start-up probe: with `SCOUT_DESK_STARTUP_PROBE=1` the app prints one line to stderr when the main
window is first exposed (as bench/startup.py's bare-window baseline does),
`window-shown <seconds since process start> torch_loaded=<0|1> transformers_loaded=<0|1>`, and
quits with 0. "Process start" is the kernel's start time of this process (`/proc/self/stat`), so
the figure includes the interpreter's own start-up; where /proc is missing it is the time main.py
recorded in `SCOUT_DESK_T0` as its first act.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core import paths
from app.core.atomic import write_atomically
from app.core.paths import make_private
from app.core.settings import Settings, load_settings
from app.inference.engine import Engine
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.chat.controller import EngineBuilder
from app.ui.shell.main_window import MainWindow
from app.ui.widgets.plain_text import plain_label, plain_message_box
from app.ui.widgets.theme import apply_theme

log = logging.getLogger(__name__)

PROBE_ENV = "SCOUT_DESK_STARTUP_PROBE"
T0_ENV = "SCOUT_DESK_T0"
EXIT_OK = 0
EXIT_START_FAILED = 1
_IMPORTED_AT = time.time()
_ICONS = Path(__file__).resolve().parents[2] / "assets" / "icons"
_PROBE_FALLBACK_MS = 30_000


def default_engine_factory(settings: Settings) -> Engine:
    """Build the engine the settings describe (runs on the worker thread, not loaded yet).

    Args:
        settings: the settings in force (backend; model folder and quantization, or server).

    Returns:
        A `RemoteEngine` for a server (its key from SCOUT_DESK_API_KEY or the keyring), else
        the local engine from `app.inference.local_engine.create_engine`.

    Raises:
        ModelError: no model folder (or no server URL) is chosen.
    """
    # Imported here, on the worker thread: the local engine pulls in torch/transformers.
    if settings.backend == "server":
        from app.core.api_keys import load_api_key
        from app.inference.engine import ModelError
        from app.inference.remote_engine import RemoteEngine

        if not settings.server_url:
            raise ModelError("No server URL is set: type it in Settings.")
        key = load_api_key(settings.server_url)
        return RemoteEngine(settings.server_url, settings.server_model or None, api_key=key)
    from app.inference.local_engine import create_engine

    return create_engine(settings)


def process_age_s() -> float:
    """Seconds since this process started (see the module docstring for the clock used)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Fields after the parenthesised command name start at field 3; starttime is field 22.
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            return time.time() - float(os.environ[T0_ENV])
        except (KeyError, ValueError):
            return time.time() - _IMPORTED_AT


# -- crashes -----------------------------------------------------------------------------------


class CrashDialog(QDialog):
    """Says a bug happened, where its report was saved, and shows the traceback to copy."""

    def __init__(self, report: str, log_file: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Scout Desk hit a bug")
        self.resize(720, 460)
        saved = f"The details were saved to {log_file}." if log_file else ""
        intro = plain_label(  # it names the log file's folder, which the user chose
            "Something went wrong inside Scout Desk. Your chats are saved as you go; it is "
            f"safest to restart. {saved} Copying the details helps fix it."
        )
        intro.setWordWrap(True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QPlainTextEdit(report)
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Error details")
        buttons = QDialogButtonBox()
        copy = buttons.addButton("Copy details", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy_details)
        buttons.addButton("Keep running", QDialogButtonBox.ButtonRole.RejectRole)
        quit_button = buttons.addButton("Quit", QDialogButtonBox.ButtonRole.DestructiveRole)
        quit_button.clicked.connect(self._on_quit_clicked)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)

    def append(self, report: str) -> None:
        """Add a later crash's report below the first."""
        self.details.appendPlainText("\n" + report)

    def copy_details(self) -> None:
        """Put the traceback on the clipboard."""
        QGuiApplication.clipboard().setText(self.details.toPlainText())

    def _on_quit_clicked(self) -> None:
        self.accept()
        QApplication.closeAllWindows()
        QApplication.exit(EXIT_START_FAILED)


class CrashReporter(QObject):
    """An excepthook: writes each uncaught exception to a crash file and shows `CrashDialog`.

    Only the traceback is written (no local variables), so prompt text does not reach the log.
    Exceptions on other threads are reported too; the dialog always opens on the GUI thread.

    Args:
        log_dir: where crash files go (`<data_dir>/logs`).
        show_dialog: False to only log (the start-up probe, tests).
    """

    #: (report, crash file path or ""): an uncaught exception was recorded.
    crashed = Signal(str, str)

    def __init__(self, log_dir: Path, show_dialog: bool = True) -> None:
        super().__init__()
        self._log_dir = log_dir
        self._show_dialog = show_dialog
        self._dialog: CrashDialog | None = None
        self._previous: tuple[object, object] | None = None
        self.crashed.connect(self._on_self_crashed, Qt.ConnectionType.QueuedConnection)

    @property
    def dialog(self) -> CrashDialog | None:
        """The crash dialog now shown, if any."""
        return self._dialog

    def install(self) -> None:
        """Become `sys.excepthook` and `threading.excepthook`."""
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread

    def uninstall(self) -> None:
        """Put the previous hooks back."""
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous  # type: ignore[assignment]
            self._previous = None

    def handle(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        """Record one uncaught exception (safe to call from any thread)."""
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        report = "".join(traceback.format_exception(exc_type, exc, tb))
        log_file = self.write_report(report)
        log.error("uncaught %s (report: %s)", exc_type.__name__, log_file)
        sys.stderr.write(report)
        self.crashed.emit(report, str(log_file) if log_file else "")

    def write_report(self, report: str) -> Path | None:
        """Write a crash file; None when the logs folder cannot be written."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            self._log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = self._log_dir / f"crash-{stamp}-{os.getpid()}.log"
            text = f"Scout Desk crash report, {time.ctime()}\n\n{report}"
            write_atomically(target, text.encode("utf-8"), private=True)
        except OSError:
            return None
        return target

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    def _on_self_crashed(self, report: str, log_file: str) -> None:
        if not self._show_dialog:
            return
        if self._dialog is not None and self._dialog.isVisible():
            self._dialog.append(report)
            return
        self._dialog = CrashDialog(report, Path(log_file) if log_file else None)
        self._dialog.show()


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are 0600 like the rest of the data folder, whatever the umask."""

    def _open(self):  # type: ignore[no-untyped-def]  # the base class's hook, untyped there
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        make_private(Path(self.baseFilename))  # a log left 0644 by an older version
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(log_dir: Path) -> None:
    """Send warnings and errors to `<data_dir>/logs/scout-desk.log` (rotated, never prompt text)."""
    root = logging.getLogger()
    if any(getattr(h, "_scout_desk", False) for h in root.handlers):
        return
    try:
        handler = _PrivateRotatingFileHandler(
            log_dir / "scout-desk.log", maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return
    handler._scout_desk = True  # type: ignore[attr-defined]
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


# -- start-up ----------------------------------------------------------------------------------


class _FirstExposeProbe(QObject):
    """Reports `window-shown ...` once when the window is first exposed, then closes it.

    Call before `show()`: it creates the native window so it can watch its first Expose event.
    """

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._done = False
        window.winId()  # creates the QWindow the Expose event is sent to
        handle = window.windowHandle()
        if handle is not None:
            handle.installEventFilter(self)
        QTimer.singleShot(_PROBE_FALLBACK_MS, self._report)  # never hang a probe

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Expose and not self._done and watched.isExposed():
            self._report()
        return False

    def _report(self) -> None:
        if self._done:
            return
        self._done = True
        line = (
            f"window-shown {process_age_s():.4f} torch_loaded={int('torch' in sys.modules)} "
            f"transformers_loaded={int('transformers' in sys.modules)}"
        )
        print(line, file=sys.stderr, flush=True)
        QTimer.singleShot(0, self._quit)

    def _quit(self) -> None:
        self._window.close()
        QApplication.exit(EXIT_OK)


def _application() -> QApplication:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(sys.argv[:1] or ["scout-desk"])
    app.setApplicationName("Scout Desk")
    app.setOrganizationName("Scout Desk")
    app.setDesktopFileName("scout-desk")
    icon = QIcon()
    for png in sorted(_ICONS.glob("scout-desk-*.png")):
        icon.addFile(str(png))
    if not icon.isNull():
        app.setWindowIcon(icon)
    return app


def _fatal(message: str, probe: bool) -> int:
    print(f"scout-desk: {message}", file=sys.stderr)
    if not probe:
        # The message quotes the data folder or the database, which may be named anything.
        title = "Scout Desk cannot start"
        plain_message_box(None, QMessageBox.Icon.Critical, title, message).exec()
    return EXIT_START_FAILED


def run_gui(
    data_dir: Path | None = None,
    files: Sequence[Path] = (),
    engine_factory: EngineBuilder | None = None,
    model_dir: Path | None = None,
) -> int:
    """Open the window and run until it closes.

    Args:
        data_dir: the data folder (`--data-dir`); None for env / platform default.
        files: files to attach to a new chat.
        engine_factory: builds the engine from the settings in force, on the worker thread;
            None uses `default_engine_factory` (which needs a model folder).
        model_dir: a model folder from `--model` (wins over SCOUT_DESK_MODEL and settings).

    Returns:
        The exit code: 0 after a normal close, 1 when the app could not start.
    """
    probe = os.environ.get(PROBE_ENV) == "1"
    app = _application()
    try:
        folder = paths.data_dir(data_dir)
        log_dir = paths.logs_dir(folder)
    except paths.DataDirError as exc:
        return _fatal(exc.message, probe)
    setup_logging(log_dir)
    crash = CrashReporter(log_dir, show_dialog=not probe)
    crash.install()
    try:
        settings, warnings = load_settings(paths.settings_file(folder))
        apply_theme(app, settings.theme)
        try:
            store = SessionStore.open(folder)
        except StoreError as exc:
            return _fatal(exc.message, probe)
        try:
            window = MainWindow(
                store,
                folder,
                settings,
                engine_factory or default_engine_factory,
                model_override=model_dir or paths.model_dir_from_env(),
                requires_model_dir=engine_factory is None,
            )
            if probe:
                _FirstExposeProbe(window)
            window.show()
            window.open_files(list(files))
            for warning in warnings:
                window.status.showMessage(warning, 15_000)
            code = app.exec()
            window.shutdown()
            window.deleteLater()
        finally:
            store.close()
        return code
    finally:
        crash.uninstall()
