"""Check a Llama 4 model folder before loading it: files, safety, layout, and whether it fits.

Runs in milliseconds without torch: it reads config.json and the safetensors headers only. Every
problem is one plain sentence naming the file or the number, so `doctor` and the load dialog can
show it as is. The engine calls it before every load; `scout-desk doctor` prints it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.inference.budget import PROCESSOR_FILES, ImageTiling
from app.inference.checkpoint import (
    INDEX_NAME,
    CheckpointError,
    read_header,
    read_index,
    shard_names,
)
from app.inference.estimate import (
    GB,
    KEEP_BF16_MODULES,
    estimate_weights,
    moe_layers,
    text_config,
    working_margin_bytes,
)
from app.inference.model_json import (
    SETTINGS_FILES,
    ModelJsonError,
    checked_setting,
    is_bool,
    is_count,
    is_fraction,
    is_number,
    is_positive_int,
    is_token_ids,
    json_kind,
    object_field,
    one_line,
    read_model_json,
)

QUANTIZATIONS = ("nf4", "int8", "bf16")
#: Written by prepare-model while it works; a folder that still has it unfinished is incomplete.
PREPARE_STATE_NAME = ".scout-desk-prepare.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Attention implementations that run code shipped inside transformers/torch, nothing downloaded.
SAFE_ATTENTION = {None, "eager", "sdpa", "flex_attention", "flash_attention_2"}
_FUSED = re.compile(r"feed_forward\.experts\.(gate_up_proj|down_proj)$")
_PER_EXPERT = re.compile(r"feed_forward\.experts\.\d+\.(gate|up|down)_proj\.weight$")
_MAX_LISTED = 5
GENERATION_FILE = "generation_config.json"
_TOKEN_IDS = "a token id or a list of token ids"
# What generate takes from generation_config.json unchecked: a string here fails mid-answer.
_GENERATION_FIELDS = (
    ("bos_token_id", is_token_ids, _TOKEN_IDS),
    ("eos_token_id", is_token_ids, _TOKEN_IDS),
    ("pad_token_id", is_token_ids, _TOKEN_IDS),
    ("do_sample", is_bool, "true or false"),
    ("temperature", is_number, "a number"),
    ("top_p", is_fraction, "a number above 0 and at most 1"),
    ("top_k", is_count, "a whole number"),
    ("max_length", is_positive_int, "a positive integer"),
    ("max_new_tokens", is_positive_int, "a positive integer"),
)


@dataclass
class PreflightReport:
    """What `check_model_folder` found.

    Attributes:
        model_dir: the folder checked.
        quantization: what was asked for ("nf4", "int8", "bf16").
        model_type: config.json's `model_type`, or None when unreadable.
        problems: sentences; any problem means the folder must not be loaded.
        warnings: sentences worth showing that do not block loading.
        checkpoint_kind: "bf16-fused" (official layout), "per-expert-nf4", "per-expert-fp4",
            "per-expert-int8", "bf16-per-expert", "other-quantized", or None when unknown.
        load_quantization: what the loader will actually apply (a pre-quantized folder keeps its
            own), or None when unknown.
        estimated_weight_bytes: the loaded weights' size, from config.json alone.
        total_params: the model's parameter count.
        margin_bytes: memory beyond the weights budgeted for cache, activations and CUDA.
        fits: estimate + margin <= free GPU memory; None without a GPU.
        per_expert_estimate_bytes: for an official folder, the size after prepare-model (NF4).
    """

    model_dir: Path
    quantization: str
    model_type: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoint_kind: str | None = None
    load_quantization: str | None = None
    estimated_weight_bytes: int | None = None
    total_params: int | None = None
    margin_bytes: int | None = None
    fits: bool | None = None
    per_expert_estimate_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_model_folder(
    model_dir: Path,
    quantization: str,
    *,
    free_gpu_bytes: int | None = None,
    memory_bytes: int | None = None,
) -> PreflightReport:
    """Check `model_dir` for loading with `quantization`; never raises for a bad folder.

    Args:
        model_dir: the model folder.
        quantization: "nf4", "int8" or "bf16".
        free_gpu_bytes: free memory on the GPU the model would load onto; None without a GPU.
        memory_bytes: the machine's RAM, used instead of the GPU when there is none (default: read
            from the OS).

    Returns:
        The report; `report.ok` says whether loading may proceed.
    """
    model_dir = Path(model_dir)
    report = PreflightReport(model_dir=model_dir, quantization=quantization)
    if quantization not in QUANTIZATIONS:
        report.problems.append(
            f"Unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}."
        )
        return report
    if not model_dir.exists():
        report.problems.append(f"The model folder {model_dir} does not exist.")
        return report
    if not model_dir.is_dir():
        report.problems.append(f"{model_dir} is a file, not a model folder.")
        return report
    if _prepare_unfinished(model_dir):
        report.problems.append(
            f"{model_dir} is an incomplete prepare-model output; re-run prepare-model to finish it."
        )
        return report
    config = _read_config(model_dir, report)
    _check_pickles(model_dir, report)
    processor_files = _check_settings_files(model_dir, report)
    names = _check_shards(model_dir, report)
    if config is None:
        return report
    _check_config(config, report)
    if report.model_type != "llama4":
        return report
    report.problems.extend(ImageTiling.from_settings(processor_files, config)[1])
    if _classify(config, names, report):
        _estimate(config, report, free_gpu_bytes, memory_bytes)
    return report


def _prepare_unfinished(model_dir: Path) -> bool:
    state = model_dir / PREPARE_STATE_NAME
    if not state.exists():
        return False
    try:
        return read_model_json(state).get("complete") is not True
    except ModelJsonError:  # a damaged state file: the run never finished writing it
        return True


def _read_config(model_dir: Path, report: PreflightReport) -> dict[str, Any] | None:
    path = model_dir / "config.json"
    if not path.is_file():
        report.problems.append(f"{model_dir} has no config.json; it is not a model folder.")
        return None
    try:
        config = read_model_json(path)
        # Sections transformers builds sub-configs from: anything but an object breaks it.
        for key in ("text_config", "vision_config", "quantization_config"):
            object_field(config, key, "config.json")
    except ModelJsonError as error:
        report.problems.append(error.message)
        return None
    model_type = config.get("model_type")
    report.model_type = model_type if isinstance(model_type, str) else None
    if model_type != "llama4":
        report.problems.append(
            f"config.json says model_type {_shown(model_type)}; Scout Desk loads Llama 4 "
            "(model_type 'llama4') folders only."
        )
    return config


def _check_config(config: dict[str, Any], report: PreflightReport) -> None:
    sections = [("config.json", config)]
    sections += [
        (f"config.json {key}", config[key])
        for key in ("text_config", "vision_config")
        if isinstance(config.get(key), dict)
    ]
    for where, section in sections:
        if section.get("auto_map"):
            report.problems.append(
                f"{where} asks for remote code (auto_map); Scout Desk never runs code from a "
                "model folder."
            )
        for key in ("attn_implementation", "_attn_implementation"):
            value = section.get(key)
            # isinstance first: a list or an object is unhashable, and no attention either.
            if not (value is None or (isinstance(value, str) and value in SAFE_ATTENTION)):
                report.problems.append(
                    f"{where} sets {key} to {_shown(value)}, a custom attention implementation; "
                    "Scout Desk uses sdpa only."
                )


def _check_pickles(model_dir: Path, report: PreflightReport) -> None:
    pickles = sorted(
        p.name for p in model_dir.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES
    )
    if pickles:
        report.problems.append(
            f"{model_dir} contains pickle weights ({_listing(pickles)}); Scout Desk loads "
            "safetensors only."
        )


def _check_settings_files(
    model_dir: Path, report: PreflightReport
) -> list[tuple[str, dict[str, Any]]]:
    """Check the tokenizer and processor files; return the parsed image processor settings."""
    if not (model_dir / "tokenizer.json").is_file():
        report.problems.append(f"{model_dir} has no tokenizer.json (the tokenizer is missing).")
    if not (model_dir / "tokenizer_config.json").is_file():
        report.problems.append(f"{model_dir} has no tokenizer_config.json.")
    if not any(
        (model_dir / n).is_file() for n in ("preprocessor_config.json", "processor_config.json")
    ):
        report.problems.append(
            f"{model_dir} has no preprocessor_config.json or processor_config.json (the image "
            "processor settings are missing)."
        )
    processor_files = []
    for name in SETTINGS_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            data = read_model_json(path)
        except ModelJsonError as error:
            report.problems.append(error.message)
            continue
        if name == GENERATION_FILE:
            _check_generation_config(data, report)
        if data.get("auto_map"):
            report.problems.append(
                f"{name} asks for remote code (auto_map); Scout Desk never runs code from a "
                "model folder."
            )
        if name in PROCESSOR_FILES:
            processor_files.append((name, data))
    return processor_files


def _check_generation_config(data: dict[str, Any], report: PreflightReport) -> None:
    """The values generation reads straight from the file (the request sets the others)."""
    for key, valid, expected in _GENERATION_FIELDS:
        checked_setting(data, key, GENERATION_FILE, valid, expected, report.problems)


def _check_shards(model_dir: Path, report: PreflightReport) -> set[str]:
    """Check every shard; return the tensor names the checkpoint holds."""
    try:
        shards = shard_names(model_dir)
        index = read_index(model_dir) if (model_dir / INDEX_NAME).is_file() else None
    except CheckpointError as error:
        report.problems.append(error.message)
        return set()
    missing = [s for s in shards if not (model_dir / s).is_file()]
    if missing:
        report.problems.append(
            f"{len(missing)} of the {len(shards)} weight files named in {INDEX_NAME} are "
            f"missing: {_listing(missing)}."
        )
    names: set[str] = set()
    for shard in shards:
        if shard in missing:
            continue
        try:
            header = read_header(model_dir / shard)
        except CheckpointError as error:
            report.problems.append(error.message)
            continue
        names.update(header.tensors)
        if index is not None:
            absent = [n for n, s in index.items() if s == shard and n not in header.tensors]
            if absent:
                report.problems.append(
                    f"{shard} lacks {len(absent)} tensor(s) that {INDEX_NAME} puts in it "
                    f"(e.g. {absent[0]}); the file does not match the index."
                )
    if index is not None and not missing:
        names.update(index)
    return names


def _classify(config: dict[str, Any], names: set[str], report: PreflightReport) -> bool:
    """Name the checkpoint's layout; False when its quantization settings are unusable."""
    quant = config.get("quantization_config")
    fused = any(_FUSED.search(n) for n in names)
    per_expert = any(_PER_EXPERT.search(n) for n in names)
    try:
        has_moe = bool(moe_layers(text_config(config)))
    except ValueError as error:  # a layer count that is not a positive integer
        report.problems.append(str(error))
        return False
    if isinstance(quant, dict):
        method = quant.get("quant_method")
        if method != "bitsandbytes":
            report.checkpoint_kind = "other-quantized"
            report.problems.append(
                f"config.json: quantization method {_shown(method)} is not supported; Scout Desk "
                "loads bf16 folders or bitsandbytes (NF4/int8) per-expert folders."
            )
            return False
        if not _bnb_settings_usable(quant, report):
            return False
        if quant.get("load_in_8bit"):
            report.checkpoint_kind, report.load_quantization = "per-expert-int8", "int8"
        else:
            kind = quant.get("bnb_4bit_quant_type") or "nf4"
            report.checkpoint_kind, report.load_quantization = f"per-expert-{kind}", kind
        if names and has_moe and (fused or not per_expert):
            report.problems.append(
                "config.json says the weights are pre-quantized with bitsandbytes, but the experts "
                "are not stored per expert (no feed_forward.experts.N.gate_proj weights); "
                "re-create the folder with prepare-model."
            )
        if report.load_quantization != report.quantization:
            report.warnings.append(
                f"This folder is pre-quantized as {report.load_quantization}; it loads as "
                f"{report.load_quantization} whatever quantization is chosen "
                f"({report.quantization})."
            )
        return True
    report.load_quantization = report.quantization
    if per_expert and not fused:
        report.checkpoint_kind = "bf16-per-expert"
        report.problems.append(
            "The experts are stored per expert (feed_forward.experts.N...) but config.json has no "
            "quantization_config; transformers can load only fused bf16 experts or a "
            "pre-quantized per-expert folder."
        )
    else:
        report.checkpoint_kind = "bf16-fused"
    return True


def _bnb_settings_usable(quant: dict[str, Any], report: PreflightReport) -> bool:
    """Whether the bitsandbytes settings the estimate reads have usable types (else say so)."""
    kind = quant.get("bnb_4bit_quant_type") or "nf4"
    skip = quant.get("llm_int8_skip_modules")
    ok = True
    if kind not in ("nf4", "fp4"):
        report.problems.append(
            f"config.json: bnb_4bit_quant_type is {_shown(kind)}; bitsandbytes knows nf4 and fp4."
        )
        ok = False
    if skip is not None and not (isinstance(skip, list) and all(isinstance(m, str) for m in skip)):
        report.problems.append(
            f"config.json: llm_int8_skip_modules is {json_kind(skip)}, not a list of module names."
        )
        ok = False
    return ok


def _estimate(
    config: dict[str, Any],
    report: PreflightReport,
    free_gpu_bytes: int | None,
    memory_bytes: int | None,
) -> None:
    quant = config.get("quantization_config")
    # The folder's own bitsandbytes settings, when it is pre-quantized by us or a known tool.
    pre_quant = (
        quant if isinstance(quant, dict) and report.checkpoint_kind != "other-quantized" else None
    )
    pre = pre_quant is not None
    load_as = report.load_quantization or report.quantization
    try:
        estimate = estimate_weights(
            config,
            load_as,
            fused_experts=not pre,
            skip_modules=(
                pre_quant.get("llm_int8_skip_modules")
                if pre_quant is not None
                else KEEP_BF16_MODULES
            ),
            double_quant=(
                bool(pre_quant.get("bnb_4bit_use_double_quant")) if pre_quant is not None else True
            ),
        )
        prepared = estimate_weights(
            config, "nf4", fused_experts=False, skip_modules=KEEP_BF16_MODULES
        )
        margin = working_margin_bytes(config)
    except ValueError as error:
        report.problems.append(str(error))
        return
    report.estimated_weight_bytes = estimate.weight_bytes
    report.total_params = estimate.total_params
    report.margin_bytes = margin
    need = estimate.weight_bytes + margin
    on_the_fly = not pre and load_as != "bf16"
    expert_bytes = estimate.bytes_by_component.get("experts", 0)
    hint = ""
    if on_the_fly and expert_bytes:
        report.per_expert_estimate_bytes = prepared.weight_bytes
        hint = (
            f" Quantizing this official bf16 folder on the fly leaves its experts in bf16 "
            f"({_gb(expert_bytes)}); run `scout-desk prepare-model SRC DST` once to convert it "
            f"to a per-expert 4-bit folder (~{_gb(prepared.weight_bytes)})."
        )
    if free_gpu_bytes is not None:
        report.fits = need <= free_gpu_bytes
        if not report.fits:
            report.problems.append(
                f"The model needs about {_gb(estimate.weight_bytes)} for its weights as "
                f"{estimate.mode} plus {_gb(margin)} working memory, but the GPU has "
                f"{_gb(free_gpu_bytes)} free.{hint}"
            )
            return
    else:
        ram = memory_bytes if memory_bytes is not None else _physical_memory()
        if ram is not None and need > ram:
            report.problems.append(
                f"No GPU found, and the model needs about {_gb(estimate.weight_bytes)} for its "
                f"weights as {estimate.mode} plus {_gb(margin)}, more than this machine's "
                f"{_gb(ram)} of memory.{hint}"
            )
            return
    if hint and expert_bytes >= GB:  # a toy model's bf16 experts are not worth a warning
        report.warnings.append(hint.strip())


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _shown(value: object) -> str:
    """A value from config.json as a message quotes it (short, on one line)."""
    return one_line(repr(value), 60)


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown if len(items) <= _MAX_LISTED else f"{shown} and {len(items) - _MAX_LISTED} more"
