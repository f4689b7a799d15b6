"""Counting tokens with a model folder's tokenizer.json, without torch, and the ~ estimate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tokenizers import Tokenizer

from app.inference.token_counter import (
    EstimateCounter,
    TokenCounter,
    estimate_tokens,
    load_counter,
)


def test_counts_match_the_folders_tokenizer_without_special_tokens(tiny_model: Path) -> None:
    counter = load_counter(tiny_model)
    assert isinstance(counter, TokenCounter) and counter.exact
    reference = Tokenizer.from_file(str(tiny_model / "tokenizer.json"))
    for text in ["hello world", "def main():\n    return 0\n", "Ünïcödé ✓ 42"]:
        assert counter.count(text) == len(reference.encode(text, add_special_tokens=False).ids)
    # The tokenizer adds <|begin_of_text|> on its own; a count of text leaves it out.
    assert len(reference.encode("hello world").ids) == counter.count("hello world") + 1
    assert counter.count("") == 0


def test_a_long_text_is_counted_in_pieces_close_to_one_encode(tiny_model: Path) -> None:
    counter = load_counter(tiny_model)
    text = "".join(f"line {n}: the quick brown fox\n" for n in range(20_000))
    whole = len(
        Tokenizer.from_file(str(tiny_model / "tokenizer.json"))
        .encode(text, add_special_tokens=False)
        .ids
    )
    pieces = len(text) // 100_000 + 1
    assert abs(counter.count(text) - whole) <= pieces


def test_no_folder_or_no_usable_tokenizer_falls_back_to_the_estimate(tmp_path: Path) -> None:
    assert isinstance(load_counter(None), EstimateCounter)
    assert isinstance(load_counter(""), EstimateCounter)
    assert isinstance(load_counter(tmp_path), EstimateCounter)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"not": "a tokenizer"}))
    assert TokenCounter.from_folder(tmp_path) is None
    counter = load_counter(tmp_path)
    assert not counter.exact
    assert counter.count("abcdefghi") == estimate_tokens("abcdefghi") == 3


def test_loading_and_counting_import_neither_torch_nor_transformers(tiny_model: Path) -> None:
    script = (
        "import sys\n"
        "from app.inference.token_counter import load_counter\n"
        f"counter = load_counter({str(tiny_model)!r})\n"
        "assert counter.exact and counter.count('hello') > 0\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[2])
