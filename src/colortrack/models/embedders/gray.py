"""Training-free embedder that sees only luminance: for colourizing grayscale video without a model.

Each feature cell is described by the Lab lightness L of a ``patch`` x ``patch`` neighbourhood of
``cell`` x ``cell`` pixel sub-cells around it, with the patch mean removed (texture, invariant to brightness
changes) and divided by its contrast, plus a weak code of the mean level itself, so that two flat
regions of different brightness still differ. Only L is used: a gray frame whose L equals its
colour original's gets the same embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from colortrack.core.lab import rgb_to_lab


class LuminancePatchEmbedder:
    """Per cell: the mean-removed, contrast-normalised L of a patch of sub-cells, and its mean level.

    stride: pixels per feature cell; cell: pixels per sub-cell (divides stride); patch: sub-cells per
    side of the described neighbourhood (odd), so the default describes 20 x 20 pixels every 8.

    contrast_floor: in L units; patches flatter than this are not amplified to unit norm, so sensor
    noise in flat regions does not become a confident texture.
    level_weight: weight of the mean-level code (cos, sin of pi * L / 100), whose dot product
    ``cos(pi * dL / 100)`` prefers equal brightness.
    The output is L2-normalised, so dot products are cosine similarities (as LabPatchEmbedder).
    """

    def __init__(
        self, stride: int = 8, cell: int = 4, patch: int = 5, contrast_floor: float = 2.0, level_weight: float = 0.5
    ):
        if patch % 2 != 1:
            raise ValueError(f"patch must be odd, got {patch}")
        if stride < 1 or cell < 1 or stride % cell:
            raise ValueError(f"cell ({cell}) must be positive and divide stride ({stride})")
        self.stride = stride
        self.cell = cell
        self.patch = patch
        self.contrast_floor = contrast_floor
        self.level_weight = level_weight

    def encode(self, frames: Tensor) -> Tensor:
        """frames: (T, 3, H, W) RGB in [0, 1]. Returns (T, patch**2 + 2, H / stride, W / stride)."""
        lightness = rgb_to_lab(frames.float())[:, :1]  # (T, 1, H, W) in [0, 100]
        return self.encode_lightness(lightness)

    def encode_lightness(self, lightness: Tensor) -> Tensor:
        """lightness: (T, 1, H, W) Lab L in [0, 100]. Returns (T, patch**2 + 2, h, w)."""
        cells = F.avg_pool2d(lightness.float(), self.cell)
        pad = self.patch // 2
        padded = F.pad(cells, (pad, pad, pad, pad), mode="replicate")
        step = self.stride // self.cell
        size = (lightness.shape[-2] // self.stride, lightness.shape[-1] // self.stride)
        patches = F.unfold(padded, self.patch, stride=step).view(cells.shape[0], -1, *size)
        mean = patches.mean(dim=1, keepdim=True)
        centred = patches - mean
        norm = centred.square().sum(dim=1, keepdim=True).add(self.contrast_floor**2 * self.patch**2).sqrt()
        angle = math.pi * mean / 100.0
        level = self.level_weight * torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)
        return F.normalize(torch.cat([centred / norm, level], dim=1), dim=1)
