"""The segmented prefill's memory budget: its formula on Scout, a CPU measurement of tiny."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.inference.budget import (
    RESERVE_BYTES,
    context_capacity,
    decode_bytes,
    kv_bytes_per_token,
    kv_cache_bytes,
    segment_bytes,
)
from app.inference.llama4_attention import DIRECT_MAX_KEYS, ROW_BLOCK
from app.inference.tiny import tiny_config
from tests.helpers.scout_config import SCOUT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
SCOUT_TEXT = SCOUT_CONFIG["text_config"]
#: How far the budget's prediction may be from the measured working memory of a segment (the
#: measurement on a 2-core x86_64 CPU agreed to 4 % on every path).
MEASURED_FACTOR = 1.3


def test_scout_kv_per_token_is_the_twelve_global_layers_in_bf16() -> None:
    global_layers = SCOUT_TEXT["no_rope_layers"].count(0)
    assert global_layers == 12
    expected = global_layers * 2 * SCOUT_TEXT["num_key_value_heads"] * SCOUT_TEXT["head_dim"] * 2
    assert kv_bytes_per_token(SCOUT_TEXT) == expected == 49_152
    step = kv_cache_bytes(SCOUT_TEXT, 300_001) - kv_cache_bytes(SCOUT_TEXT, 300_000)
    assert step == 49_152
    chunked = kv_cache_bytes(SCOUT_TEXT, 300_000) - 300_000 * 49_152
    assert chunked == 36 * 8192 * 4096  # one 8,192-token chunk per chunked layer, ~1.2 GB


def test_scout_int8_kv_is_codes_and_a_two_byte_scale_per_row() -> None:
    rows = SCOUT_TEXT["no_rope_layers"].count(0) * 2 * SCOUT_TEXT["num_key_value_heads"]
    assert kv_bytes_per_token(SCOUT_TEXT, kv_cache="int8") == rows * (128 + 2) == 24_960
    step = kv_cache_bytes(SCOUT_TEXT, 300_001, kv_cache="int8") - kv_cache_bytes(
        SCOUT_TEXT, 300_000, kv_cache="int8"
    )
    assert step == 24_960  # the chunked layers stay bf16 and capped at a chunk


def test_scout_segment_grows_with_the_context_by_one_row_block_of_mask() -> None:
    def slope(context: int, kv_cache: str = "bf16") -> int:
        after = segment_bytes(SCOUT_TEXT, 2048, context + 1, kv_cache=kv_cache)
        return after - segment_bytes(SCOUT_TEXT, 2048, context, kv_cache=kv_cache)

    # Short keys: transformers' sdpa, its boolean mask, its bf16 additive copy, and keys and
    # values repeated to 40 heads.
    assert slope(12_000) == 2048 * (1 + 2) + 2 * 40 * 128 * 2
    # Long keys: one row block's mask (boolean + bf16), nothing repeated.
    assert slope(400_000) == ROW_BLOCK * (1 + 2) == 1536
    assert slope(400_000, "int8") == 1536 + 2 * 128 * 2  # + one head's keys and values unpacked
    first = segment_bytes(SCOUT_TEXT, 2048, 2048)
    assert 100 * 10**6 < first < 500 * 10**6  # activations of one segment + its small masks


def test_capacity_is_the_largest_context_that_fits() -> None:
    free = 20 * 10**9
    n = context_capacity(SCOUT_TEXT, free, 50_000)
    assert n > 100_000

    def need(tokens: int, segment: int = 2048) -> int:
        working = max(segment_bytes(SCOUT_TEXT, segment, tokens), decode_bytes(SCOUT_TEXT))
        return kv_cache_bytes(SCOUT_TEXT, tokens) + working

    assert need(n) <= free - RESERVE_BYTES < need(n + 1)
    # Scout's decode rings (36 chunked layers, one chunk of bf16 keys and values each) outweigh
    # a segment's working memory here, so a short prompt gets no more room...
    assert decode_bytes(SCOUT_TEXT) == 36 * 2 * 8 * 8192 * 128 * 2
    assert segment_bytes(SCOUT_TEXT, 2048, n) < decode_bytes(SCOUT_TEXT)
    assert context_capacity(SCOUT_TEXT, free, 100) == n
    # ...until the context is long enough for the segment's masks to be the larger term.
    big = 200 * 10**9
    long = context_capacity(SCOUT_TEXT, big, 50_000)
    assert segment_bytes(SCOUT_TEXT, 2048, long) > decode_bytes(SCOUT_TEXT)
    assert need(long) <= big - RESERVE_BYTES < need(long + 1)
    assert context_capacity(SCOUT_TEXT, big, 100) > long
    assert context_capacity(SCOUT_TEXT, free, 10**6) == n  # longer prompts: still one segment


@pytest.mark.parametrize(
    "options",
    [
        (),  # the tiny model's short keys: transformers' sdpa
        ("--direct-max-keys", "0"),  # every layer one head and one row block at a time
        ("--direct-max-keys", "0", "--kv-cache", "int8"),
    ],
    ids=["direct", "per-head", "per-head-int8"],
)
def test_prediction_matches_a_cpu_measurement_of_the_tiny_model(options: tuple[str, ...]) -> None:
    points = ("512:4096", "1024:8192")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "prefill.py"), "--measure", *points, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(points)
    text = tiny_config().get_text_config().to_dict()
    direct = 0 if "--direct-max-keys" in options else DIRECT_MAX_KEYS
    for row in rows:
        assert row["predicted_bytes"] == segment_bytes(
            text, row["segment"], row["context"], dtype_bytes=4,
            kv_cache=row["kv_cache"], direct_max_keys=direct,
        )  # fmt: skip
        ratio = row["predicted_bytes"] / row["working_bytes"]
        assert 1 / MEASURED_FACTOR < ratio < MEASURED_FACTOR, row


@pytest.mark.parametrize("free", [0, RESERVE_BYTES, RESERVE_BYTES + 10**6])
def test_nothing_fits_below_the_reserve_and_one_segment(free: int) -> None:
    assert context_capacity(SCOUT_TEXT, free, 2048) == 0


def test_a_kept_cache_that_must_grow_holds_one_global_layers_old_buffer_meanwhile() -> None:
    free = 30 * 10**9
    fresh = context_capacity(SCOUT_TEXT, free, 2048)
    # A kept 400 K tokens: while a layer grows it holds its old 400 K-token buffer (1.6 GB),
    # more than one segment's working memory, so a little less fits.
    grown = context_capacity(SCOUT_TEXT, free, 2048, kept_tokens=400_000)
    one_layer = 400_000 * 2 * 8 * 128 * 2
    assert grown < fresh
    need = kv_cache_bytes(SCOUT_TEXT, grown) + one_layer
    assert need <= free - RESERVE_BYTES < kv_cache_bytes(SCOUT_TEXT, grown + 1) + one_layer
    # A short kept prefix changes nothing: the segment is the larger transient.
    assert context_capacity(SCOUT_TEXT, free, 2048, kept_tokens=1_000) == fresh
