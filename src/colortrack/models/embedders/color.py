"""Training-free embedder: the Lab colours of a small patch of cells, normalised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from colortrack.core.lab import rgb_to_lab

_LAB_SCALE = torch.tensor([100.0, 128.0, 128.0])


class LabPatchEmbedder:
    """Average Lab colour per ``stride`` x ``stride`` cell, stacked over a ``patch`` x ``patch``
    neighbourhood of cells, then L2-normalised so that dot products are cosine similarities."""

    def __init__(self, stride: int = 8, patch: int = 3):
        if patch % 2 != 1:
            raise ValueError(f"patch must be odd, got {patch}")
        self.stride = stride
        self.patch = patch

    def encode(self, frames: Tensor) -> Tensor:
        """frames: (T, 3, H, W) RGB in [0, 1]. Returns (T, 3 * patch**2, H / stride, W / stride)."""
        lab = rgb_to_lab(frames.float()) / _LAB_SCALE.to(frames.device)[:, None, None]
        cells = F.avg_pool2d(lab, self.stride)
        pad = self.patch // 2
        padded = F.pad(cells, (pad, pad, pad, pad), mode="replicate")
        patches = F.unfold(padded, self.patch).view(cells.shape[0], -1, *cells.shape[-2:])
        return F.normalize(patches, dim=1)
