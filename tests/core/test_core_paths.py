"""Where data lives: override beats environment beats platform default; new folders are private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs
import pytest

from app.core import paths


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A permissive umask, so a private folder must come from our chmod, not the umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_override_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "from-env"))

    chosen = paths.data_dir(tmp_path / "from-flag")

    assert chosen == tmp_path / "from-flag"
    assert chosen.is_dir()
    assert not (tmp_path / "from-env").exists()


def test_environment_beats_platform_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert paths.data_dir() == tmp_path / "from-env"
    assert paths.data_dir("  ") == tmp_path / "from-env"  # a blank override is no override


def test_platform_default_without_override_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(paths.DATA_DIR_ENV)
    asked: list[str] = []

    def fake_user_data_dir(appname: str, appauthor: object = None) -> str:
        asked.append(appname)
        return str(tmp_path / "platform" / appname)

    monkeypatch.setattr(platformdirs, "user_data_dir", fake_user_data_dir)

    assert paths.data_dir() == tmp_path / "platform" / "scout-desk"
    assert asked == ["scout-desk"]


def test_relative_and_home_overrides_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert paths.data_dir("rel/data") == tmp_path / "rel" / "data"
    assert paths.data_dir("~/data") == tmp_path / "home" / "data"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.usefixtures("open_umask")
def test_created_folders_are_private(tmp_path: Path) -> None:
    root = paths.data_dir(tmp_path / "new")

    assert _mode(root) == 0o700
    assert _mode(paths.blobs_dir(root)) == 0o700
    assert _mode(paths.logs_dir(root)) == 0o700


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_loose_folder_is_made_private(tmp_path: Path) -> None:
    # A data folder others can read (made by an older version, or by hand) exposes every chat.
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)

    assert paths.data_dir(existing) == existing
    assert _mode(existing) == 0o700


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")

    with pytest.raises(paths.DataDirError) as caught:
        paths.data_dir(blocker)
    assert str(blocker) in caught.value.message
    assert "not a folder" in caught.value.message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_parent_is_a_clear_error(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(paths.DataDirError, match="Cannot create the folder"):
            paths.data_dir(parent / "data")
    finally:
        parent.chmod(0o700)


def test_file_helpers_name_everything_inside_the_data_folder(tmp_path: Path) -> None:
    assert paths.settings_file(tmp_path) == tmp_path / "settings.json"
    assert paths.database_file(tmp_path) == tmp_path / "sessions.sqlite3"
    assert paths.blobs_dir(tmp_path, create=False) == tmp_path / "blobs"
    assert not (tmp_path / "blobs").exists()
    assert paths.logs_dir(tmp_path) == tmp_path / "logs"
    assert (tmp_path / "logs").is_dir()


def test_model_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.model_dir_from_env() is None  # the suite's conftest unsets it

    monkeypatch.setenv(paths.MODEL_ENV, "   ")
    assert paths.model_dir_from_env() is None

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(paths.MODEL_ENV, "~/models/scout")
    assert paths.model_dir_from_env() == tmp_path / "models" / "scout"
