"""A long prompt says on stderr how much of it has been read: "reading N / M tokens"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^reading ([\d,]+) / ([\d,]+) tokens$")


def _ask(data: Path, model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    question = "The quick brown fox jumps over the lazy dog. " * 1200  # ~14,000 tokens
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "--data-dir", str(data), "ask", "--model", str(model),
         "--quantization", "bf16", "--max-new-tokens", "2", *extra, question],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_a_long_prompt_reports_its_reading_and_ends_read(tmp_path, long_context_model):
    done = _ask(tmp_path / "data", long_context_model)
    assert done.returncode == 0, done.stderr
    counts = [
        (int(m[1].replace(",", "")), int(m[2].replace(",", "")))
        for line in done.stderr.splitlines()
        if (m := LINE.match(line))
    ]
    assert counts, done.stderr
    totals = {total for _done, total in counts}
    assert len(totals) == 1 and totals.pop() > 8192
    assert counts[0][0] == 0 and counts[-1][0] == counts[-1][1]  # from nothing to all of it
    assert [d for d, _t in counts] == sorted(d for d, _t in counts)


@pytest.mark.slow
def test_json_output_keeps_stderr_free_of_progress(tmp_path, long_context_model):
    done = _ask(tmp_path / "data", long_context_model, "--json")
    assert done.returncode == 0, done.stderr
    assert not any(LINE.match(line) for line in done.stderr.splitlines())
