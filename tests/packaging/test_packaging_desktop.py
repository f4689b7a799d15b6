"""The desktop entry and icons: what install_desktop.py writes, and that desktops accept it."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REQUIRED_MIME_TYPES = {
    "image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp",
    "video/mp4", "video/quicktime", "video/x-matroska", "video/webm", "video/x-msvideo",
    "application/pdf", "text/plain",
}  # fmt: skip


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """A stand-in scout-desk launcher in a folder whose name needs quoting in Exec."""
    path = tmp_path / "my apps" / "scout-desk"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_install_writes_entry_and_every_icon(desktop, tmp_path, launcher):
    prefix = tmp_path / "share"
    desktop.install(prefix, launcher, refresh=False)

    entry = _entry(prefix / "applications" / "scout-desk.desktop")
    assert entry["Name"] == "Scout Desk"
    assert entry["Exec"] == f'"{launcher}" %F'
    assert entry["TryExec"] == str(launcher)
    assert entry["Icon"] == "scout-desk"
    assert entry["Terminal"] == "false"
    assert entry["StartupWMClass"] == "scout-desk"
    assert set(entry["MimeType"].rstrip(";").split(";")) == REQUIRED_MIME_TYPES

    for size in desktop.SIZES:
        png = prefix / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "scout-desk.png"
        with Image.open(png) as image:
            assert image.size == (size, size)
    svg = prefix / "icons" / "hicolor" / "scalable" / "apps" / "scout-desk.svg"
    assert svg.read_bytes().lstrip().startswith(b"<?xml")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="no desktop-file-utils")
def test_installed_entry_passes_desktop_file_validate(desktop, tmp_path, launcher):
    desktop.install(tmp_path, launcher, refresh=False)
    result = subprocess.run(
        ["desktop-file-validate", str(tmp_path / "applications" / "scout-desk.desktop")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/opt/scout/bin/scout-desk", "/opt/scout/bin/scout-desk"),
        ("/home/a b/scout-desk", '"/home/a b/scout-desk"'),
        ("/home/$USER/x", '"/home/\\$USER/x"'),
        ("/data/100%/scout-desk", "/data/100%%/scout-desk"),
    ],
)
def test_exec_arguments_are_quoted_as_the_spec_asks(desktop, arg, quoted):
    assert desktop.quote_exec_arg(arg) == quoted


def test_backslash_is_escaped_twice_in_exec(desktop):
    # Once by Exec quoting, then again by the string-value escaping of the file format.
    text = desktop.render_entry("Exec=@EXEC@ %F\n", Path("/a\\b c/scout-desk"))
    assert text == 'Exec="/a\\\\\\\\b c/scout-desk" %F\n'


def test_xdg_data_home_is_the_default_prefix(repo_root, tmp_path, launcher):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    result = subprocess.run(
        [sys.executable, str(repo_root / "packaging" / "install_desktop.py"),
         "--exec", str(launcher), "--no-refresh"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "xdg" / "applications" / "scout-desk.desktop").is_file()


def test_relative_xdg_data_home_is_ignored(desktop):
    assert desktop.default_prefix({"XDG_DATA_HOME": "rel/dir"}) == (
        Path.home() / ".local" / "share"
    )


def test_missing_launcher_is_a_sentence_and_writes_nothing(repo_root, tmp_path):
    missing = tmp_path / "nowhere" / "scout-desk"
    result = subprocess.run(
        [sys.executable, str(repo_root / "packaging" / "install_desktop.py"),
         "--prefix", str(tmp_path / "share"), "--exec", str(missing)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "share").exists()


def test_uninstall_removes_what_install_wrote(desktop, tmp_path, launcher):
    desktop.install(tmp_path, launcher, refresh=False)
    desktop.uninstall(tmp_path, refresh=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "my apps" not in p.parts] == []


def test_refresh_runs_the_desktop_database_tool_when_present(desktop, tmp_path, launcher):
    if shutil.which("update-desktop-database") is None:
        pytest.skip("no update-desktop-database")
    desktop.install(tmp_path, launcher, refresh=True)
    # The tool indexes our MimeType list into the folder's cache.
    cache = (tmp_path / "applications" / "mimeinfo.cache").read_text()
    assert "application/pdf=scout-desk.desktop;" in cache
