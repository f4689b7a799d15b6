"""Reading a model folder's safetensors layout without loading a tensor (no torch needed).

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the data. Checking the header against the file size finds a
truncated download in microseconds, before a minute-long load fails halfway.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ExpectedError
from app.inference.model_json import (
    JsonProblem,
    ModelJsonError,
    json_kind,
    parse_model_json,
    read_model_json,
)

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# A header bigger than this is not a real checkpoint (safetensors itself caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}


class CheckpointError(ExpectedError):
    """A checkpoint file that cannot be used; `message` names the file and the problem."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class ShardHeader:
    """A parsed safetensors header.

    Attributes:
        tensors: name → declared dtype, shape and byte range (relative to `data_start`).
        metadata: the optional `__metadata__` string map.
        data_start: where the tensor data begins in the file.
        data_bytes: the bytes the header declares (the largest end offset).
    """

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    data_bytes: int

    @property
    def expected_size(self) -> int:
        return self.data_start + self.data_bytes


def read_header(path: Path) -> ShardHeader:
    """Parse a safetensors header and check it against the file's size.

    Args:
        path: the .safetensors file.

    Returns:
        The header.

    Raises:
        CheckpointError: unreadable, not safetensors, inconsistent, or shorter than declared.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path.name} is {size} bytes, too short to be safetensors.")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise CheckpointError(
                    f"{path.name} is not a valid safetensors file (its header claims {length} "
                    f"bytes; the file has {size})."
                )
            raw = handle.read(length)
    except OSError as exc:
        raise CheckpointError(f"Cannot read {path.name}: {exc.strerror or exc}.") from None
    try:
        header = parse_model_json(raw, path.name)
    except ModelJsonError as error:
        reason = "is not JSON" if error.problem is JsonProblem.NOT_JSON else error.reason
        raise CheckpointError(f"{path.name} has a safetensors header that {reason}.") from None
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        # The safetensors library refuses anything but a string map; say so before it does.
        raise CheckpointError(
            f"{path.name} has a safetensors header whose __metadata__ is {json_kind(metadata)}"
            + (" with non-string values" if isinstance(metadata, dict) else "")
            + ", not a map of strings."
        )
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        tensors[name] = _tensor_info(path, name, entry)
    data_bytes = max((t.end for t in tensors.values()), default=0)
    parsed = ShardHeader(tensors, metadata, 8 + length, data_bytes)
    if parsed.expected_size > size:
        raise CheckpointError(
            f"{path.name} is truncated: its header declares {parsed.expected_size:,} bytes but "
            f"the file has {size:,}; download it again."
        )
    return parsed


def _tensor_info(path: Path, name: str, entry: object) -> TensorInfo:
    bad = CheckpointError(f"{path.name}: the header entry for tensor {name!r} is malformed.")
    if not isinstance(entry, dict):
        raise bad
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not (
        isinstance(dtype, str)
        and isinstance(shape, list)
        and all(_is_count(d) for d in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_count(o) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise bad
    width = DTYPE_BYTES.get(dtype)
    if width is not None and offsets[1] - offsets[0] != math.prod(shape) * width:
        raise CheckpointError(
            f"{path.name}: tensor {name!r} declares shape {shape} ({dtype}) but "
            f"{offsets[1] - offsets[0]} bytes."
        )
    return TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])


def _is_count(value: object) -> bool:
    """A non-negative JSON integer (true/false are ints to Python, never to safetensors)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_index(folder: Path) -> dict[str, str]:
    """The tensor name → shard file map of `model.safetensors.index.json`.

    Raises:
        CheckpointError: the index is unreadable, not a JSON object, or has no usable
            `weight_map`.
    """
    try:
        data = read_model_json(folder / INDEX_NAME)
    except ModelJsonError as error:
        raise CheckpointError(error.message) from None
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{INDEX_NAME} has no weight_map.")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard.startswith("."):
            raise CheckpointError(f"{INDEX_NAME} maps {name!r} to an invalid file name {shard!r}.")
    return {str(k): v for k, v in weight_map.items()}


def shard_names(folder: Path) -> list[str]:
    """The safetensors files the checkpoint consists of, in index order (or the single file).

    Raises:
        CheckpointError: there is neither an index nor `model.safetensors`, or the index is bad.
    """
    if (folder / INDEX_NAME).is_file():
        return sorted(set(read_index(folder).values()))
    if (folder / SINGLE_NAME).is_file():
        return [SINGLE_NAME]
    raise CheckpointError(
        f"{folder} has no {INDEX_NAME} and no {SINGLE_NAME}: it holds no safetensors weights."
    )
