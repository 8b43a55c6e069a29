"""The one affinity function of the project.

A target pixel j receives ``y_j = sum_i A_ij v_i`` with ``A_ij = softmax_i(q_j . k_i / T)`` over the
reference pixels i (Vondrick et al., Eq. 1-2). Training (colour copying), mask, keypoint and colour
propagation all call :func:`attend`; only the value tensor differs.

Reference pixels can be restricted to a square window of ``radius`` feature cells around the
target position and to the ``topk`` most similar candidates. The work is split into bands of
target rows: each band only meets the reference rows within ``radius`` of it, so memory is bounded
by ``chunk_size`` target pixels times the band's candidates, whatever the frame size or the
number of label channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AffinityConfig:
    """How targets attend to references.

    temperature: softmax temperature T.
    topk: keep only the k most similar reference pixels per target (None: all).
    radius: restrict references to |dy| <= radius and |dx| <= radius feature cells (None: global).
    chunk_size: at most this many target pixels are processed at once.
    """

    temperature: float = 0.05
    topk: int | None = 10
    radius: int | None = 12
    chunk_size: int = 4096


def attend(queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig) -> Tensor:
    """Copy reference values to each target pixel through the affinity.

    queries: (B, C, h, w) target embeddings.
    keys: (B, N, C, h, w) embeddings of N reference frames.
    values: (B, N, L, h, w) what the references carry (one-hot colours, soft masks, ...).
    Returns (B, L, h, w) in float32. Differentiable with respect to queries, keys and values.
    """
    batch, channels, height, width = queries.shape
    if keys.shape[0] != batch or keys.shape[2] != channels or keys.shape[-2:] != (height, width):
        raise ValueError(f"keys {tuple(keys.shape)} do not match queries {tuple(queries.shape)}")
    if values.shape[:2] != keys.shape[:2] or values.shape[-2:] != (height, width):
        raise ValueError(f"values {tuple(values.shape)} do not match keys {tuple(keys.shape)}")
    rows_per_band = max(1, config.chunk_size // width)
    bands = [
        _attend_band(queries, keys, values, config, top, min(top + rows_per_band, height))
        for top in range(0, height, rows_per_band)
    ]
    return torch.cat(bands, dim=2)


def _attend_band(
    queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig, top: int, bottom: int
) -> Tensor:
    """Targets in rows [top, bottom) against the reference rows that can reach them."""
    batch, _, height, width = queries.shape
    num_labels = values.shape[2]
    ref_top, ref_bottom = _reference_rows(top, bottom, height, config.radius)
    q = queries[:, :, top:bottom].flatten(2).transpose(1, 2).float()  # (B, Q, C)
    k = keys[:, :, :, ref_top:ref_bottom].permute(0, 2, 1, 3, 4).flatten(2).float()  # (B, C, R)
    v = values[:, :, :, ref_top:ref_bottom].permute(0, 1, 3, 4, 2).flatten(1, 3).float()  # (B, R, L)
    similarity = torch.bmm(q, k) / config.temperature  # (B, Q, R)
    if config.radius is not None:
        outside = _outside_window(top, bottom, ref_top, ref_bottom, width, keys.shape[1], config.radius)
        similarity = similarity.masked_fill(outside.to(similarity.device), float("-inf"))
    if config.topk is not None and config.topk < similarity.shape[-1]:
        scores, index = similarity.topk(config.topk, dim=-1)
        weights = torch.softmax(scores, dim=-1)  # (B, Q, k)
        picked = torch.gather(
            v.unsqueeze(1).expand(-1, index.shape[1], -1, -1),
            2,
            index.unsqueeze(-1).expand(-1, -1, -1, num_labels),
        )  # (B, Q, k, L)
        out = (weights.unsqueeze(-1) * picked).sum(dim=2)
    else:
        out = torch.bmm(torch.softmax(similarity, dim=-1), v)  # (B, Q, L)
    return out.transpose(1, 2).reshape(batch, num_labels, bottom - top, width)


def _reference_rows(top: int, bottom: int, height: int, radius: int | None) -> tuple[int, int]:
    if radius is None:
        return 0, height
    return max(0, top - radius), min(height, bottom - 1 + radius + 1)


def _outside_window(
    top: int, bottom: int, ref_top: int, ref_bottom: int, width: int, num_refs: int, radius: int
) -> Tensor:
    """(Q, R) bool: reference cell further than ``radius`` from the target cell in y or x."""
    qy, qx = _grid(top, bottom, width)
    ry, rx = _grid(ref_top, ref_bottom, width)
    far = ((qy[:, None] - ry[None, :]).abs() > radius) | ((qx[:, None] - rx[None, :]).abs() > radius)
    return far.repeat(1, num_refs)


def _grid(top: int, bottom: int, width: int) -> tuple[Tensor, Tensor]:
    ys, xs = torch.meshgrid(torch.arange(top, bottom), torch.arange(width), indexing="ij")
    return ys.flatten(), xs.flatten()
