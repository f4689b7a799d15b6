"""Before the first window opens, name the Debian/Ubuntu packages Qt's X11 (xcb) plugin lacks."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# Shared libraries the PySide6 xcb platform plugin loads, by soname, and the Debian/Ubuntu package
# that ships each. A minimal install (server image, container, WSL) lacks several of them, and Qt
# then aborts with "could not load the Qt platform plugin xcb" without naming any.
SONAME_PACKAGES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libICE.so.6": "libice6",
    "libSM.so.6": "libsm6",
    "libz.so.1": "zlib1g",
    "libpng16.so.16": "libpng16-16",
    "libharfbuzz.so.0": "libharfbuzz0b",
}

# Platforms that never load the xcb plugin, so its libraries do not matter.
_NON_XCB_PLATFORMS = {"offscreen", "minimal", "wayland", "wayland-egl", "eglfs", "linuxfb", "vnc"}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found\s*$")


def missing_sonames(ldd_output: str) -> list[str]:
    """Pick the libraries `ldd` could not resolve.

    Args:
        ldd_output: What `ldd` printed for one or more files.

    Returns:
        The unresolved sonames, in first-seen order, without repeats.
    """
    found: dict[str, None] = {}
    for line in ldd_output.splitlines():
        match = _NOT_FOUND.match(line)
        if match:
            found.setdefault(match.group(1))
    return list(found)


def packages_for(sonames: Iterable[str]) -> tuple[list[str], list[str]]:
    """Map sonames to the Debian/Ubuntu packages that provide them.

    Args:
        sonames: Library names as `ldd` prints them, e.g. ``libxcb-icccm.so.4``.

    Returns:
        ``(packages, unknown)``: the sorted package names without repeats, and the sonames this
        table does not know (Qt's own libraries among them mean a broken PySide6 install).
    """
    packages: set[str] = set()
    unknown: list[str] = []
    for soname in sonames:
        package = SONAME_PACKAGES.get(soname)
        if package is None:
            unknown.append(soname)
        else:
            packages.add(package)
    return sorted(packages), unknown


def install_command(packages: Sequence[str]) -> str:
    """The one line a user pastes to install `packages` on Debian or Ubuntu."""
    return "sudo apt-get install -y " + " ".join(packages)


def find_xcb_files() -> list[Path]:
    """Locate PySide6's xcb platform plugin and its Qt support library without importing Qt.

    Returns:
        The plugin (``libqxcb.so``) and ``libQt6XcbQpa.so.6`` where present; empty when PySide6
        is not installed in this interpreter.
    """
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    candidates = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    return [path for path in candidates if path.is_file()]


def skip_reason(environ: dict[str, str]) -> str | None:
    """Say why the xcb check does not apply here, or None when it does.

    Args:
        environ: The environment the app will start with.

    Returns:
        A sentence for the user, or None when the app will use the X11 (xcb) plugin.
    """
    platform = environ.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if platform in _NON_XCB_PLATFORMS:
        return f"QT_QPA_PLATFORM={platform}: the X11 plugin is not used, nothing to check."
    if not environ.get("DISPLAY") and environ.get("WAYLAND_DISPLAY"):
        return "Wayland session without an X display: Qt uses its Wayland plugin."
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Check the xcb plugin's libraries and print the install command for any that are missing.

    Args:
        argv: Command-line arguments (``--plugin FILE`` may repeat; ``--ldd PATH``), for tests.

    Returns:
        0 when the app can open a window (or the check does not apply), 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plugin", action="append", type=Path, help="file to check (repeatable)")
    parser.add_argument("--ldd", default="ldd", help="the ldd program to run")
    args = parser.parse_args(argv)

    reason = skip_reason(dict(os.environ))
    if reason:
        print(reason)
        return 0
    if not os.environ.get("DISPLAY"):
        print(
            "No display found: DISPLAY and WAYLAND_DISPLAY are both unset. Start Scout Desk "
            "from a desktop session (or over ssh -X); for a headless check set "
            "QT_QPA_PLATFORM=offscreen.",
            file=sys.stderr,
        )
        return 1
    files = args.plugin or find_xcb_files()
    if not files:
        print("PySide6's xcb plugin was not found in this Python; run `make run` to install it.")
        return 1
    ldd = shutil.which(args.ldd)
    if ldd is None:
        print(f"`{args.ldd}` is not available, so Qt's libraries cannot be checked; carrying on.")
        return 0

    output = ""
    for path in files:
        # ldd lists the whole dependency tree, so an indirect gap (via libQt6XcbQpa) shows too.
        result = subprocess.run([ldd, str(path)], capture_output=True, text=True, check=False)
        output += result.stdout
    missing = missing_sonames(output)
    if not missing:
        return 0
    packages, unknown = packages_for(missing)
    print(
        "Qt cannot open a window: its X11 (xcb) plugin needs system libraries that are missing: "
        + ", ".join(missing)
        + ".",
        file=sys.stderr,
    )
    if packages:
        print("On Debian or Ubuntu, install them with:", file=sys.stderr)
        print(f"    {install_command(packages)}", file=sys.stderr)
    if unknown:
        print(
            "No package is known for: " + ", ".join(unknown) + " (for Qt's own libQt6* files, "
            "reinstall PySide6: rm -rf .venv && make run).",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
