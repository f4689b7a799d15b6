"""The committed app icons: every size present and drawn, and the renderer that makes them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

SIZES = (16, 32, 48, 64, 128, 256, 512)


def _render(repo_root, assets):
    return subprocess.run(
        [sys.executable, str(repo_root / "packaging" / "render_icons.py"), "--assets", str(assets)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("size", SIZES)
def test_committed_png_is_a_square_icon_with_transparent_corners(repo_root, size):
    with Image.open(repo_root / "assets" / "icons" / f"scout-desk-{size}.png") as image:
        assert image.size == (size, size)
        rgba = image.convert("RGBA")
        assert rgba.getpixel((0, 0))[3] == 0  # the rounded square leaves the corner clear
        assert rgba.getpixel((size // 2, size // 2))[3] == 255


def test_render_icons_draws_every_size_from_the_svg(repo_root, tmp_path):
    (tmp_path / "scout-desk.svg").write_bytes(
        (repo_root / "assets" / "scout-desk.svg").read_bytes()
    )
    result = _render(repo_root, tmp_path)
    assert result.returncode == 0, result.stderr
    for size in SIZES:
        with Image.open(tmp_path / "icons" / f"scout-desk-{size}.png") as image:
            assert image.size == (size, size)
            # Same drawing as the committed icon: compare the colour at the centre.
            with Image.open(repo_root / "assets" / "icons" / f"scout-desk-{size}.png") as ref:
                centre = (size // 2, size // 2)
                got, want = (
                    image.convert("RGBA").getpixel(centre),
                    ref.convert("RGBA").getpixel(centre),
                )
                assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8


def test_render_icons_names_a_broken_svg(repo_root, tmp_path):
    (tmp_path / "scout-desk.svg").write_text("<svg this is not xml")
    result = _render(repo_root, tmp_path)
    assert result.returncode == 1
    assert "scout-desk.svg is not an SVG file" in result.stderr
    assert "Traceback" not in result.stderr
