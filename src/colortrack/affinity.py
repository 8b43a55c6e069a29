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

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    _check_shapes(queries, keys, values)
    if config.radius is None:
        return _attend_global(queries, keys, values, config)
    return _attend_local(queries, keys, values, config)


def _check_shapes(queries: Tensor, keys: Tensor, values: Tensor) -> None:
    batch, channels, height, width = queries.shape
    if keys.shape[0] != batch or keys.shape[2] != channels or keys.shape[-2:] != (height, width):
        raise ValueError(f"keys {tuple(keys.shape)} do not match queries {tuple(queries.shape)}")
    if values.shape[:2] != keys.shape[:2] or values.shape[-2:] != (height, width):
        raise ValueError(f"values {tuple(values.shape)} do not match keys {tuple(keys.shape)}")


def _attend_global(queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig) -> Tensor:
    """Every target pixel against every reference pixel, in chunks of target rows."""
    batch, _, height, width = queries.shape
    k = keys.transpose(1, 2).flatten(2).float()  # (B, C, N*h*w)
    v = values.permute(0, 1, 3, 4, 2).flatten(1, 3).float()  # (B, N*h*w, L)
    rows = max(1, config.chunk_size // width)
    bands = []
    for top in range(0, height, rows):
        q = queries[:, :, top : top + rows].flatten(2).transpose(1, 2).float() / config.temperature  # (B, Q, C)
        bands.append(_weighted_sum(torch.bmm(q, k), v, config.topk))
    return torch.cat(bands, dim=1).transpose(1, 2).reshape(batch, -1, height, width)


def _attend_local(queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig) -> Tensor:
    """Each target pixel against the reference pixels within ``radius`` cells of it.

    The target grid is cut into square tiles; a tile meets only the reference cells of its
    window-sized neighbourhood, so work and memory scale with the window, not the frame.
    Reference cells outside the image get an extra key channel of -BLOCKED (the queries carry a
    1 there), so the one matrix product both scores and excludes them.
    """
    batch, _, height, width = queries.shape
    num_refs, num_labels = keys.shape[1], values.shape[2]
    radius = config.radius
    tile = _tile_size(config.chunk_size, radius, height, width)
    tiles_y, tiles_x = -(-height // tile), -(-width // tile)
    pad = (tiles_y * tile - height, tiles_x * tile - width)
    span = tile + 2 * radius
    ones = torch.ones_like(queries[:, :1])
    q = _tiles(torch.cat([queries.float() / config.temperature, ones.float()], 1), tile, 0, pad)  # (B*T, C+1, Q)
    flat_keys = keys.flatten(0, 1).float()
    k = torch.cat(
        [_tiles(flat_keys, span, radius, pad, stride=tile), _tiles(torch.zeros_like(flat_keys[:, :1]), span, radius, pad, stride=tile, fill=-_BLOCKED)],
        dim=1,
    )
    v = _tiles(values.flatten(0, 1).float(), span, radius, pad, stride=tile)
    k = _gather_refs(k, batch, num_refs)  # (B*T, C+1, N*span*span)
    v = _gather_refs(v, batch, num_refs).transpose(1, 2)  # (B*T, N*span*span, L)
    window_bias = _window_bias(tile, radius, num_refs, str(queries.device))  # (Q, N*span*span)
    per_chunk = max(1, config.chunk_size // (tile * tile))
    outputs = []
    for start in range(0, q.shape[0], per_chunk):
        chunk = slice(start, start + per_chunk)
        similarity = torch.baddbmm(window_bias, q[chunk].transpose(1, 2), k[chunk])
        outputs.append(_weighted_sum(similarity, v[chunk], config.topk))
    out = torch.cat(outputs).view(batch, tiles_y, tiles_x, tile, tile, num_labels)
    out = out.permute(0, 5, 1, 3, 2, 4).reshape(batch, num_labels, tiles_y * tile, tiles_x * tile)
    return out[:, :, :height, :width]


# Finite, not -inf: a padding target whose whole window is blocked must get weights, not NaN.
_BLOCKED = 1e30


def _tile_size(chunk_size: int, radius: int, height: int, width: int) -> int:
    """Tiles of about twice the radius balance wasted candidates against per-tile overhead (measured)."""
    by_window = max(8, 2 * radius)
    by_budget = max(1, int(chunk_size**0.5))
    return max(1, min(by_window, by_budget, max(height, width)))


def _tiles(
    maps: Tensor, size: int, margin: int, pad: tuple[int, int], stride: int | None = None, fill: float = 0.0
) -> Tensor:
    """maps: (M, C, h, w). Returns (M * tiles, C, size * size): tiles of the map padded with
    ``fill`` by ``margin`` on every side plus ``pad`` = (bottom, right), tile-major per map."""
    count, channels = maps.shape[:2]
    padded = F.pad(maps, (margin, margin + pad[1], margin, margin + pad[0]), value=fill)
    patches = F.unfold(padded, size, stride=stride or size)  # (M, C*size*size, tiles)
    num_tiles = patches.shape[-1]
    return patches.view(count, channels, size * size, num_tiles).permute(0, 3, 1, 2).reshape(-1, channels, size * size)


def _gather_refs(tiles: Tensor, batch: int, num_refs: int) -> Tensor:
    """(B*N*T, C, S) -> (B*T, C, N*S): the N reference frames' tiles side by side."""
    channels, size = tiles.shape[-2:]
    per_ref = tiles.view(batch, num_refs, -1, channels, size)
    return per_ref.permute(0, 2, 3, 1, 4).reshape(-1, channels, num_refs * size)


@functools.lru_cache(maxsize=16)
def _window_bias(tile: int, radius: int, num_refs: int, device: str) -> Tensor:
    """(tile*tile, N*span*span): -BLOCKED where the reference cell is outside the target's window."""
    span = tile + 2 * radius
    qy, qx = (c.flatten() for c in torch.meshgrid(torch.arange(tile), torch.arange(tile), indexing="ij"))
    ry, rx = (c.flatten() - radius for c in torch.meshgrid(torch.arange(span), torch.arange(span), indexing="ij"))
    far = ((qy[:, None] - ry[None]).abs() > radius) | ((qx[:, None] - rx[None]).abs() > radius)
    bias = torch.zeros(far.shape).masked_fill_(far, -_BLOCKED)
    return bias.repeat(1, num_refs).to(device)


def _weighted_sum(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits; values: (B, R, L). Returns (B, Q, L)."""
    if topk is None or topk >= similarity.shape[-1]:
        return torch.bmm(torch.softmax(similarity, dim=-1), values)
    scores, index = similarity.topk(topk, dim=-1)
    weights = torch.softmax(scores, dim=-1)  # (B, Q, k)
    num_labels = values.shape[-1]
    picked = torch.gather(
        values.unsqueeze(1).expand(-1, index.shape[1], -1, -1),
        2,
        index.unsqueeze(-1).expand(-1, -1, -1, num_labels),
    )  # (B, Q, k, L)
    return (weights.unsqueeze(-1) * picked).sum(dim=2)
