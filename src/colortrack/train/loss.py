"""The self-supervised objective: predict the target frame's colours by copying the references'."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from colortrack.core.affinity import AffinityConfig, attend

# Vondrick et al.: a plain softmax of dot products over every reference pixel.
TRAINING_AFFINITY = AffinityConfig(temperature=1.0, topk=None, radius=None)


def colorization_loss(
    embeddings: Tensor, color_ids: Tensor, num_colors: int, affinity: AffinityConfig = TRAINING_AFFINITY
) -> Tensor:
    """Cross-entropy of the copied colour distribution against the target's quantized colours.

    embeddings: (B, T, D, h, w); color_ids: (B, T, h, w) long in [0, num_colors).
    Frames 0 .. T-2 are the references, frame T-1 the target (T = 4 in the paper).
    Returns the scalar mean over the B * h * w target cells of -log(p[true colour] + 1e-8).
    """
    if embeddings.shape[:2] != color_ids.shape[:2] or embeddings.shape[-2:] != color_ids.shape[-2:]:
        raise ValueError(f"embeddings {tuple(embeddings.shape)} do not match colours {tuple(color_ids.shape)}")
    references = F.one_hot(color_ids[:, :-1], num_colors).permute(0, 1, 4, 2, 3).float()  # (B, T-1, K, h, w)
    predicted = attend(embeddings[:, -1], embeddings[:, :-1], references, affinity)  # (B, K, h, w)
    truth = predicted.gather(1, color_ids[:, -1:]).squeeze(1)  # (B, h, w)
    return -torch.log(truth + 1e-8).mean()
