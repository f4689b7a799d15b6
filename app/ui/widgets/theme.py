"""Light, dark and system themes: one Fusion palette per theme plus a small app style sheet."""

from __future__ import annotations

from string import Template

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = ("system", "light", "dark")

# Two hand-tuned palettes; "system" follows the desktop's colour scheme with the same palettes so
# the app looks the same everywhere instead of inheriting a half-styled platform theme.
_LIGHT = {
    QPalette.ColorRole.Window: "#f4f5f7",
    QPalette.ColorRole.WindowText: "#1d1f23",
    QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#eceef2",
    QPalette.ColorRole.Text: "#1d1f23",
    QPalette.ColorRole.PlaceholderText: "#8a8f98",
    QPalette.ColorRole.Button: "#ffffff",
    QPalette.ColorRole.ButtonText: "#1d1f23",
    QPalette.ColorRole.BrightText: "#c62828",
    QPalette.ColorRole.Highlight: "#2f6fed",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#ffffff",
    QPalette.ColorRole.ToolTipText: "#1d1f23",
    QPalette.ColorRole.Link: "#2f6fed",
    QPalette.ColorRole.Light: "#ffffff",
    QPalette.ColorRole.Midlight: "#e3e5ea",
    QPalette.ColorRole.Mid: "#c9cdd4",
    QPalette.ColorRole.Dark: "#a0a6b0",
    QPalette.ColorRole.Shadow: "#6b7079",
}
_DARK = {
    QPalette.ColorRole.Window: "#1f2024",
    QPalette.ColorRole.WindowText: "#e6e7ea",
    QPalette.ColorRole.Base: "#26282d",
    QPalette.ColorRole.AlternateBase: "#2d3036",
    QPalette.ColorRole.Text: "#e6e7ea",
    QPalette.ColorRole.PlaceholderText: "#80858f",
    QPalette.ColorRole.Button: "#2d3036",
    QPalette.ColorRole.ButtonText: "#e6e7ea",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#4c8dff",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#2d3036",
    QPalette.ColorRole.ToolTipText: "#e6e7ea",
    QPalette.ColorRole.Link: "#7aa9ff",
    QPalette.ColorRole.Light: "#3a3d44",
    QPalette.ColorRole.Midlight: "#33363c",
    QPalette.ColorRole.Mid: "#464a52",
    QPalette.ColorRole.Dark: "#16171a",
    QPalette.ColorRole.Shadow: "#000000",
}

# Colours the palette has no role for, per theme.
_EXTRA = {
    "light": {"user_bubble": "#e9effc", "muted": "#6b7079", "error_bg": "#fdecea"},
    "dark": {"user_bubble": "#2b3550", "muted": "#9aa0aa", "error_bg": "#4a2626"},
}

# Only named widgets are styled, so widgets without a name keep the plain Fusion look.
_STYLE_SHEET = Template("""
#Sidebar { background: palette(alternate-base); }
#Sidebar QListView, #Sidebar QListWidget { background: transparent; border: none; outline: none; }
#Sidebar QListView::item, #Sidebar QListWidget::item { padding: 7px 10px; border-radius: 6px;
                                                      margin: 1px 2px; }
#Sidebar QListView::item:selected, #Sidebar QListWidget::item:selected {
    background: palette(highlight); color: palette(highlighted-text); }
#Sidebar QListView::item:hover:!selected, #Sidebar QListWidget::item:hover:!selected {
    background: palette(midlight); }
#SidebarSearch { padding: 5px 8px; border: 1px solid palette(mid); border-radius: 6px;
                 background: palette(base); }
#SidebarTitle { font-weight: 600; color: $muted; padding: 8px 4px 2px 4px; }
#NewChatButton { text-align: left; padding: 6px 10px; border: 1px solid palette(mid);
                 border-radius: 6px; background: palette(base); font-weight: 600; }
#NewChatButton:hover { border-color: palette(highlight); }
#ChatPane, #chatView, #chatContent, #Welcome, #Welcome > QWidget > QWidget {
    background: palette(base); border: none; }
#chatEmptyState { color: $muted; font-size: 13pt; }
#messageBubble { border: none; border-radius: 12px; background: transparent; }
#messageBubble[role="user"] { background: $user_bubble; }
#messageRole { font-weight: 600; }
#messageFooter { color: $muted; }
#messageError { color: palette(bright-text); background: $error_bg; border-radius: 6px;
                padding: 4px 8px; }
#messageBubble QPushButton { color: $muted; border: none; padding: 2px 6px; background: none; }
#messageBubble QPushButton:hover { color: palette(highlight); }
#messageBubble QTextBrowser { background: transparent; border: none; }
#attachmentBadge { border: 1px solid palette(mid); border-radius: 8px; padding: 3px 6px;
                  background: palette(base); }
#attachmentBadge[status="error"], #attachmentBadge[status="skipped"] {
    border-color: palette(bright-text); }
#ComposerFrame { border: 1px solid palette(mid); border-radius: 12px; background: palette(base); }
#ComposerInput { border: none; background: transparent; }
#AttachmentStrip, #AttachmentStripInner { background: transparent; border: none; }
#ComposerNotice { border-radius: 6px; padding: 6px 10px; background: palette(midlight); }
#ComposerNotice[kind="error"] { color: palette(bright-text); background: $error_bg; }
#ComposerChip { border: 1px solid palette(mid); border-radius: 12px;
                  background: palette(alternate-base); }
#ComposerChip[state="error"], #ComposerChip[state="skipped"] {
    border-color: palette(bright-text); background: $error_bg; }
#ComposerChip QToolButton { border: none; padding: 0px 2px; background: none; }
#ChipOptions { font-weight: 600; }
#ContextMeterLabel, #ChunkProgressLabel { color: $muted; }
#ContextMeterLabel[level="over"] { color: palette(bright-text); font-weight: 600; }
#ContextMeterBar { border: none; border-radius: 3px; background: palette(midlight); }
#ContextMeterBar::chunk { border-radius: 3px; background: palette(highlight); }
#ContextMeterBar[level="warn"]::chunk { background: #e0a100; }
#ContextMeterBar[level="over"]::chunk { background: palette(bright-text); }
#ChunkProgressBar { border: none; border-radius: 3px; background: palette(midlight);
                    max-height: 6px; }
#ChunkProgressBar::chunk { border-radius: 3px; background: palette(highlight); }
QPushButton#ChunkedButton { border: 1px solid palette(highlight); color: palette(highlight);
                            border-radius: 6px; padding: 3px 10px; font-weight: 600; }
QPushButton#MeterDropButton, QPushButton#ChunkCancelButton {
    border: 1px solid palette(mid); border-radius: 6px; padding: 3px 10px; }
#messageBubble QPushButton#chunkNotesToggle { color: palette(highlight); padding: 2px 0px; }
#WelcomeTitle { font-size: 20pt; font-weight: 600; }
#WelcomeCard { border: 1px solid palette(mid); border-radius: 12px;
               background: palette(alternate-base); }
QPushButton#PrimaryButton { background: palette(highlight); color: palette(highlighted-text);
                            border: none; border-radius: 6px; padding: 6px 18px; font-weight: 600; }
QPushButton#PrimaryButton:disabled { background: palette(mid); }
QPushButton#StopButton { border: 1px solid palette(bright-text); color: palette(bright-text);
                         border-radius: 6px; padding: 6px 18px; font-weight: 600; }
QPushButton#AttachButton { border: 1px solid palette(mid); border-radius: 6px; padding: 5px 12px; }
QStatusBar QLabel { color: $muted; padding: 0px 6px; }
""")


def resolve_theme(theme: str) -> str:
    """Turn a settings value into "light" or "dark".

    Args:
        theme: "system", "light" or "dark" (anything else counts as "system").

    Returns:
        "dark" or "light"; for "system", what the desktop reports (light when unknown).
    """
    if theme in ("light", "dark"):
        return theme
    hints = QGuiApplication.styleHints()
    return "dark" if hints.colorScheme() == Qt.ColorScheme.Dark else "light"


def palette_for(name: str) -> QPalette:
    """Build the palette of the "light" or "dark" theme.

    Args:
        name: "light" or "dark".

    Returns:
        A palette with disabled colours derived from the active ones.
    """
    colours = _DARK if name == "dark" else _LIGHT
    palette = QPalette()
    for role, value in colours.items():
        palette.setColor(role, QColor(value))
    disabled = QColor(colours[QPalette.ColorRole.PlaceholderText])
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply a theme to the whole application, live (open windows repaint at once).

    Args:
        app: the running application.
        theme: "system", "light" or "dark".

    Returns:
        The theme actually applied: "light" or "dark".
    """
    if app.style().name().lower() != "fusion":
        fusion = QStyleFactory.create("Fusion")
        if fusion is not None:
            app.setStyle(fusion)
    name = resolve_theme(theme)
    app.setPalette(palette_for(name))
    app.setStyleSheet(_STYLE_SHEET.substitute(_EXTRA[name]))
    app.setProperty("scout_theme", name)
    return name


def is_dark(app: QApplication | None = None) -> bool:
    """Tell whether the applied palette is dark (for widgets that pick their own accent colours).

    Args:
        app: the application; the running one when None.

    Returns:
        True when the window colour is darker than mid-grey.
    """
    instance = app or QApplication.instance()
    if instance is None:
        return False
    return instance.palette().color(QPalette.ColorRole.Window).lightness() < 128
