"""`scout-desk doctor`: versions, the GPU, and whether a model folder is loadable (JSON or text)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import __version__
from app.commands.terminal import printable
from app.core import paths
from app.inference.budget import context_capacity, kv_bytes_per_token
from app.inference.estimate import GB, GIB, text_config
from app.inference.llama4_head import OUTPUT_HEADS, int8_saving
from app.inference.llama4_kv import KV_CACHES
from app.inference.model_json import ModelJsonError, read_model_json
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
    parser.add_argument(
        "--server", metavar="URL", default=None,
        help="also check an OpenAI-compatible server (vLLM): reachable, its models and context",
    )  # fmt: skip
    parser.add_argument(
        "--gpu-memory", metavar="GB", type=float, default=None,
        help="estimate the context for a card of this much memory as sold (80: an 80 GB card, "
        "80 GiB) instead of the GPU seen",
    )  # fmt: skip
    parser.add_argument(
        "--kv-cache", choices=KV_CACHES, default="bf16",
        help="the global layers' KV cache to price the context for: bf16 (default) or int8",
    )  # fmt: skip
    parser.add_argument(
        "--output-head", choices=OUTPUT_HEADS, default="bf16",
        help="the output head to price the context for: bf16 (default) or int8 (1 GB less)",
    )  # fmt: skip
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
    gpu_memory = getattr(args, "gpu_memory", None)
    result["context"] = context_result(
        model_dir if report is not None else None,
        report,
        int(gpu_memory * GIB) if gpu_memory is not None else cuda.free_bytes,
        getattr(args, "kv_cache", "bf16"),
        getattr(args, "output_head", "bf16"),
    )
    server_url = getattr(args, "server", None)
    if server_url is not None:
        result["server"] = server_result(server_url)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    model_bad = report is not None and bool(report.problems)
    server_bad = server_url is not None and bool(result["server"]["problems"])
    return EXIT_MODEL if model_bad or server_bad else EXIT_OK


def server_result(url: str) -> dict[str, Any]:
    """The `server` object of `doctor --json`: its models and their context, or the problems.

    The key comes from SCOUT_DESK_API_KEY or the keyring and is never printed.
    """
    from app.core.api_keys import load_api_key
    from app.core.settings import check_server_url
    from app.inference.engine import ModelError
    from app.inference.remote_engine import server_info
    from app.inference.remote_urls import plain_http_warning

    problems: list[str] = []
    models: list[dict[str, Any]] = []
    try:
        checked = check_server_url(url)
    except ValueError as exc:
        return {"url": url, "models": [], "problems": [f"{url} is not usable: {exc}."]}
    try:
        info = server_info(checked, load_api_key(checked))
        models = [{"id": m.id, "max_model_len": m.max_model_len} for m in info.models]
        if not models:
            problems.append(f"The server at {checked} serves no model.")
    except ModelError as exc:
        problems.append(exc.message)
    warning = plain_http_warning(checked)
    return {
        "url": checked,
        "models": models,
        "problems": problems,
        "warnings": [warning] if warning else [],
    }


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


def context_result(
    model_dir: Path | None,
    report: PreflightReport | None,
    device_bytes: int | None,
    kv_cache: str = "bf16",
    output_head: str = "bf16",
) -> dict[str, Any]:
    """The `context` object of `doctor --json`: the longest prompt the device can hold.

    Args:
        model_dir: the model folder (None: all fields null).
        report: its preflight report (`estimated_weight_bytes` for the chosen quantization).
        device_bytes: memory of the device to price: the GPU's free memory, or `--gpu-memory`'s
            card (None: no GPU, `max_prompt_tokens` null).
        kv_cache: the global layers' KV format priced, "bf16" or "int8".
        output_head: the output head priced, "bf16" or "int8" (`llama4_head.int8_saving`
            less weight memory).

    Returns:
        `max_prompt_tokens` (`budget.context_capacity` for one segment of prefill after the
        weights), `kv_bytes_per_token` (the global layers' KV per token), `weights_bytes`,
        `kv_cache` and `output_head`.
    """
    result: dict[str, Any] = {
        "max_prompt_tokens": None,
        "kv_bytes_per_token": None,
        "weights_bytes": None,
        "kv_cache": kv_cache,
        "output_head": output_head,
    }
    if model_dir is None or report is None:
        return result
    try:
        text = text_config(read_model_json(model_dir / "config.json"))
        per_token = kv_bytes_per_token(text, kv_cache=kv_cache)
    except (ModelJsonError, TypeError, ValueError):
        return result  # preflight already says what is wrong with config.json
    weights = report.estimated_weight_bytes
    if weights is not None and output_head == "int8":
        # No vocabulary or hidden size: preflight says so; the head is then priced as stored.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            weights -= int8_saving(text)
    result |= {"kv_bytes_per_token": per_token, "weights_bytes": weights}
    if device_bytes is not None and weights is not None:
        result["max_prompt_tokens"] = context_capacity(
            text, device_bytes - weights, 1 << 62, kv_cache=kv_cache
        )
    return result


def _head_note(context: dict[str, Any]) -> str:
    return " with the 8-bit output head" if context.get("output_head") == "int8" else ""


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
    if "server" in result:
        lines.extend(_server_lines(result["server"]))
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
    context = result.get("context") or {}
    if context.get("max_prompt_tokens") is not None:
        lines.append(
            f"  Context: up to {context['max_prompt_tokens']:,} prompt tokens "
            f"({context['kv_cache']} KV {context['kv_bytes_per_token']:,} bytes a token, weights "
            f"{_gb(context['weights_bytes'])}{_head_note(context)})"
        )
    elif context.get("kv_bytes_per_token") is not None:
        lines.append(
            f"  Context: unknown without a GPU ({context['kv_cache']} KV "
            f"{context['kv_bytes_per_token']:,} bytes "
            f"a token; --gpu-memory GB estimates for a card)"
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


def _server_lines(server: dict[str, Any]) -> list[str]:
    lines = [f"Server: {printable(server['url'])}"]
    for model in server["models"]:
        context = f"{model['max_model_len']:,} tokens" if model["max_model_len"] else "context ?"
        lines.append(f"  model {printable(model['id'])} ({context})")
    for title, key in (("Problems", "problems"), ("Warnings", "warnings")):
        if server[key]:
            lines.append(f"  {title}:")
            lines.extend(f"    - {printable(item)}" for item in server[key])
    if not server["problems"]:
        lines.append("  OK: the server answers.")
    return lines


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
