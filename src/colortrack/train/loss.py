"""The self-supervised objective: predict the target frame's colours by copying the references'."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


# Lab units per unit of the regression loss: typical ab errors of a few units give losses near 1,
# the scale of the cross-entropy.
AB_UNIT = 10.0
OBJECTIVES = ("ce", "regression", "image")
# The objective of the single-image colorization baseline (Vondrick et al., Table 1): each frame's
# colours are predicted from that frame alone by a classifier head, without pointing to a reference.
IMAGE_OBJECTIVE = "image"


def regression_loss(embeddings: Tensor, ab: Tensor, affinity: AffinityConfig = TRAINING_AFFINITY) -> Tensor:
    """Smooth-L1 between the copied and the true ab of the target's cells (in units of AB_UNIT).

    embeddings: (B, T, D, h, w); ab: (B, T, 2, h, w) cell-averaged ab in Lab units.
    Frames 0 .. T-2 are the references, frame T-1 the target. Returns the scalar mean.
    """
    if embeddings.shape[:2] != ab.shape[:2] or embeddings.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"embeddings {tuple(embeddings.shape)} do not match ab {tuple(ab.shape)}")
    predicted = attend(embeddings[:, -1], embeddings[:, :-1], ab[:, :-1].float(), affinity)  # (B, 2, h, w)
    return F.smooth_l1_loss(predicted / AB_UNIT, ab[:, -1].float() / AB_UNIT)


class ColorClassifier(nn.Module):
    """The image colorization head: per-cell logits of the quantized colours from one frame's
    embedding (two 1x1 convolutions). (B, T, D, h, w) -> (B, T, num_colors, h, w)."""

    def __init__(self, embed_dim: int, num_colors: int, width: int = 64):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(embed_dim, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, num_colors, 1))

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.layers(embeddings.flatten(0, 1)).unflatten(0, embeddings.shape[:2])


class ImageColorizer(nn.Module):
    """An embedder followed by a :class:`ColorClassifier`: clip (B, T, Cin, H, W) -> logits
    (B, T, num_colors, h, w), every frame coloured on its own. Only ``embedder`` is kept for tracking."""

    def __init__(self, embedder: nn.Module, embed_dim: int, num_colors: int):
        super().__init__()
        self.embedder = embedder
        self.head = ColorClassifier(embed_dim, num_colors)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embedder(x))


def image_colorization_loss(logits: Tensor, color_ids: Tensor) -> Tensor:
    """Per-cell cross-entropy of every frame's predicted colours. logits: (B, T, K, h, w);
    color_ids: (B, T, h, w) long in [0, K). Returns the scalar mean over all B * T * h * w cells."""
    if logits.shape[:2] != color_ids.shape[:2] or logits.shape[-2:] != color_ids.shape[-2:]:
        raise ValueError(f"logits {tuple(logits.shape)} do not match colours {tuple(color_ids.shape)}")
    return F.cross_entropy(logits.flatten(0, 1), color_ids.flatten(0, 1))


def cycle_loss(embeddings: Tensor, affinity: AffinityConfig = TRAINING_AFFINITY) -> Tensor:
    """A random walk around the clip's palindrome must come back where it started (a cycle-
    consistency term in the manner of Jabri et al.'s contrastive random walk): each target cell's
    one-hot label walks from the target through the references back to the first one, then forward
    to the target again, each step through the same affinity as the colours.

    embeddings: (B, T, D, h, w). Returns the scalar mean over the B * h * w target cells of
    -log(p[the cell's own label] + 1e-8)."""
    batch, frames, _, height, width = embeddings.shape
    cells = height * width
    labels = torch.eye(cells, device=embeddings.device).view(1, cells, height, width).expand(batch, -1, -1, -1)
    path = [*range(frames - 1, -1, -1), *range(1, frames)]  # T-1, ..., 0, ..., T-1
    for source, target in zip(path, path[1:]):
        labels = attend(embeddings[:, target], embeddings[:, source : source + 1], labels[:, None], affinity)
    returned = labels.flatten(2).diagonal(dim1=1, dim2=2)  # (B, h*w)
    return -torch.log(returned + 1e-8).mean()


def objective_loss(
    objective: str, batch: dict[str, Tensor], num_colors: int, affinity: AffinityConfig, cycle_weight: float = 0.0
):
    """The loss function of ``objective`` on one batch's targets: the network's output -> scalar.
    The output is the embeddings (B, T, D, h, w), or for ``image`` the logits of an :class:`ImageColorizer`.
    cycle_weight: adds that times :func:`cycle_loss` (not for ``image``)."""
    if objective == IMAGE_OBJECTIVE:
        return partial(image_colorization_loss, color_ids=batch["color_ids"])
    if objective == "ce":
        main = partial(colorization_loss, color_ids=batch["color_ids"], num_colors=num_colors, affinity=affinity)
    elif objective == "regression":
        main = partial(regression_loss, ab=batch["ab"], affinity=affinity)
    else:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if cycle_weight <= 0:
        return main
    return lambda embeddings: main(embeddings) + cycle_weight * cycle_loss(embeddings, affinity)

