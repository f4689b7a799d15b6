"""Per-expert NF4 experts chosen on the device (`nf4_experts`), through Triton's interpreter.

Triton reads `TRITON_INTERPRET` when it defines a kernel, so the checks run in a child process
(`tests/helpers/nf4_interpreted.py`) on a `prepare-model` folder of the tiny model, on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.inference.nf4_experts import CHECK_TOLERANCE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("triton")
    work = tmp_path_factory.mktemp("nf4-interpreted")
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.nf4_interpreted", str(tiny_model), str(work)],
        cwd=ROOT, env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_moe_layer_gets_the_kernel(report) -> None:
    assert report["runners"] == [True] * 4


def test_the_kernel_reads_bitsandbytes_layout(report) -> None:
    """Against bitsandbytes' own dequantization of the same bytes, multiplied in float32: the
    difference is the rounding of the bf16 result (a wrong nibble, block or scale is off by
    hundreds of steps)."""
    assert report["layout_ulps"] <= 2.0


def test_the_kernel_reads_larger_and_uneven_shapes(report) -> None:
    """Beyond the tiny model: several passes over the input with a partial last one, rows that
    do not fill a program, second-level scales past the first, float32 absmax (see
    `nf4_interpreted.SHAPES`)."""
    assert report["shapes_ulps"] <= 2.0


def test_an_expert_matches_the_linear4bit_modules(report) -> None:
    assert report["module_error"] <= CHECK_TOLERANCE


def test_the_decode_step_reads_nothing_on_the_host_and_stays_close(report) -> None:
    assert report["capturable"]
    assert report["host_reads"] == [0] * report["steps"]
    assert report["logit_error"] <= 0.02  # bf16 logits of ~0.7: the rounding of other sums
