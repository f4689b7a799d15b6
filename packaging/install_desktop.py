"""Add Scout Desk to the desktop's app menu for this user: a .desktop entry plus hicolor icons."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets"
TEMPLATE = HERE / "scout-desk.desktop.in"
APP_ID = "scout-desk"
SIZES = (16, 32, 48, 64, 128, 256, 512)

# Characters that force quoting of an Exec argument (Desktop Entry spec, "The Exec key").
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def default_prefix(environ: dict[str, str]) -> Path:
    """The per-user data folder desktops read menu entries and icons from.

    Args:
        environ: The environment (``XDG_DATA_HOME`` wins over ``~/.local/share``).

    Returns:
        ``$XDG_DATA_HOME`` when set and absolute, else ``~/.local/share``.
    """
    xdg = environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    return Path.home() / ".local" / "share"


def quote_exec_arg(arg: str) -> str:
    """Quote one Exec argument the way the Desktop Entry spec asks.

    Args:
        arg: A program path or argument, e.g. ``/home/me/My Apps/.venv/bin/scout-desk``.

    Returns:
        The argument, double-quoted with ``"`$\\`` backslash-escaped when it holds a reserved
        character, and with ``%`` doubled so it is not read as a field code.
    """
    arg = arg.replace("%", "%%")
    if not any(ch in _RESERVED for ch in arg):
        return arg
    escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'


def escape_string_value(value: str) -> str:
    """Escape a value for a .desktop file line (the spec's string-level ``\\`` escapes)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def render_entry(template: str, executable: Path) -> str:
    """Fill the template's ``@EXEC@`` and ``@TRYEXEC@`` with the absolute executable path.

    Args:
        template: The text of ``scout-desk.desktop.in``.
        executable: The ``scout-desk`` launcher to run.

    Returns:
        The .desktop file text.
    """
    path = str(executable)
    return template.replace("@EXEC@", escape_string_value(quote_exec_arg(path))).replace(
        "@TRYEXEC@", escape_string_value(path)
    )


def _refresh_caches(prefix: Path) -> None:
    """Tell the desktop about the new entry and icons, with whichever tools this system has."""
    hicolor = prefix / "icons" / "hicolor"
    commands = [["update-desktop-database", "-q", str(prefix / "applications")]]
    # Only where a theme index exists (as xdg-icon-resource does): a cache written into a bare
    # per-user hicolor folder would hide icons that other programs add there later.
    if (hicolor / "index.theme").is_file():
        commands.append(["gtk-update-icon-cache", "-q", "-f", str(hicolor)])
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        # A stale cache only delays the icon until the next login, so a failure is not fatal.
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"note: {command[0]} failed: {result.stderr.strip()}", file=sys.stderr)


def installed_files(prefix: Path) -> list[Path]:
    """Every file `install` writes under `prefix`, the entry first."""
    icons = prefix / "icons" / "hicolor"
    files = [prefix / "applications" / f"{APP_ID}.desktop"]
    files += [icons / f"{size}x{size}" / "apps" / f"{APP_ID}.png" for size in SIZES]
    files.append(icons / "scalable" / "apps" / f"{APP_ID}.svg")
    return files


def install(prefix: Path, executable: Path, assets: Path = ASSETS, refresh: bool = True) -> None:
    """Write the menu entry and icons under `prefix`.

    Args:
        prefix: The data folder (``~/.local/share`` for one user).
        executable: Absolute path of the ``scout-desk`` launcher the entry starts.
        assets: Folder holding ``scout-desk.svg`` and ``icons/scout-desk-<size>.png``.
        refresh: Run ``update-desktop-database`` / ``gtk-update-icon-cache`` when present.

    Raises:
        FileNotFoundError: The executable or an icon is missing; the message names it.
    """
    if not executable.is_absolute() or not executable.is_file():
        raise FileNotFoundError(f"{executable} is not an installed scout-desk launcher")
    entry, *pngs, svg = installed_files(prefix)
    sources = [assets / "icons" / f"{APP_ID}-{size}.png" for size in SIZES]
    sources.append(assets / f"{APP_ID}.svg")
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing; run packaging/render_icons.py")
    for source, dest in zip(sources, [*pngs, svg], strict=True):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(render_entry(TEMPLATE.read_text(encoding="utf-8"), executable), "utf-8")
    if refresh:
        _refresh_caches(prefix)


def uninstall(prefix: Path, refresh: bool = True) -> None:
    """Remove what `install` wrote under `prefix` (files that are already gone are fine)."""
    for path in installed_files(prefix):
        path.unlink(missing_ok=True)
    if refresh:
        _refresh_caches(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """Install (or with ``--uninstall`` remove) the desktop entry; 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--prefix", type=Path, help="data folder (default: $XDG_DATA_HOME or ~/.local/share)"
    )
    parser.add_argument(
        "--exec",
        dest="executable",
        type=Path,
        default=Path(sys.executable).parent / APP_ID,
        help="the scout-desk launcher (default: the one beside this Python)",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the entry and icons")
    parser.add_argument("--no-refresh", action="store_true", help="skip the desktop cache tools")
    args = parser.parse_args(argv)
    prefix = args.prefix or default_prefix(dict(os.environ))
    try:
        if args.uninstall:
            uninstall(prefix, refresh=not args.no_refresh)
            print(f"Removed Scout Desk's menu entry and icons from {prefix}.")
        else:
            install(prefix, args.executable.absolute(), refresh=not args.no_refresh)
            print(f"Installed {installed_files(prefix)[0]} (starts {args.executable.absolute()}).")
    except OSError as exc:
        print(f"install_desktop: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
