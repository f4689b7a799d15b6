"""Render assets/scout-desk.svg to the PNG sizes desktops ask for (run after editing the SVG)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# The hicolor theme sizes desktops look up for launchers, task bars and window decorations.
SIZES = (16, 32, 48, 64, 128, 256, 512)

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def png_path(assets: Path, size: int) -> Path:
    """Where the PNG of edge `size` pixels lives under `assets`."""
    return assets / "icons" / f"scout-desk-{size}.png"


def render(svg: Path, assets: Path, sizes: Sequence[int] = SIZES) -> list[Path]:
    """Draw `svg` into square, transparent PNGs, one per size.

    Args:
        svg: The source drawing.
        assets: The folder whose ``icons/`` receives ``scout-desk-<size>.png``.
        sizes: Edge lengths in pixels.

    Returns:
        The PNG files written.
    """
    # Rendering needs a QGuiApplication but never a screen.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG file Qt can draw")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = png_path(assets, size)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out), "PNG"):
            raise OSError(f"could not write {out}")
        written.append(out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Render the app icon; ``--assets DIR`` picks another folder (for tests)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=Path, default=ASSETS)
    args = parser.parse_args(argv)
    try:
        for path in render(args.assets / "scout-desk.svg", args.assets):
            print(path)
    except (OSError, ValueError) as exc:
        print(f"render_icons: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
