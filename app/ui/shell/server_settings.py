"""The settings dialog's backend part: the local model folder, or a vLLM server and its key."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.core.settings import Backend, Settings, check_server_url
from app.ui.tasks.pool import TaskPool
from app.ui.widgets.plain_text import plain_label

if TYPE_CHECKING:
    from app.inference.remote_engine import ServerInfo

#: Reads a server's models: (url, api key or None) → its `ServerInfo`; runs on a pool thread.
ReadServer = Callable[[str, "str | None"], "ServerInfo"]


def read_server(url: str, api_key: str | None) -> ServerInfo:
    """The default `ReadServer`: `/v1/models` through the remote engine's client."""
    from app.inference.remote_engine import server_info

    return server_info(url, api_key)


class ServerSettings(QWidget):
    """Backend = Local model folder | Server (URL, model from its list, API key, a test).

    Args:
        settings: the values to start from.
        saved_key: whether a key is already kept for the server shown (it is never shown).
        parent: the dialog.

    Attributes:
        read_server: how Test connection reads the server; tests may replace it.
    """

    #: str: the backend picked ("local" or "server").
    backend_changed = Signal(str)
    #: (ok, sentence): a connection test ended.
    tested = Signal(bool, str)

    def __init__(self, settings: Settings, saved_key: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.read_server: ReadServer = read_server
        self._tasks = TaskPool(1, self)
        self._test: int | None = None

        self.local_radio = QRadioButton("Local model folder", self)
        self.server_radio = QRadioButton("Server (vLLM, OpenAI-compatible)", self)
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.server_radio)
        (self.server_radio if settings.backend == "server" else self.local_radio).setChecked(True)
        self.server_radio.toggled.connect(self._on_backend_toggled)

        self.url_edit = QLineEdit(settings.server_url, self)
        self.url_edit.setPlaceholderText("http://127.0.0.1:8000/v1")
        self.url_edit.setAccessibleName("Server URL")
        self.url_edit.textChanged.connect(self._on_url_changed)
        self.model_combo = QComboBox(self)
        self.model_combo.setEditable(True)  # a model id typed before the server answers
        self.model_combo.setAccessibleName("Server model")
        if settings.server_model:
            self.model_combo.addItem(settings.server_model)
        self.model_combo.setCurrentText(settings.server_model)
        self.key_edit = QLineEdit(self)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setPlaceholderText(
            "saved in the keyring (type to replace)" if saved_key else "none (optional)"
        )
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setAccessibleName("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.result_label = plain_label("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_label = plain_label("")
        self.warning_label.setWordWrap(True)
        self.warning_label.setObjectName("ServerWarning")

        backends = QHBoxLayout()
        backends.addWidget(self.local_radio)
        backends.addWidget(self.server_radio)
        backends.addStretch(1)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        form = self._form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Backend:", backends)
        form.addRow("Server URL:", self.url_edit)
        form.addRow("Model:", self.model_combo)
        form.addRow("API key:", self.key_edit)
        form.addRow("", test_row)
        form.addRow("", self.result_label)
        form.addRow("", self.warning_label)
        self._server_widgets: list[QWidget] = [
            self.url_edit, self.model_combo, self.key_edit, self.test_button,
        ]  # fmt: skip
        self._on_backend_toggled(self.server_radio.isChecked())
        self._on_url_changed(self.url_edit.text())

    # -- values ------------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend picked."""
        return "server" if self.server_radio.isChecked() else "local"

    def server_url(self) -> str:
        """The URL as typed, checked ("" when it is not a usable URL)."""
        try:
            return check_server_url(self.url_edit.text())
        except ValueError:
            return ""

    def server_model(self) -> str:
        """The model id picked or typed."""
        return self.model_combo.currentText().strip()

    def typed_key(self) -> str | None:
        """A key typed here (to save in the keyring), or None when the field was left alone."""
        return self.key_edit.text().strip() or None

    def problem(self) -> str | None:
        """Why the server part cannot be saved as it is (a bad URL), or None."""
        if self.backend != "server":
            return None
        try:
            url = check_server_url(self.url_edit.text())
        except ValueError as exc:
            return f"The server URL is not usable: {exc}."
        return None if url else "Type the server's URL, or pick Local model folder."

    # -- testing -----------------------------------------------------------------------------

    def test_connection(self) -> bool:
        """Read the server's models off the GUI thread; the result shows beside the button.

        Returns:
            False when there is no usable URL to test.
        """
        problem = self.problem() if self.backend == "server" else None
        url = self.server_url()
        if problem or not url:
            self._show_result(False, problem or "Type the server's URL first.")
            return False
        from app.core.api_keys import load_api_key

        key = self.typed_key() or load_api_key(url)
        read = self.read_server
        self._tasks.cancel(self._test)
        self.test_button.setEnabled(False)
        self.result_label.setText("Connecting…")
        self._test = self._tasks.run(
            lambda: read(url, key), self._on_server_read, lambda s: self._show_result(False, s)
        )
        return True

    def shutdown(self) -> None:
        """Drop a test still running (the dialog is closing)."""
        self._tasks.shutdown(2000)

    def _on_server_read(self, info: ServerInfo) -> None:
        current = self.server_model()
        self.model_combo.clear()
        for model in info.models:
            self.model_combo.addItem(model.id)
        if current and self.model_combo.findText(current) >= 0:
            self.model_combo.setCurrentText(current)
        contexts = [m.max_model_len for m in info.models if m.max_model_len]
        count = len(info.models)
        served = "no model" if not count else "1 model" if count == 1 else f"{count} models"
        longest = f", context up to {max(contexts):,} tokens" if contexts else ""
        self._show_result(True, f"Connected: {served}{longest}. Pick one above.")

    def _show_result(self, ok: bool, sentence: str) -> None:
        self.test_button.setEnabled(self.backend == "server")
        self.result_label.setText(("✓ " if ok else "✗ ") + sentence)
        self._form.setRowVisible(self.result_label, True)
        self._fit()
        self.tested.emit(ok, sentence)

    def _fit(self) -> None:
        """Let the dialog grow with a wrapped sentence instead of clipping it."""
        self.window().adjustSize()

    # -- slots -------------------------------------------------------------------------------

    def _on_backend_toggled(self, server: bool) -> None:
        for widget in self._server_widgets:
            widget.setEnabled(server)
        self.backend_changed.emit(self.backend)

    def _on_url_changed(self, text: str) -> None:
        from app.inference.remote_urls import plain_http_warning

        try:
            url = check_server_url(text)
        except ValueError:
            url = ""
        self.warning_label.setText((plain_http_warning(url) or "") if url else "")
        self._form.setRowVisible(self.warning_label, bool(self.warning_label.text()))
        self._tasks.cancel(self._test)  # a result is about the URL it tested
        self.test_button.setEnabled(self.backend == "server")
        self.result_label.setText("")
        self._form.setRowVisible(self.result_label, False)
        self._fit()
