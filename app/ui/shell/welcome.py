"""The first-run panel: what Scout Desk needs (a local Llama 4 Scout) and how to get it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

WELCOME_HTML = """
<p>Scout Desk answers questions about your images and documents with
<b>Llama 4 Scout</b>, running entirely on this computer. No model folder is chosen yet.</p>
<ol>
<li style="margin-bottom:6px">Llama 4 Scout is <b>gated</b> on Hugging Face: sign in, open
<i>meta-llama/Llama-4-Scout-17B-16E-Instruct</i> and accept Meta's licence.</li>
<li style="margin-bottom:6px">Download it with a token (<code>hf download …</code>), or use a
<b>per-expert 4-bit</b> checkpoint made with <code>scout-desk prepare-model</code>, which fits
one 80 GB GPU.</li>
<li style="margin-bottom:6px">Choose that folder below (or in Settings). The steps are spelled
out in <code>models/README.md</code>.</li>
</ol>
<p>You can browse earlier chats and look at attachments without a model.</p>
"""


class WelcomePanel(QScrollArea):
    """Shown in the chat area while no model folder is set and no chat is open."""

    #: the user wants to pick the model folder.
    choose_model_requested = Signal()
    #: the user wants the settings dialog.
    settings_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Welcome")
        self.setAccessibleName("Welcome")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # Beside an open dock the chat area can be narrow: wrap the card, never scroll sideways.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        card = QFrame()
        card.setObjectName("WelcomeCard")
        card.setMaximumWidth(620)
        title = QLabel("Welcome to Scout Desk", card)
        title.setObjectName("WelcomeTitle")
        title.setWordWrap(True)
        body = QLabel(WELCOME_HTML, card)
        body.setObjectName("WelcomeBody")
        body.setTextFormat(Qt.TextFormat.RichText)
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_button = QPushButton("Choose model folder…", card)
        self.choose_button.setObjectName("PrimaryButton")
        self.choose_button.setAccessibleName("Choose model folder")
        self.choose_button.clicked.connect(self.choose_model_requested)
        settings_button = QPushButton("Settings…", card)
        settings_button.setAccessibleName("Open settings")
        settings_button.clicked.connect(self.settings_requested)

        buttons = QHBoxLayout()
        buttons.addWidget(self.choose_button)
        buttons.addWidget(settings_button)
        buttons.addStretch(1)
        inside = QVBoxLayout(card)
        inside.setContentsMargins(28, 24, 28, 24)
        inside.setSpacing(14)
        inside.addWidget(title)
        inside.addWidget(body)
        inside.addLayout(buttons)

        page = QWidget()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 10)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.setWidget(page)
