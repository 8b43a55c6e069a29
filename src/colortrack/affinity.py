"""The one affinity function of the project.

A target pixel j receives ``y_j = sum_i A_ij v_i`` with ``A_ij = softmax_i(q_j . k_i / T)`` over the
reference pixels i (Vondrick et al., Eq. 1-2). Training (colour copying), mask, keypoint and colour
propagation all call :func:`attend`; only the value tensor differs.

Reference pixels can be restricted to a square window of ``radius`` feature cells around the
target position and to the ``topk`` most similar candidates. The work is split into bands of
target rows: each band only meets the reference rows within ``radius`` of it, so memory is bounded
by ``chunk_size`` target pixels times the band's candidates, whatever the frame size or the
number of label channels.

Two optional restrictions (colourization, :mod:`colortrack.colorize`):

* ``groups``: a target pixel of group g only takes values from reference pixels of group g (object
  instances); a target whose candidates hold no pixel of its group keeps all of them.
* ``candidates``: an explicit list of reference pixels per target (dense tracking's candidate sets);
  the window is then not used, and similarity is computed only for the listed pairs.

:func:`affinity_topk` returns the sparse affinity itself (the top-k weights and where they point)
instead of applying it to values; it runs the same code as :func:`attend`.
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


def attend(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    config: AffinityConfig,
    *,
    groups: tuple[Tensor, Tensor] | None = None,
    candidates: Tensor | None = None,
) -> Tensor:
    """Copy reference values to each target pixel through the affinity.

    queries: (B, C, h, w) target embeddings.
    keys: (B, N, C, h, w) embeddings of N reference frames.
    values: (B, N, L, h, w) what the references carry (one-hot colours, soft masks, ...).
    groups: optional (query_groups (B, h, w), key_groups (B, N, h, w)) integer ids. A target of id
        g >= 0 only attends to reference pixels of id g among those it would otherwise consider
        (window, candidates); if there is none, or its id is negative, it is not restricted.
    candidates: optional (B, h*w, M) long: for each target (row-major), indices into the N*h*w
        reference pixels (``n*h*w + y*w + x``), -1 for padding. Replaces the window (``radius`` is
        ignored); ``topk`` applies among the candidates. A target without any gets zeros.
    Returns (B, L, h, w) in float32. Differentiable with respect to queries, keys and values.
    """
    _check_shapes(queries, keys, values)
    group_maps = _check_groups(groups, queries, keys)
    if candidates is not None:
        return _attend_candidates(queries, keys, values, config, candidates, group_maps)
    if config.radius is None:
        return _attend_global(queries, keys, values, config, _weighted_sum, group_maps)
    return _attend_local(queries, keys, values, config, _weighted_sum, group_maps)


def affinity_topk(
    queries: Tensor, keys: Tensor, config: AffinityConfig, *, groups: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """The sparse affinity that :func:`attend` applies: each target's ``config.topk`` weights.

    Returns weights (B, h*w, k) float32 (rows sum to 1) and indices (B, h*w, k) long into the
    N*h*w reference pixels (``n*h*w + y*w + x``), targets in row-major order, so that
    ``attend(q, k, v, config)`` equals ``sum_m weights[..., m] * v_flat[indices[..., m]]``.
    """
    if config.topk is None:
        raise ValueError("affinity_topk needs a topk")
    batch, _, height, width = queries.shape
    num_refs = keys.shape[1]
    if num_refs * height * width >= 2**24:
        raise ValueError("too many reference pixels to index exactly in float32")
    index = torch.arange(num_refs * height * width, device=queries.device, dtype=torch.float32)
    index = index.view(1, num_refs, 1, height, width).expand(batch, -1, -1, -1, -1)
    _check_shapes(queries, keys, index)
    group_maps = _check_groups(groups, queries, keys)
    run = _attend_global if config.radius is None else _attend_local
    pairs = run(queries, keys, index, config, _topk_pairs, group_maps)  # (B, 2k, h, w)
    pairs = pairs.flatten(2).transpose(1, 2)  # (B, h*w, 2k)
    weights, indices = pairs.chunk(2, dim=-1)
    return weights.contiguous(), indices.round().long().clamp_min(0)


def attend_dense(queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig, **_) -> Tensor:
    """The naive reference for :func:`attend` (same arguments, no restrictions): the full
    (h*w, N*h*w) affinity of the frame at once, masked to the window afterwards, then top-k and
    softmax. Memory grows with the square of the frame size; used by tests and benchmarks."""
    batch, _, height, width = queries.shape
    num_refs = keys.shape[1]
    q = queries.flatten(2).transpose(1, 2).float() / config.temperature  # (B, h*w, C)
    similarity = torch.bmm(q, keys.transpose(1, 2).flatten(2).float())  # (B, h*w, N*h*w)
    if config.radius is not None:
        ys, xs = (c.flatten().to(q.device) for c in torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"))
        far = ((ys[:, None] - ys[None]).abs() > config.radius) | ((xs[:, None] - xs[None]).abs() > config.radius)
        similarity.masked_fill_(far.repeat(1, num_refs), float("-inf"))
    if config.topk is not None and config.topk < similarity.shape[-1]:
        kth = similarity.topk(config.topk, dim=-1).values[..., -1:]
        similarity.masked_fill_(similarity < kth, float("-inf"))
    v = values.permute(0, 1, 3, 4, 2).flatten(1, 3).float()  # (B, N*h*w, L)
    out = torch.bmm(torch.softmax(similarity, dim=-1), v)
    return out.transpose(1, 2).reshape(batch, -1, height, width)


def _check_shapes(queries: Tensor, keys: Tensor, values: Tensor) -> None:
    batch, channels, height, width = queries.shape
    if keys.shape[0] != batch or keys.shape[2] != channels or keys.shape[-2:] != (height, width):
        raise ValueError(f"keys {tuple(keys.shape)} do not match queries {tuple(queries.shape)}")
    if values.shape[:2] != keys.shape[:2] or values.shape[-2:] != (height, width):
        raise ValueError(f"values {tuple(values.shape)} do not match keys {tuple(keys.shape)}")


def _check_groups(
    groups: tuple[Tensor, Tensor] | None, queries: Tensor, keys: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Validated (query_groups (B, h, w), key_groups (B, N, h, w)) as float32 maps, or None."""
    if groups is None:
        return None
    query_groups, key_groups = groups
    batch, _, height, width = queries.shape
    if tuple(query_groups.shape) != (batch, height, width) or tuple(key_groups.shape) != (
        batch,
        keys.shape[1],
        height,
        width,
    ):
        raise ValueError(
            f"groups {tuple(query_groups.shape)}, {tuple(key_groups.shape)} do not match "
            f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)}"
        )
    return query_groups.to(queries.device, torch.float32), key_groups.to(queries.device, torch.float32)


# Group id of reference cells outside the image: matches no target.
_NO_GROUP = -2.0


def _restrict_to_groups(similarity: Tensor, query_groups: Tensor, key_groups: Tensor) -> Tensor:
    """similarity: (B, Q, R) logits; query_groups (B, Q); key_groups (B, R).
    Blocks the references of another group for targets that have at least one reference of their
    own group among the unblocked ones; other targets are left as they are."""
    same = (key_groups[:, None, :] == query_groups[:, :, None]) & (similarity > -_BLOCKED / 2)
    restricted = (query_groups >= 0) & same.any(dim=-1)  # (B, Q)
    return similarity.masked_fill(restricted[:, :, None] & ~same, -_BLOCKED)


def _attend_global(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    config: AffinityConfig,
    reduce,
    groups: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Every target pixel against every reference pixel, in chunks of target rows."""
    batch, _, height, width = queries.shape
    k = keys.transpose(1, 2).flatten(2).float()  # (B, C, N*h*w)
    v = values.permute(0, 1, 3, 4, 2).flatten(1, 3).float()  # (B, N*h*w, L)
    rows = max(1, config.chunk_size // width)
    bands = []
    for top in range(0, height, rows):
        q = queries[:, :, top : top + rows].flatten(2).transpose(1, 2).float() / config.temperature  # (B, Q, C)
        similarity = torch.bmm(q, k)
        if groups is not None:
            similarity = _restrict_to_groups(
                similarity, groups[0][:, top : top + rows].flatten(1), groups[1].flatten(1)
            )
        bands.append(reduce(similarity, v, config.topk))
    return torch.cat(bands, dim=1).transpose(1, 2).reshape(batch, -1, height, width)


def _attend_candidates(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    config: AffinityConfig,
    candidates: Tensor,
    groups: tuple[Tensor, Tensor] | None,
) -> Tensor:
    """Each target pixel against its listed reference pixels only, in chunks of targets."""
    batch, channels, height, width = queries.shape
    if candidates.ndim != 3 or tuple(candidates.shape[:2]) != (batch, height * width):
        raise ValueError(f"candidates {tuple(candidates.shape)} do not match queries {tuple(queries.shape)}")
    candidates = candidates.to(queries.device).long()
    num_candidates = max(1, candidates.shape[-1])
    k = keys.transpose(1, 2).flatten(2).transpose(1, 2).float()  # (B, N*h*w, C)
    v = values.permute(0, 1, 3, 4, 2).flatten(1, 3).float()  # (B, N*h*w, L)
    q = queries.flatten(2).transpose(1, 2).float() / config.temperature  # (B, h*w, C)
    per_chunk = max(1, config.chunk_size * 256 // (num_candidates * max(channels, values.shape[2])))
    outputs = []
    for start in range(0, height * width, per_chunk):
        index = candidates[:, start : start + per_chunk]  # (B, Q, M)
        valid = index >= 0
        safe = index.clamp_min(0)
        picked_keys = _gather_rows(k, safe)  # (B, Q, M, C)
        similarity = torch.einsum("bqc,bqmc->bqm", q[:, start : start + per_chunk], picked_keys)
        similarity = similarity.masked_fill(~valid, -_BLOCKED)
        if groups is not None:
            query_groups = groups[0].flatten(1)[:, start : start + per_chunk]
            key_groups = torch.gather(groups[1].flatten(1), 1, safe.flatten(1)).view_as(safe)
            same = (key_groups == query_groups[..., None]) & valid
            restricted = (query_groups >= 0) & same.any(dim=-1)
            similarity = similarity.masked_fill(restricted[..., None] & ~same, -_BLOCKED)
        topk = config.topk if config.topk is not None and config.topk < similarity.shape[-1] else None
        if topk is not None:
            similarity, order = similarity.topk(topk, dim=-1)
            safe, valid = torch.gather(safe, 2, order), torch.gather(valid, 2, order)
        weights = torch.softmax(similarity, dim=-1) * valid.any(dim=-1, keepdim=True)
        outputs.append(torch.einsum("bqm,bqml->bql", weights, _gather_rows(v, safe)))
    return torch.cat(outputs, dim=1).transpose(1, 2).reshape(batch, -1, height, width)


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """table: (B, R, D); index: (B, Q, M) into R. Returns (B, Q, M, D)."""
    batch, queries, count = index.shape
    rows = torch.gather(table, 1, index.reshape(batch, -1, 1).expand(-1, -1, table.shape[-1]))
    return rows.view(batch, queries, count, -1)


def _attend_local(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    config: AffinityConfig,
    reduce,
    groups: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Each target pixel against the reference pixels within ``radius`` cells of it.

    The target grid is cut into square tiles; a tile meets only the reference cells of its
    window-sized neighbourhood, so work and memory scale with the window, not the frame.
    Reference cells outside the image get an extra key channel of -BLOCKED (the queries carry a
    1 there), so the one matrix product both scores and excludes them. Tiles are copied out of
    strided views a chunk at a time, so the working set stays small enough for the CPU caches.
    """
    batch, _, height, width = queries.shape
    num_refs = keys.shape[1]
    radius = config.radius
    tile = _tile_size(config.chunk_size, radius, height, width)
    tiles_y, tiles_x = -(-height // tile), -(-width // tile)
    pad = (tiles_y * tile - height, tiles_x * tile - width)
    span = tile + 2 * radius
    scaled = torch.cat([queries.float() / config.temperature, torch.ones_like(queries[:, :1]).float()], 1)
    q = _windows(scaled, tile, 0, pad)
    padded_keys = torch.cat(
        [_pad(keys.float(), radius, pad, 0.0), _pad(torch.zeros_like(keys[:, :, :1]).float(), radius, pad, -_BLOCKED)], 2
    )
    k = _windows(padded_keys, span, 0, (0, 0), stride=tile)
    v = _windows(values.float(), span, radius, pad, stride=tile)
    window_bias = _window_bias(tile, radius, num_refs, str(queries.device))  # (Q, N*span*span)
    if groups is not None:
        query_groups = _windows(groups[0][:, None, None], tile, 0, pad, fill=-1.0)
        key_groups = _windows(groups[1][:, :, None], span, radius, pad, stride=tile, fill=_NO_GROUP)
    per_tile = tile * tile * num_refs * span * span
    per_chunk = max(1, min(tiles_x, config.chunk_size // (tile * tile), _CACHED_SIMILARITIES // per_tile))
    rows = []
    for ty in range(tiles_y):
        parts = []
        for tx in range(0, tiles_x, per_chunk):
            chunk = (slice(None), ty, slice(tx, tx + per_chunk))
            similarity = torch.baddbmm(window_bias, _flat(q[chunk]).transpose(1, 2), _flat(k[chunk]))
            if groups is not None:
                similarity = _restrict_to_groups(
                    similarity, _flat(query_groups[chunk])[:, 0], _flat(key_groups[chunk])[:, 0]
                )
            reduced = reduce(similarity, _flat(v[chunk]).transpose(1, 2), config.topk)  # (B*n, Q, L')
            parts.append(reduced.view(batch, -1, tile, tile, reduced.shape[-1]))
        rows.append(torch.cat(parts, 1))
    out = torch.stack(rows, 1)  # (B, tiles_y, tiles_x, tile, tile, L')
    out = out.permute(0, 5, 1, 3, 2, 4).reshape(batch, -1, tiles_y * tile, tiles_x * tile)
    return out[:, :, :height, :width]


# Similarities computed at once by the local path: about 4 MB, so a chunk stays in a CPU's L2 cache
# (measured: 1.5x faster than chunks of 4096 targets, which are written to and read from memory).
_CACHED_SIMILARITIES = 2**20

# Finite, not -inf: a padding target whose whole window is blocked must get weights, not NaN.
_BLOCKED = 1e30


def _tile_size(chunk_size: int, radius: int, height: int, width: int) -> int:
    """Tiles about as wide as the radius balance wasted candidates against per-tile overhead
    (measured on CPU for radius 8 and 12: 1.5x faster than tiles of twice the radius)."""
    by_window = max(8, radius)
    by_budget = max(1, int(chunk_size**0.5))
    return max(1, min(by_window, by_budget, max(height, width)))


def _pad(maps: Tensor, margin: int, pad: tuple[int, int], fill: float) -> Tensor:
    """maps: (..., h, w) padded by ``margin`` on every side plus ``pad`` = (bottom, right)."""
    return F.pad(maps, (margin, margin + pad[1], margin, margin + pad[0]), value=fill)


def _windows(
    maps: Tensor, size: int, margin: int, pad: tuple[int, int], stride: int | None = None, fill: float = 0.0
) -> Tensor:
    """maps: (B, N, C, h, w) (or (B, C, h, w), read as N = 1), padded as :func:`_pad`.
    Returns a strided view (B, tiles_y, tiles_x, C, N, size, size) of the square windows of
    ``size`` every ``stride`` cells; :func:`_flat` copies a chunk of them out."""
    if maps.ndim == 4:
        maps = maps[:, None]
    stride = stride or size
    padded = _pad(maps, margin, pad, fill) if margin or any(pad) else maps.contiguous()
    batch, count, channels, height, width = padded.shape
    tiles_y, tiles_x = (height - size) // stride + 1, (width - size) // stride + 1
    s_b, s_n, s_c, s_y, s_x = padded.stride()
    return padded.as_strided(
        (batch, tiles_y, tiles_x, channels, count, size, size),
        (s_b, stride * s_y, stride * s_x, s_c, s_n, s_y, s_x),
    )


def _flat(windows: Tensor) -> Tensor:
    """(B, n, C, N, s, s) windows -> (B*n, C, N*s*s), the N maps' windows side by side (a copy)."""
    return windows.reshape(windows.shape[0] * windows.shape[1], windows.shape[2], -1)


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
    scores, index = _topk(similarity, topk)
    weights = torch.softmax(scores, dim=-1)  # (B, Q, k)
    num_labels = values.shape[-1]
    picked = torch.gather(
        values.unsqueeze(1).expand(-1, index.shape[1], -1, -1),
        2,
        index.unsqueeze(-1).expand(-1, -1, -1, num_labels),
    )  # (B, Q, k, L)
    return (weights.unsqueeze(-1) * picked).sum(dim=2)


def _topk_pairs(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits; values: (B, R, 1) reference indices (as floats).
    Returns (B, Q, 2k): the softmax weights of the k most similar references, then their indices."""
    scores, index = _topk(similarity, min(topk, similarity.shape[-1]))
    weights = torch.softmax(scores, dim=-1)
    picked = torch.gather(values[..., 0].unsqueeze(1).expand(-1, index.shape[1], -1), 2, index)
    return torch.cat([weights, picked], dim=-1)


def _topk(similarity: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``similarity.topk(k, dim=-1)`` in two stages, the same values (indices may differ only
    between equal values): the k groups of ``g`` consecutive candidates with the largest maxima
    hold the k largest values, since every other candidate is at most the k-th of those maxima.
    torch's top-k costs grow with the row length; a max over groups is much cheaper."""
    group = _group_size(similarity.shape[-1], k)
    if group is None:
        return similarity.topk(k, dim=-1)
    grouped = similarity.unflatten(-1, (-1, group))  # (..., G, g)
    _, best_groups = grouped.amax(dim=-1).topk(k, dim=-1, sorted=False)  # (..., k)
    picked = torch.gather(grouped, -2, best_groups[..., None].expand(*best_groups.shape, group))
    scores, position = picked.flatten(-2).topk(k, dim=-1)
    index = torch.gather(best_groups, -1, torch.div(position, group, rounding_mode="floor")) * group + position % group
    return scores, index


@functools.lru_cache(maxsize=64)
def _group_size(length: int, k: int) -> int | None:
    """A divisor g of ``length`` near sqrt(length / k) leaving at least 4k groups, or None
    when rows are too short for two stages to pay off."""
    if length < 64 * k:
        return None
    ideal = int((length / k) ** 0.5)
    for group in sorted(range(8, 4 * ideal), key=lambda g: abs(g - 1.5 * ideal)):
        if length % group == 0 and length // group >= 4 * k:
            return group
    return None
