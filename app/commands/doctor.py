"""`scout-desk doctor`: versions, the GPU, and whether a model folder is loadable (JSON or text)."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import __version__
from app.core import paths
from app.inference.estimate import GB
from app.inference.preflight import QUANTIZATIONS, PreflightReport, check_model_folder

EXIT_OK, EXIT_MODEL = 0, 4
# Distribution names to try for each reported package (PySide6 ships as -Essentials too).
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "bitsandbytes": ("bitsandbytes",),
    "PySide6": ("PySide6", "PySide6-Essentials"),
}


@dataclass(frozen=True)
class CudaFacts:
    """What the doctor reports about the GPU (all None but `available` when there is none)."""

    available: bool
    device: str | None = None
    total_bytes: int | None = None
    free_bytes: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register doctor's options (`--model` and `--data-dir` come from the top-level parser)."""
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="nf4",
        help="the quantization to check the model folder for (default: nf4)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Check this machine and the model folder; print the report.

    Args:
        args: parsed arguments with `model` (may be None), `quantization` and `json`.

    Returns:
        4 when the model folder has problems, 0 otherwise.
    """
    model = getattr(args, "model", None)
    model_dir = Path(model).expanduser().absolute() if model else paths.model_dir_from_env()
    cuda = cuda_facts()
    report = None
    if model_dir is not None:
        report = check_model_folder(model_dir, args.quantization, free_gpu_bytes=cuda.free_bytes)
    result = doctor_result(versions(), cuda, report, args.quantization)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    return EXIT_MODEL if report is not None and report.problems else EXIT_OK


def versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing heavy is imported)."""
    found: dict[str, str | None] = {"python": platform.python_version(), "scout-desk": __version__}
    for name, distributions in _DISTRIBUTIONS.items():
        found[name] = None
        for distribution in distributions:
            try:
                found[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def cuda_facts() -> CudaFacts:
    """Ask torch about the first CUDA device; any failure means no usable GPU."""
    if importlib.util.find_spec("torch") is None:
        return CudaFacts(False)
    try:
        import torch

        if not torch.cuda.is_available():
            return CudaFacts(False)
        free, total = torch.cuda.mem_get_info(0)
        return CudaFacts(True, torch.cuda.get_device_name(0), int(total), int(free))
    except Exception:  # a broken driver is "no GPU" to a doctor, not a crash
        return CudaFacts(False)


def doctor_result(
    found: dict[str, str | None],
    cuda: CudaFacts,
    report: PreflightReport | None,
    quantization: str,
) -> dict[str, Any]:
    """The JSON object `doctor --json` prints (model fields null when no folder was given)."""
    result: dict[str, Any] = {
        "versions": found,
        "cuda": {
            "available": cuda.available,
            "device": cuda.device,
            "total_bytes": cuda.total_bytes,
            "free_bytes": cuda.free_bytes,
        },
        "model_dir": None,
        "quantization": quantization,
        "model_type": None,
        "checkpoint_kind": None,
        "load_quantization": None,
        "problems": [],
        "warnings": [],
        "estimated_weight_bytes": None,
        "total_params": None,
        "margin_bytes": None,
        "fits": None,
    }
    if report is not None:
        result |= {
            "model_dir": str(report.model_dir),
            "model_type": report.model_type,
            "checkpoint_kind": report.checkpoint_kind,
            "load_quantization": report.load_quantization,
            "problems": list(report.problems),
            "warnings": list(report.warnings),
            "estimated_weight_bytes": report.estimated_weight_bytes,
            "total_params": report.total_params,
            "margin_bytes": report.margin_bytes,
            "fits": report.fits,
        }
    return result


def format_text(result: dict[str, Any]) -> str:
    """The human-readable report."""
    v = result["versions"]
    lines = [
        f"Scout Desk {v['scout-desk']} (Python {v['python']})",
        "  " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in _DISTRIBUTIONS),
    ]
    cuda = result["cuda"]
    if cuda["available"]:
        lines.append(
            f"GPU: {cuda['device']}, {_gb(cuda['free_bytes'])} free of {_gb(cuda['total_bytes'])}"
        )
    else:
        lines.append("GPU: none found (CUDA not available); models run on the CPU")
    if result["model_dir"] is None:
        lines.append("Model folder: none given (use --model DIR or SCOUT_DESK_MODEL)")
        return "\n".join(lines)
    lines.append(f"Model folder: {result['model_dir']}")
    if result["model_type"]:
        kind = result["checkpoint_kind"] or "unknown layout"
        lines.append(f"  model type {result['model_type']}, checkpoint {kind}")
    if result["estimated_weight_bytes"] is not None:
        fits = {True: "yes", False: "no", None: "unknown (no GPU)"}[result["fits"]]
        lines.append(
            f"  {_count(result['total_params'])} parameters; weights as "
            f"{result['load_quantization']}: {_gb(result['estimated_weight_bytes'])} "
            f"+ {_gb(result['margin_bytes'])} working memory; fits on the GPU: {fits}"
        )
    for title, key in (("Problems", "problems"), ("Warnings", "warnings")):
        if result[key]:
            lines.append(f"  {title}:")
            lines.extend(f"    - {item}" for item in result[key])
    lines.append(
        f"  {len(result['problems'])} problem(s): the folder cannot be loaded."
        if result["problems"]
        else "  OK: the folder can be loaded."
    )
    return "\n".join(lines)


def _gb(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / GB:.1f} GB" if n >= GB // 10 else f"{n / 1e6:.1f} MB"


def _count(n: int) -> str:
    return f"{n / 1e9:.1f} B" if n >= 10**8 else f"{n / 1e6:.1f} M"


if __name__ == "__main__":  # handy for `python -m app.commands.doctor --model DIR`
    parser = argparse.ArgumentParser(prog="scout-desk doctor")
    parser.add_argument("--model")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
