"""`prepare-model`: convert an official bf16 Llama 4 folder into a per-expert 4-bit (or 8-bit) one.

Only a per-expert, pre-quantized checkpoint loads its experts in 4 bits (see quantize.py), so a user
with Meta's bf16 download converts it once. The conversion goes shard by shard, one tensor at a
time, so memory stays near one shard's output plus one fused expert tensor (~3 GB for Scout), never
the model. Each finished output shard is verified (header re-read, names/shapes/dtypes compared,
SHA-256) and recorded in a state file; a re-run verifies and skips those. The index and config.json
are written last, atomically, and the state file is marked complete only after them, so an
interrupted folder is never taken for a finished one (preflight reports it as incomplete).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import ExpectedError
from app.inference.checkpoint import INDEX_NAME, CheckpointError, read_header, shard_names
from app.inference.model_json import ModelJsonError, read_model_json
from app.inference.preflight import PICKLE_SUFFIXES, PREPARE_STATE_NAME, check_model_folder

STATE_VERSION = 1
_DTYPE_NAMES = {
    "bfloat16": "BF16",
    "float16": "F16",
    "float32": "F32",
    "uint8": "U8",
    "int8": "I8",
    "int32": "I32",
    "int64": "I64",
    "bool": "BOOL",
    "float64": "F64",
}
# Suffixes bitsandbytes adds next to a quantized `weight` (NF4 quant state, int8 scales).
_STAT_SUFFIXES = (
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".quant_state.bitsandbytes__nf4",
    ".quant_state.bitsandbytes__fp4",
)


class PrepareError(ExpectedError):
    """An expected failure; `message` is a sentence and `exit_code` the CLI code (3 or 4)."""

    def __init__(self, message: str, exit_code: int = 4) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PrepareProgress:
    """Reported after each output shard is finished (written and verified) or found done."""

    shard: int
    total: int
    name: str
    bytes_done: int
    bytes_total: int
    resumed: bool


@dataclass(frozen=True)
class PrepareResult:
    """What a finished conversion produced."""

    dst: Path
    shards: int
    written: int
    resumed: int
    total_bytes: int


def prepare_model(
    src: Path,
    dst: Path,
    quantization: str = "nf4",
    *,
    double_quant: bool = True,
    progress: Callable[[PrepareProgress], None] | None = None,
    device: str | None = None,
) -> PrepareResult:
    """Convert the official bf16 folder `src` into a per-expert pre-quantized folder `dst`.

    Args:
        src: the official Llama 4 folder (fused bf16 experts).
        dst: the output folder: new, empty, or an unfinished earlier run (which is resumed).
        quantization: "nf4" (default) or "int8".
        double_quant: NF4 double quantization (smaller; the Scout Desk default).
        progress: called after each output shard; an exception it raises stops the run, which a
            later call resumes.
        device: where to quantize: "cpu", "cuda", or None for the GPU when there is one
            (bitsandbytes' CPU backend manages ~8 M weights a second: Scout takes hours).

    Returns:
        A summary of the finished folder.

    Raises:
        PrepareError: the source is unusable, `dst` is not free, or writing failed.
    """
    from app.inference.quantize import loader_plan

    src, dst = Path(src).absolute(), Path(dst).absolute()
    if quantization not in ("nf4", "int8"):
        raise PrepareError(f"prepare-model makes nf4 or int8 folders, not {quantization!r}.", 3)
    config = _check_source(src)
    state = _open_destination(src, dst, quantization, double_quant)
    plan = loader_plan(config, quantization, double_quant, device or _default_device())
    sources = shard_names(src)
    sizes = [(src / s).stat().st_size for s in sources]
    outputs = [
        f"model-{i:05d}-of-{len(sources):05d}.safetensors" for i in range(1, len(sources) + 1)
    ]
    weight_map: dict[str, str] = {}
    written = resumed = 0
    for i, (source, output) in enumerate(zip(sources, outputs, strict=True), start=1):
        names = _verified_names(dst, output, state["shards"].get(output), source)
        was_done = names is not None
        if names is None:
            record, names = _convert_shard(src / source, dst / output, plan)
            state["shards"][output] = record | {"source": source}
            _write_json(dst / PREPARE_STATE_NAME, state)
            written += 1
        else:
            resumed += 1
        weight_map.update(dict.fromkeys(names, output))
        if progress is not None:
            done = sum(sizes[:i])
            progress(PrepareProgress(i, len(sources), output, done, sum(sizes), was_done))
    _check_coverage(weight_map, plan)
    _copy_side_files(src, dst)
    total = sum(state["shards"][o]["bytes"] for o in outputs)
    _write_json(dst / INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})
    _write_json(dst / "config.json", config | {"quantization_config": plan.config})
    state["complete"] = True
    _write_json(dst / PREPARE_STATE_NAME, state)
    return PrepareResult(dst, len(outputs), written, resumed, total)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_source(src: Path) -> dict[str, Any]:
    """Preflight the source as bf16 (memory is no concern here) and return its config."""
    report = check_model_folder(src, "bf16", memory_bytes=1 << 62)
    if report.problems:
        raise PrepareError(f"Cannot convert {src}: " + " ".join(report.problems))
    if report.checkpoint_kind != "bf16-fused":
        raise PrepareError(
            f"{src} is already a {report.checkpoint_kind} folder; load it directly, there is "
            "nothing to convert."
        )
    return read_model_json(src / "config.json")  # preflight read it a moment ago


def _open_destination(
    src: Path, dst: Path, quantization: str, double_quant: bool
) -> dict[str, Any]:
    """Return the run's state: a fresh one for a new or empty `dst`, the old one to resume."""
    if dst == src or src in dst.parents or dst in src.parents:
        raise PrepareError(f"The output folder {dst} must be outside the source folder {src}.", 3)
    fresh: dict[str, Any] = {
        "version": STATE_VERSION,
        "source": str(src),
        "quantization": quantization,
        "double_quant": double_quant,
        "complete": False,
        "shards": {},
    }
    if dst.exists() and not dst.is_dir():
        raise PrepareError(f"{dst} is a file; give prepare-model a folder to write.", 3)
    state_path = dst / PREPARE_STATE_NAME
    if state_path.is_file():
        try:
            state: dict[str, Any] | None = read_model_json(state_path)
        except ModelJsonError:
            state = None
        same = state is not None and all(
            state.get(k) == fresh[k] for k in ("version", "source", "quantization", "double_quant")
        )
        if state is None or not same or not isinstance(state.get("shards"), dict):
            raise PrepareError(
                f"{dst} holds a prepare-model run with other settings (or a damaged "
                f"{PREPARE_STATE_NAME}); choose an empty output folder.",
                3,
            )
        state["complete"] = False  # redone below, after the index and config are rewritten
        _write_json(state_path, state)
        return state
    if dst.is_dir() and any(dst.iterdir()):
        raise PrepareError(f"The output folder {dst} is not empty; choose a new folder.", 3)
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(f"Cannot create {dst}: {exc.strerror or exc}.", 3) from None
    _write_json(state_path, fresh)
    return fresh


def _verified_names(dst: Path, output: str, record: dict | None, source: str) -> list[str] | None:
    """The tensor names of an already finished shard, or None when it must be (re)done."""
    path = dst / output
    if not record or record.get("source") != source or not path.is_file():
        return None
    try:
        if path.stat().st_size != record.get("bytes") or _sha256(path) != record.get("sha256"):
            return None
        return list(read_header(path).tensors)
    except (OSError, CheckpointError):
        return None


def _convert_shard(source: Path, output: Path, plan: Any) -> tuple[dict, list[str]]:
    """Convert one source shard, one tensor at a time; write, verify and hash the result."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from app.inference.quantize import convert_tensor

    tensors: dict[str, Any] = {}
    with safe_open(str(source), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 - safe_open is not a dict
            for out_name, tensor in convert_tensor(name, handle.get_tensor(name), plan):
                tensors[out_name] = tensor
    expected = {
        n: (_DTYPE_NAMES[str(t.dtype).removeprefix("torch.")], tuple(t.shape))
        for n, t in tensors.items()
    }
    partial = output.with_name(output.name + ".partial")
    try:
        save_file(tensors, str(partial), metadata={"format": "pt"})
        del tensors
        _fsync(partial)
        partial.replace(output)
        _fsync(output.parent)
        header = read_header(output)
    except OSError as exc:
        raise PrepareError(f"Cannot write {output}: {exc.strerror or exc}.", 3) from None
    except CheckpointError as error:
        raise PrepareError(f"The shard just written is unreadable: {error.message}", 3) from None
    found = {n: (t.dtype, t.shape) for n, t in header.tensors.items()}
    if found != expected:
        wrong = sorted(set(found.items()) ^ set(expected.items()))[:1]
        raise PrepareError(f"{output.name} does not hold what was written (first: {wrong}).", 3)
    record = {"sha256": _sha256(output), "bytes": output.stat().st_size}
    return record, list(header.tensors)


def _check_coverage(weight_map: dict[str, str], plan: Any) -> None:
    """Every parameter the loader's model has must be in the output, and nothing unknown."""
    produced = set()
    for name in weight_map:
        base = name
        for suffix in _STAT_SUFFIXES:
            base = base.removesuffix(suffix)
        if base.endswith((".SCB", ".weight_format")):
            base = base.rsplit(".", 1)[0] + ".weight"
        produced.add(base)
    missing = sorted(plan.parameters - produced)
    if missing:
        raise PrepareError(
            f"The converted folder would lack {len(missing)} weight(s) the model needs "
            f"(e.g. {missing[0]}); the source checkpoint is incomplete."
        )
    unknown = sorted(produced - plan.parameters)
    if unknown:
        raise PrepareError(
            f"The source holds {len(unknown)} weight(s) the model does not have "
            f"(e.g. {unknown[0]}); is it really a Llama 4 checkpoint?"
        )


def _copy_side_files(src: Path, dst: Path) -> None:
    """Copy tokenizer, processor, chat template, generation config and other small files."""
    skip = {INDEX_NAME, "config.json"}
    for item in sorted(src.iterdir()):
        if (
            not item.is_file()
            or item.name in skip
            or item.name.startswith(".")
            or item.suffix in (".safetensors", *PICKLE_SUFFIXES)
        ):
            continue
        partial = dst / (item.name + ".partial")
        try:
            shutil.copyfile(item, partial)
            _fsync(partial)
            partial.replace(dst / item.name)
        except OSError as exc:
            raise PrepareError(
                f"Cannot copy {item.name} to {dst}: {exc.strerror or exc}.", 3
            ) from None


def _write_json(path: Path, data: object) -> None:
    """Write JSON atomically: temp file, fsync, rename, fsync the folder."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync(partial)
        partial.replace(path)
        _fsync(path.parent)
    except OSError as exc:
        raise PrepareError(f"Cannot write {path}: {exc.strerror or exc}.", 3) from None


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
