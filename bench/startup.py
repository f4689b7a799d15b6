"""Start-up benchmark: launch to first visible main window, on a private Xvfb X server.

Runs Scout Desk and a bare PySide6 window alternately, several times each, and prints every run,
the medians and their ratio. Both print one probe line to stderr when their window is first
exposed, then quit:

    window-shown <seconds since process start> torch_loaded=<0|1> transformers_loaded=<0|1>

Scout Desk prints it when started with SCOUT_DESK_STARTUP_PROBE=1. The wall figure is measured
here, from ``subprocess.Popen`` to reading that line; the in-process figure is the app's own.
Prints figures only: nothing here judges whether a time is good.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE_ENV = "SCOUT_DESK_STARTUP_PROBE"
_PROBE = re.compile(r"^window-shown (?P<seconds>\d+(?:\.\d+)?)(?P<fields>(?: \w+=\S*)*)\s*$")

# The same probe, in a bare QWidget: what any PySide6 window costs on this machine.
BASELINE = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

def since_process_start():
    with open("/proc/self/stat") as f:
        stat = f.read()
    start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")

class FirstExpose(QObject):
    seen = False
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Expose and obj.isExposed() and not self.seen:
            self.seen = True
            print(f"window-shown {since_process_start():.4f} "
                  f"torch_loaded={int('torch' in sys.modules)} "
                  f"transformers_loaded={int('transformers' in sys.modules)}",
                  file=sys.stderr, flush=True)
            QTimer.singleShot(0, QApplication.quit)
        return False

app = QApplication(sys.argv)
window = QWidget()
window.resize(1200, 800)
window.winId()
probe = FirstExpose()
window.windowHandle().installEventFilter(probe)
window.show()
sys.exit(app.exec())
"""


class ProbeMissingError(RuntimeError):
    """The program ended or timed out without printing the probe line."""


@dataclass
class Series:
    """The runs of one program."""

    name: str
    wall_s: list[float] = field(default_factory=list)
    in_process_s: list[float] = field(default_factory=list)
    flags: list[dict[str, str]] = field(default_factory=list)
    error: str = ""


def parse_probe(line: str) -> tuple[float, dict[str, str]] | None:
    """Read a probe line.

    Args:
        line: One line of the program's stderr.

    Returns:
        ``(seconds since process start, {"torch_loaded": "0", ...})``, or None for any other line.
    """
    match = _PROBE.match(line.strip())
    if match is None:
        return None
    fields = dict(item.split("=", 1) for item in match.group("fields").split())
    return float(match.group("seconds")), fields


@contextmanager
def xvfb() -> Iterator[str]:
    """Run a private Xvfb on a display number it picks itself, and stop it afterwards.

    Yields:
        The DISPLAY value, e.g. ``":3"``.
    """
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        # Xvfb writes the display number once it accepts connections; EOF means it died.
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb exited before it opened a display")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def launch_once(command: Sequence[str], env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Start `command`, wait for its probe line, and let it quit.

    Args:
        command: The program and its arguments.
        env: Its environment.
        timeout: Seconds to wait for the probe line.

    Returns:
        ``(wall seconds from Popen to the probe line, the probe line)``.

    Raises:
        ProbeMissingError: No probe line came; the message quotes the end of its stderr.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    buffer, seen = b"", []
    deadline = start + timeout
    try:
        while time.perf_counter() < deadline:
            chunk = proc.stderr.read()
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    if parse_probe(line):
                        return time.perf_counter() - start, line
                    seen.append(line)
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.001)
        tail = "\n    ".join(seen[-8:]) or "(nothing)"
        why = f"exited with code {proc.returncode}" if proc.poll() is not None else "timed out"
        raise ProbeMissingError(
            f"{why} without printing 'window-shown ...'; stderr ended:\n    {tail}"
        )
    finally:
        # The probe asks the program to quit by itself; a straggler must not skew the next run.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def app_command(override: str | None) -> list[str]:
    """The command that starts Scout Desk: `override`, else the venv's ``scout-desk``."""
    if override:
        return shlex.split(override)
    launcher = Path(sys.executable).parent / "scout-desk"
    if launcher.is_file():
        return [str(launcher)]
    return [sys.executable, str(ROOT / "main.py")]


def _summary(series: Series) -> str:
    if not series.wall_s:
        return f"{series.name}: no successful run. {series.error}"
    runs = " ".join(f"{w:.3f}" for w in series.wall_s)
    inner = " ".join(f"{s:.3f}" for s in series.in_process_s)
    return (
        f"{series.name}: median {statistics.median(series.wall_s):.3f} s wall, "
        f"{statistics.median(series.in_process_s):.3f} s in-process\n"
        f"    wall runs:       {runs}\n    in-process runs: {inner}"
    )


def _imports_line(series: Series) -> str:
    loaded = []
    for key in ("torch_loaded", "transformers_loaded"):
        values = {flags.get(key, "?") for flags in series.flags}
        state = "not reported" if values == {"?"} else ("yes" if "1" in values else "no")
        loaded.append(f"{key.removesuffix('_loaded')} imported before the window showed: {state}")
    return "    " + "; ".join(loaded)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print; 0 when every figure was measured, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each program")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per run")
    parser.add_argument("--app-cmd", help="command that starts the app (default: scout-desk)")
    args = parser.parse_args(argv)

    if shutil.which("Xvfb") is None:
        print("startup: Xvfb is not installed (sudo apt-get install -y xvfb).", file=sys.stderr)
        return 1
    baseline = Series("bare PySide6 window")
    app = Series("Scout Desk")
    programs = [(baseline, [sys.executable, "-c", BASELINE]), (app, app_command(args.app_cmd))]
    with xvfb() as display, tempfile.TemporaryDirectory(prefix="scout-bench-") as data:
        # A user's Python caches bytecode: a PYTHONDONTWRITEBYTECODE left in this shell would make
        # every run compile ~60 modules afresh and measure that instead (the warm-up writes them).
        dropped = {"WAYLAND_DISPLAY", "SCOUT_DESK_MODEL", "PYTHONDONTWRITEBYTECODE"}
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env |= {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", PROBE_ENV: "1"}
        env["SCOUT_DESK_DATA_DIR"] = data
        check = [sys.executable, str(ROOT / "packaging" / "check_qt_libs.py")]
        if subprocess.run(check, env=env, check=False).returncode != 0:
            return 1
        print(f"Xvfb on {display}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
        print(f"app command: {shlex.join(app_command(args.app_cmd))}")
        # Run 0 warms the disk cache (and creates the app's data folder) and is not counted.
        for run in range(args.runs + 1):
            for series, command in programs:
                if series.error:
                    continue
                try:
                    wall, line = launch_once(command, env, args.timeout)
                except ProbeMissingError as exc:
                    series.error = str(exc)
                    if series is app:
                        series.error += (
                            f"\n    (Is {PROBE_ENV}=1 wired into the app? With it, the app"
                            " prints 'window-shown <seconds> torch_loaded=<0|1>"
                            " transformers_loaded=<0|1>' to stderr when its main window is"
                            " first exposed, then quits.)"
                        )
                    continue
                parsed = parse_probe(line)
                assert parsed is not None
                if run > 0:
                    series.wall_s.append(wall)
                    series.in_process_s.append(parsed[0])
                    series.flags.append(parsed[1])
    print(f"{args.runs} measured runs each, after one warm-up run:")
    for series in programs:
        print(_summary(series[0]))
        if series[0].flags:
            print(_imports_line(series[0]))
    if app.wall_s and baseline.wall_s:
        ratio = statistics.median(app.wall_s) / statistics.median(baseline.wall_s)
        print(f"Scout Desk / bare window (median wall): {ratio:.2f}x")
    return 0 if app.wall_s and baseline.wall_s else 1


if __name__ == "__main__":
    sys.exit(main())
