"""The settings dialog: backend (model folder or server), sampling and theme, to settings.json."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.settings import (
    FOLDER_FILES_RANGE,
    FOLDER_MB_RANGE,
    MAX_NEW_TOKENS_LIMIT,
    TEXT_MB_RANGE,
    Settings,
)
from app.ui.shell.server_settings import ServerSettings
from app.ui.widgets.plain_text import plain_label

QUANTIZATIONS = (
    ("nf4", "4-bit NF4 (recommended)"),
    ("int8", "8-bit"),
    ("bf16", "bf16 (no quantization)"),
)
KV_CACHES = (
    ("bf16", "bf16 (exact)"),
    ("int8", "8-bit (about twice the context)"),
)
OUTPUT_HEADS = (
    ("bf16", "bf16 (exact)"),
    ("int8", "8-bit (half the size)"),
)
THEME_CHOICES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class SettingsDialog(QDialog):
    """Edits a `Settings`; `settings()` returns the edited copy after `exec()` accepts.

    Args:
        settings: the values to start from.
        data_dir: shown read-only (it is chosen with --data-dir or SCOUT_DESK_DATA_DIR).
        model_override: a model folder given on the command line or in the environment, which
            wins over the one chosen here for this run.
    """

    #: str: the theme picked in the combo box, to preview it live (reverted on Cancel).
    theme_previewed = Signal(str)

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        model_override: Path | None = None,
        parent: QWidget | None = None,
        *,
        saved_key: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self._initial = settings

        self.server = ServerSettings(settings, saved_key, self)
        self.server.backend_changed.connect(self._on_server_backend_changed)
        self.model_edit = QLineEdit(settings.model_dir, self)
        self.model_edit.setPlaceholderText("Folder holding config.json and *.safetensors")
        self.model_edit.setAccessibleName("Model folder")
        browse = self._browse = QPushButton("Browse…", self)
        browse.setAccessibleName("Browse for the model folder")
        browse.clicked.connect(self.browse_model_dir)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_edit, 1)
        model_row.addWidget(browse)

        self.quant_combo = _combo(QUANTIZATIONS, settings.quantization, "Quantization", self)
        self.kv_combo = _combo(KV_CACHES, settings.kv_cache, "KV cache", self)
        self.kv_combo.setToolTip(
            "How the long-context layers keep what they have read. 8-bit holds about twice as "
            "many tokens on the same GPU, with slightly less exact answers."
        )
        self.head_combo = _combo(OUTPUT_HEADS, settings.output_head, "Output head", self)
        self.head_combo.setToolTip(
            "How the layer that picks each next word keeps its weights. 8-bit reads about 1 GB "
            "less for every word Scout writes; now and then it picks a different word."
        )
        self.max_tokens_spin = QSpinBox(self)
        self.max_tokens_spin.setRange(1, MAX_NEW_TOKENS_LIMIT)
        self.max_tokens_spin.setValue(settings.max_new_tokens)
        self.max_tokens_spin.setAccessibleName("Maximum new tokens")
        self.temperature_spin = _double_spin(0.0, 2.0, 0.05, settings.temperature, self)
        self.temperature_spin.setAccessibleName("Temperature")
        self.temperature_spin.setToolTip("0 answers greedily (always the likeliest word)")
        self.top_p_spin = _double_spin(0.01, 1.0, 0.05, settings.top_p, self)
        self.top_p_spin.setAccessibleName("Top-p")
        self.theme_combo = _combo(THEME_CHOICES, settings.theme, "Theme", self)
        self.theme_combo.currentIndexChanged.connect(
            lambda _i: self.theme_previewed.emit(self.theme_combo.currentData())
        )
        self.data_dir_edit = QLineEdit(str(data_dir), self)
        self.data_dir_edit.setReadOnly(True)
        self.data_dir_edit.setAccessibleName("Data folder")
        self.data_dir_edit.setToolTip("Chosen with --data-dir or SCOUT_DESK_DATA_DIR")

        form = QFormLayout()
        form.addRow(self.server)
        form.addRow("Model folder:", model_row)
        if model_override is not None:
            note = plain_label(
                f"For this run {model_override} wins (from --model or SCOUT_DESK_MODEL)."
            )
            note.setWordWrap(True)
            form.addRow("", note)
        form.addRow("Quantization:", self.quant_combo)
        form.addRow("KV cache:", self.kv_combo)
        form.addRow("Output head:", self.head_combo)
        form.addRow("Max new tokens:", self.max_tokens_spin)
        form.addRow("Temperature:", self.temperature_spin)
        form.addRow("Top-p:", self.top_p_spin)
        form.addRow("Theme:", self.theme_combo)
        form.addRow("Data folder:", self.data_dir_edit)
        form.addRow(self._limits_group(settings))

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        self.problem_label = plain_label("")
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem_label)
        layout.addWidget(buttons)
        self._on_server_backend_changed(self.server.backend)

    def settings(self) -> Settings:
        """The values in the dialog now (every widget keeps them within the valid ranges)."""
        return Settings(
            model_dir=self.model_edit.text().strip(),
            quantization=self.quant_combo.currentData(),
            kv_cache=self.kv_combo.currentData(),
            output_head=self.head_combo.currentData(),
            max_new_tokens=self.max_tokens_spin.value(),
            temperature=round(self.temperature_spin.value(), 2),
            top_p=round(self.top_p_spin.value(), 2),
            theme=self.theme_combo.currentData(),
            backend=self.server.backend,
            server_url=self.server.server_url(),
            server_model=self.server.server_model(),
            max_text_mb=self.max_text_spin.value(),
            max_folder_mb=self.max_folder_spin.value(),
            max_folder_files=self.max_files_spin.value(),
        )

    def _limits_group(self, settings: Settings) -> QGroupBox:
        """The "Limits" group: how large an attached text file or folder may be."""
        group = QGroupBox("Limits", self)
        self.max_text_spin = _int_spin(TEXT_MB_RANGE, settings.max_text_mb, " MB", group)
        self.max_text_spin.setAccessibleName("Largest text file")
        self.max_folder_spin = _int_spin(FOLDER_MB_RANGE, settings.max_folder_mb, " MB", group)
        self.max_folder_spin.setAccessibleName("Most text read from a folder")
        self.max_files_spin = _int_spin(
            FOLDER_FILES_RANGE, settings.max_folder_files, " files", group
        )
        self.max_files_spin.setAccessibleName("Most files read from a folder")
        self.max_files_spin.setSingleStep(1000)
        limits = QFormLayout(group)
        limits.addRow("Text file up to:", self.max_text_spin)
        limits.addRow("Folder up to:", self.max_folder_spin)
        limits.addRow("Folder files up to:", self.max_files_spin)
        return group

    def typed_key(self) -> str | None:
        """An API key typed in the dialog (it goes to the keyring, never to settings.json)."""
        return self.server.typed_key()

    def browse_model_dir(self) -> None:
        """Let the user pick the model folder."""
        start = self.model_edit.text() or str(Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Choose the Llama 4 Scout folder", start)
        if chosen:
            self.model_edit.setText(chosen)

    def done(self, result: int) -> None:
        self.server.shutdown()
        super().done(result)

    def _on_buttons_accepted(self) -> None:
        problem = self.server.problem()
        if problem:
            self.problem_label.setText(problem)
            self.problem_label.show()
            return
        self.accept()

    def _on_server_backend_changed(self, backend: str) -> None:
        local = backend == "local"
        local_only = (self.model_edit, self._browse, self.quant_combo, self.kv_combo)
        for widget in (*local_only, self.head_combo):
            widget.setEnabled(local)

    def reject(self) -> None:
        # Undo a live theme preview.
        if self.theme_combo.currentData() != self._initial.theme:
            self.theme_previewed.emit(self._initial.theme)
        super().reject()


def _combo(
    choices: tuple[tuple[str, str], ...], current: str, name: str, parent: QWidget
) -> QComboBox:
    combo = QComboBox(parent)
    combo.setAccessibleName(name)
    for value, label in choices:
        combo.addItem(label, value)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    return combo


def _double_spin(
    low: float, high: float, step: float, value: float, parent: QWidget
) -> QDoubleSpinBox:
    spin = QDoubleSpinBox(parent)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(2)
    spin.setValue(value)
    return spin


def _int_spin(bounds: tuple[int, int], value: int, suffix: str, parent: QWidget) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setRange(*bounds)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setGroupSeparatorShown(True)
    return spin
