"""Mixed precision for neural encoders: the affinity itself always runs in float32."""

from __future__ import annotations

import contextlib

import torch

from colortrack.defaults import PRECISIONS


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None for fp32; the autocast dtype otherwise ("auto": bf16 or fp16 on CUDA, fp32 on CPU)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
