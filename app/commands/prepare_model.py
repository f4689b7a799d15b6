"""`scout-desk prepare-model SRC DST`: convert the official bf16 folder to per-expert 4-bit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.inference.estimate import GB
from app.inference.prepare import PrepareError, PrepareProgress, prepare_model

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register SRC, DST and `--quantization`."""
    parser.add_argument("src", type=Path, metavar="SRC", help="the official bf16 Llama 4 folder")
    parser.add_argument(
        "dst", type=Path, metavar="DST", help="the folder to write (new, or a run to resume)"
    )
    parser.add_argument(
        "--quantization",
        choices=("nf4", "int8"),
        default="nf4",
        help="nf4 (default, ~60 GB for Scout) or int8 (~111 GB)",
    )


def run(args: argparse.Namespace) -> int:
    """Convert, printing one line per shard; expected failures print one sentence.

    Args:
        args: parsed arguments with `src`, `dst` and `quantization`.

    Returns:
        0 when done; 3 or 4 for a bad folder; 130 when interrupted (re-run to resume).
    """
    print(f"Converting {args.src} to {args.quantization} in {args.dst} ...", flush=True)
    try:
        result = prepare_model(args.src, args.dst, args.quantization, progress=_print_progress)
    except PrepareError as error:
        print(f"scout-desk: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("\nscout-desk: interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"Done: {result.dst} ({result.shards} shards, {result.total_bytes / GB:.1f} GB; "
        f"{result.resumed} verified from an earlier run). Load it with --model {result.dst}"
    )
    return EXIT_OK


def _print_progress(step: PrepareProgress) -> None:
    verb = "verified (already done)" if step.resumed else "written"
    print(
        f"[{step.shard}/{step.total}] {step.name} {verb}; "
        f"{step.bytes_done / GB:.1f} of {step.bytes_total / GB:.1f} GB read",
        flush=True,
    )
