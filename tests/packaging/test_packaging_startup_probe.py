"""The start-up probe line the bench reads, and the bench's own bare-window baseline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "window-shown 0.4120 torch_loaded=0 transformers_loaded=0",
            (0.412, {"torch_loaded": "0", "transformers_loaded": "0"}),
        ),
        ("window-shown 1.5 torch_loaded=1\n", (1.5, {"torch_loaded": "1"})),
        ("window-shown 2", (2.0, {})),
        ("qt.qpa.xcb: could not connect to display", None),
        ("window-shown soon", None),
        ("window-shown 0.4 torch_loaded", None),
    ],
)
def test_parse_probe(startup_bench, line, expected):
    assert startup_bench.parse_probe(line) == expected


def test_baseline_window_prints_one_probe_line_and_quits(startup_bench):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", startup_bench.BASELINE],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    probes = [p for p in map(startup_bench.parse_probe, result.stderr.splitlines()) if p]
    assert len(probes) == 1
    seconds, fields = probes[0]
    assert seconds > 0
    assert fields == {"torch_loaded": "0", "transformers_loaded": "0"}
