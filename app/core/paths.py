"""Where Scout Desk keeps its files: the one module that knows every folder and file name."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import platformdirs

from app.core.errors import ExpectedError

#: Environment variable that relocates all user data (same as the global `--data-dir` option).
DATA_DIR_ENV = "SCOUT_DESK_DATA_DIR"
#: Environment variable that names the model folder (same as `--model`).
MODEL_ENV = "SCOUT_DESK_MODEL"

_APP_NAME = "scout-desk"

log = logging.getLogger(__name__)


class DataDirError(ExpectedError):
    """The data folder cannot be created or is not a folder; `message` says so to the user."""


def data_dir(override: str | Path | None = None) -> Path:
    """Resolve the folder that holds sessions, blobs, settings and logs, creating it if needed.

    Callers resolve it once at start-up and pass the result on; nothing else invents paths.

    Args:
        override: a folder from `--data-dir`; beats the environment and the platform default.

    Returns:
        The absolute folder, which exists, with mode 0700 (chat history is private): one created
        here gets it, and an existing one that others could read is tightened to it (logged).

    Raises:
        DataDirError: the folder cannot be created or a file is in its place.
    """
    if override is not None and str(override).strip():
        chosen = Path(override)
    elif os.environ.get(DATA_DIR_ENV, "").strip():
        chosen = Path(os.environ[DATA_DIR_ENV])
    else:
        chosen = Path(platformdirs.user_data_dir(_APP_NAME, appauthor=False))
    return ensure_private_dir(chosen.expanduser().absolute())


def ensure_private_dir(folder: Path) -> Path:
    """Create `folder` (and missing parents) with mode 0700 unless it already exists.

    Args:
        folder: the folder to make sure of.

    Returns:
        `folder`, unchanged.

    Raises:
        DataDirError: it cannot be created, or something that is not a folder is in its way.
    """
    if folder.is_dir():
        make_private(folder)
        return folder
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; the folder we made must be private regardless.
        folder.chmod(0o700)
    except FileExistsError:
        raise DataDirError(f"{folder} exists but is not a folder.") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataDirError(f"Cannot create the folder {folder}: {reason}.") from None
    return folder


def make_private(path: Path) -> bool:
    """Take away every permission of the group and others from `path`, when it has any.

    Data made by an older Scout Desk (a database created 0644), by hand or under a loose umask
    would otherwise stay readable by every account on the machine. A file or folder that cannot
    be changed (another user's) is logged and left as it is.

    Args:
        path: a file or folder of the data folder.

    Returns:
        True when its permissions were changed.
    """
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not mode & 0o077 or path.is_symlink():
            return False
        path.chmod(mode & 0o700)
    except OSError as exc:
        log.warning("cannot make %s private (%s); others may be able to read it", path, exc)
        return False
    log.warning("made %s private: mode %04o is now %04o", path, mode, mode & 0o700)
    return True


def model_dir_from_env() -> Path | None:
    """The model folder named by `SCOUT_DESK_MODEL`, or None when it is unset or blank.

    Returns:
        The folder as given (user-expanded, made absolute); whether it holds a model is for the
        model checks to say.
    """
    value = os.environ.get(MODEL_ENV, "").strip()
    return Path(value).expanduser().absolute() if value else None


def settings_file(data_dir: Path) -> Path:
    """The settings JSON file inside `data_dir` (not created here)."""
    return data_dir / "settings.json"


def database_file(data_dir: Path) -> Path:
    """The SQLite session database inside `data_dir` (not created here)."""
    return data_dir / "sessions.sqlite3"


def blobs_dir(data_dir: Path, *, create: bool = True) -> Path:
    """The folder of content-addressed attachment blobs inside `data_dir`.

    Args:
        data_dir: the resolved data folder.
        create: make the folder (mode 0700) if it is missing.

    Returns:
        The blobs folder.
    """
    folder = data_dir / "blobs"
    return ensure_private_dir(folder) if create else folder


def logs_dir(data_dir: Path, *, create: bool = True) -> Path:
    """The folder for log files and crash reports inside `data_dir`.

    Args:
        data_dir: the resolved data folder.
        create: make the folder (mode 0700) if it is missing.

    Returns:
        The logs folder.
    """
    folder = data_dir / "logs"
    return ensure_private_dir(folder) if create else folder
