"""The xcb library check: reading ldd output, naming packages, and the script's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What ldd prints for libqxcb.so on a minimal Debian: two gaps, one repeated via libQt6XcbQpa.
FAKE_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd6b5e9000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f10a1000000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f10a0f00000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f10a1400000)
"""


def test_missing_sonames_lists_each_gap_once_in_order(qt_libs):
    assert qt_libs.missing_sonames(FAKE_LDD) == [
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libxkbcommon-x11.so.0",
    ]


def test_missing_sonames_is_empty_when_everything_resolves(qt_libs):
    ok = "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n\tstatically linked\n"
    assert qt_libs.missing_sonames(ok) == []


def test_packages_for_maps_known_sonames_and_reports_the_rest(qt_libs):
    packages, unknown = qt_libs.packages_for(
        ["libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libQt6DBus.so.6", "libGL.so.1"]
    )
    assert packages == ["libgl1", "libxcb-cursor0", "libxkbcommon-x11-0"]
    assert unknown == ["libQt6DBus.so.6"]


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxcb-image.so.0", "libxcb-image0"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libxcb-xinerama.so.0", "libxcb-xinerama0"),
        ("libxcb-xkb.so.1", "libxcb-xkb1"),
        ("libxcb-shape.so.0", "libxcb-shape0"),
        ("libxcb-randr.so.0", "libxcb-randr0"),
        ("libEGL.so.1", "libegl1"),
        ("libfontconfig.so.1", "libfontconfig1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
    ],
)
def test_the_libraries_minimal_systems_lack_are_mapped(qt_libs, soname, package):
    assert qt_libs.packages_for([soname]) == ([package], [])


def test_install_command_is_one_pasteable_line(qt_libs):
    assert (
        qt_libs.install_command(["libxcb-cursor0", "libxcb-icccm4"])
        == "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4"
    )


@pytest.mark.parametrize(
    ("environ", "skips"),
    [
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, True),
        ({"QT_QPA_PLATFORM": "wayland"}, True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, True),
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}, False),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False),
        ({}, False),
    ],
)
def test_skip_reason_only_when_the_xcb_plugin_is_not_used(qt_libs, environ, skips):
    assert (qt_libs.skip_reason(environ) is not None) is skips


def _run_check(repo_root: Path, tmp_path: Path, ldd_output: str, **env: str):
    fake_ldd = tmp_path / "ldd"
    (tmp_path / "ldd-output").write_text(ldd_output)
    fake_ldd.write_text(f"#!/bin/sh\ncat '{tmp_path / 'ldd-output'}'\n")
    fake_ldd.chmod(0o755)
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    environ = {k: v for k, v in os.environ.items() if k not in {"QT_QPA_PLATFORM", "DISPLAY"}}
    environ.pop("WAYLAND_DISPLAY", None)
    environ.update(env)
    script = repo_root / "packaging" / "check_qt_libs.py"
    return subprocess.run(
        [sys.executable, str(script), "--plugin", str(plugin), "--ldd", str(fake_ldd)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def test_script_prints_the_apt_command_and_fails_when_libraries_are_missing(repo_root, tmp_path):
    result = _run_check(repo_root, tmp_path, FAKE_LDD, DISPLAY=":99")
    assert result.returncode == 1
    assert (
        "    sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0\n"
        in result.stderr
    )
    assert "libxcb-icccm.so.4" in result.stderr
    assert "Traceback" not in result.stderr


def test_script_passes_when_nothing_is_missing(repo_root, tmp_path):
    result = _run_check(
        repo_root, tmp_path, "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n", DISPLAY=":99"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_script_says_no_display_was_found(repo_root, tmp_path):
    result = _run_check(repo_root, tmp_path, FAKE_LDD)
    assert result.returncode == 1
    assert "No display found" in result.stderr
    assert "apt-get" not in result.stderr


def test_script_skips_offscreen(repo_root, tmp_path):
    result = _run_check(repo_root, tmp_path, FAKE_LDD, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0
    assert "not used" in result.stdout


def test_the_installed_pyside6_has_an_xcb_plugin_to_check(qt_libs):
    files = qt_libs.find_xcb_files()
    assert [path.name for path in files][:1] == ["libqxcb.so"]
