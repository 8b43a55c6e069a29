"""The one affinity function of the project.

A target pixel j receives ``y_j = sum_i A_ij v_i`` with ``A_ij = softmax_i(q_j . k_i / T)`` over the
reference pixels i (Vondrick et al., Eq. 1-2). Training (colour copying), mask, keypoint and colour
propagation all call :func:`attend`; only the value tensor differs.

Reference pixels can be restricted to a square window of ``radius`` feature cells around the
target position and to the ``topk`` most similar candidates. With a window, the work goes a tile of
targets at a time, each meeting only the reference cells of its window (never a dense affinity
masked afterwards), so memory is bounded by a tile's window whatever the frame size or the number
of label channels; without one, in chunks of ``chunk_size`` targets.

Two optional restrictions (colourization, :mod:`colortrack.tasks.colorize`):

* ``groups``: a target pixel of group g only takes values from reference pixels of group g (object
  instances); a target whose candidates hold no pixel of its group keeps all of them.
* ``candidates``: an explicit list of reference pixels per target (dense tracking's candidate sets);
  the window is then not used, and similarity is computed only for the listed pairs.

:func:`affinity_topk` returns the sparse affinity itself (the top-k weights and where they point)
instead of applying it to values; it runs the same code as :func:`attend`.

Queries and keys given in bfloat16 (a bfloat16 encoder's embeddings, :func:`compact_embedding`)
are scored in bfloat16 on CPU where that is proven to select the float32 top-k, whose weights are
then computed in float32 (:class:`_CertifiedTiles`): the same output as float32 inputs.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AffinityConfig:
    """How targets attend to references.

    temperature: softmax temperature T.
    topk: keep only the k most similar reference pixels per target (None: all).
    radius: restrict references to |dy| <= radius and |dx| <= radius feature cells (None: global).
    chunk_size: without a radius (and with candidates), at most this many target pixels are
        processed at once; with a radius the work goes one tile at a time (:func:`_tile_shape`).
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
    anchors: int = 0,
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
    anchors: the first ``anchors`` reference frames (a tracker's annotated frames) are searched
        over the whole frame, the others within ``radius``; one top-k and softmax over both, so an
        object is found again on its annotated frame however far it has moved since. Groups then
        restrict each of the two parts on its own.
    Returns (B, L, h, w) in float32. Differentiable with respect to queries, keys and values.
    """
    _check_shapes(queries, keys, values)
    group_maps = _check_groups(groups, queries, keys)
    if candidates is not None:
        return _attend_candidates(queries, keys, values, config, candidates, group_maps)
    if config.radius is None or anchors >= keys.shape[1]:
        return _attend_global(queries, keys, values, config, _WEIGHTED_SUM, group_maps)
    if anchors > 0:
        return _attend_anchored(queries, keys, values, config, group_maps, anchors)
    return _attend_local(queries, keys, values, config, _WEIGHTED_SUM, group_maps)


def _attend_anchored(
    queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig, groups: tuple[Tensor, Tensor] | None, anchors: int
) -> Tensor:
    """:func:`attend` with the first ``anchors`` of the N reference frames searched globally and
    the rest within the window: each part gives its own best candidates (top-k scores and values,
    or without a top-k its log-normaliser and weighted sum), merged as one softmax over both."""
    parts = []
    reduce = _SCORED_PICKS if config.topk is not None else _NORMALISED_SUM
    for frames, run in ((slice(None, anchors), _attend_global), (slice(anchors, None), _attend_local)):
        part_groups = None if groups is None else (groups[0], groups[1][:, frames])
        parts.append(run(queries, keys[:, frames], values[:, frames], config, reduce, part_groups))
    num_labels = values.shape[2]
    if config.topk is None:
        (norm_a, sum_a), (norm_b, sum_b) = (part.split([1, num_labels], dim=1) for part in parts)
        norm = torch.logaddexp(norm_a, norm_b)
        return (norm_a - norm).exp() * sum_a + (norm_b - norm).exp() * sum_b
    scores, picked = [], []
    for part in parts:
        count = part.shape[1] // (num_labels + 1)
        scores.append(part[:, :count])
        picked.append(part[:, count:].unflatten(1, (count, num_labels)))
    scores, picked = torch.cat(scores, dim=1), torch.cat(picked, dim=1)  # (B, K, h, w), (B, K, L, h, w)
    best, index = scores.topk(min(config.topk, scores.shape[1]), dim=1)
    chosen = torch.gather(picked, 1, index[:, :, None].expand(-1, -1, num_labels, -1, -1))
    return (torch.softmax(best, dim=1)[:, :, None] * chosen).sum(dim=1)


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
    pairs = run(queries, keys, index, config, _TOPK_PAIRS, group_maps)  # (B, 2k, h, w)
    pairs = pairs.flatten(2).transpose(1, 2)  # (B, h*w, 2k)
    weights, indices = pairs.chunk(2, dim=-1)
    return weights.contiguous(), indices.round().long().clamp_min(0)


def attend_dense(
    queries: Tensor, keys: Tensor, values: Tensor, config: AffinityConfig, anchors: int = 0, **_
) -> Tensor:
    """The naive reference for :func:`attend` (same arguments, no groups or candidates): the full
    (h*w, N*h*w) affinity of the frame at once, masked to the window afterwards (except the first
    ``anchors`` frames), then top-k and softmax. Memory grows with the square of the frame size;
    used by tests and benchmarks."""
    batch, _, height, width = queries.shape
    num_refs = keys.shape[1]
    q = queries.flatten(2).transpose(1, 2).float() / config.temperature  # (B, h*w, C)
    similarity = torch.bmm(q, keys.transpose(1, 2).flatten(2).float())  # (B, h*w, N*h*w)
    if config.radius is not None:
        ys, xs = (c.flatten().to(q.device) for c in torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"))
        far = ((ys[:, None] - ys[None]).abs() > config.radius) | ((xs[:, None] - xs[None]).abs() > config.radius)
        far = far.repeat(1, num_refs)
        far[:, : anchors * height * width] = False
        similarity.masked_fill_(far, float("-inf"))
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
    reduce: _Reduction,
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
        bands.append(reduce.whole(similarity, v, config.topk))
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
        similarity = (picked_keys * q[:, start : start + per_chunk, None]).sum(-1)  # a bmm of (1, C) rows is slower
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
        outputs.append((weights[..., None] * _gather_rows(v, safe)).sum(2))
    return torch.cat(outputs, dim=1).transpose(1, 2).reshape(batch, -1, height, width)


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """table: (B, R, D); index: (B, Q, M) into R. Returns (B, Q, M, D). Whole rows are copied:
    ``index_select`` is several times faster on CPU than an element-wise ``gather``."""
    batch, rows, depth = table.shape
    offsets = torch.arange(0, batch * rows, rows, device=index.device).view(batch, 1, 1)
    picked = table.reshape(batch * rows, depth).index_select(0, (index + offsets).flatten())
    return picked.view(*index.shape, depth)


def _attend_local(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    config: AffinityConfig,
    reduce: _Reduction,
    groups: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Each target pixel against the reference pixels within ``radius`` cells of it.

    The target grid is cut into tiles of ``th x tw`` cells. Every map is laid out cells-last and
    padded once, (B, H', W', N, C) with the N frames side by side in each cell, so that a window
    row of ``tw + 2r`` cells in all N frames is one contiguous block of the keys: the 2r + 1
    window rows of a target row are a strided view, scored against the row's targets by one
    batched matrix product without copying any key (:class:`_ExactTiles`). The top-k then reads
    each target's own 2r + 1 columns of those rows through a view (:func:`_within_radius`); with
    groups or without a top-k, the columns beyond ``radius`` are blocked by a bias instead.
    Reference cells outside the image get an extra key channel of -BLOCKED (the queries carry a
    1 there). Queries and keys given in bfloat16 are scored in bfloat16 with the same top-k
    (:class:`_CertifiedTiles`). One tile at a time keeps the working set within a CPU's caches;
    tiles run side by side in threads (:func:`_side_by_side`).
    """
    batch, _, height, width = queries.shape
    tile = _tile_shape(config.radius, keys.shape[1], height, width)
    tiles_y, tiles_x = -(-height // tile[0]), -(-width // tile[1])
    pad = (tiles_y * tile[0] - height, tiles_x * tile[1] - width)
    values = _cells_last(values.float(), config.radius, pad)  # (B, H', W', N, L)
    differentiable = torch.is_grad_enabled() and (queries.requires_grad or keys.requires_grad)
    tiles = exact = _ExactTiles(queries, keys, values, config, tile, pad, reduce, groups)
    if exact.grouped and not differentiable and _bf16_inputs(queries, keys) and _certifiable(config, keys.shape[1]):
        tiles = _CertifiedTiles(exact)
    else:
        exact.layout()  # built here: in the caller's threads and under its autograd

    def run(part: list[tuple[int, int, int]]) -> list[Tensor]:
        buffer = None if differentiable else tiles.buffer()
        return [tiles.tile(*item, buffer) for item in part]

    work = list(itertools.product(range(batch), range(tiles_y), range(tiles_x)))
    results = run(work) if differentiable or queries.device.type != "cpu" else _side_by_side(run, work)
    out = torch.stack(results).view(batch, tiles_y, tiles_x, tile[0], tile[1], -1)
    out = out.permute(0, 5, 1, 3, 2, 4).reshape(batch, -1, tiles_y * tile[0], tiles_x * tile[1])
    return out[:, :, :height, :width]


class _ExactTiles:
    """A tile's float32 similarities (:func:`_tile_similarity`), its top-k and reduction. The
    cells-last maps are built on first use (:meth:`layout`), once."""

    def __init__(
        self,
        queries: Tensor,
        keys: Tensor,
        values: Tensor,
        config: AffinityConfig,
        tile: tuple[int, int],
        pad: tuple[int, int],
        reduce: _Reduction,
        groups: tuple[Tensor, Tensor] | None,
    ):
        """queries (B, C, h, w), keys (B, N, C, h, w), values (B, H', W', N, L) cells-last and padded."""
        self.inputs = (queries, keys, groups)
        self.values, self.config, self.tile_shape, self.pad, self.reduce = values, config, tile, pad, reduce
        self.num_refs = keys.shape[1]
        window = 2 * config.radius + 1
        self.grouped = groups is None and config.topk is not None and window * self.num_refs >= 4 * config.topk
        self.row_len = (tile[1] + 2 * config.radius) * self.num_refs
        self._layout: dict | None = None
        self._lock = threading.Lock()

    def layout(self) -> dict:
        """The cells-last query, key and group maps and the column bias."""
        with self._lock:
            if self._layout is None:
                self._layout = self._build()
            return self._layout

    def _build(self) -> dict:
        queries, keys, groups = self.inputs
        radius, pad = self.config.radius, self.pad
        scaled = torch.cat([queries.float() / self.config.temperature, torch.ones_like(queries[:, :1]).float()], 1)
        layout = {
            "queries": _cells_last(scaled[:, None], 0, pad)[:, :, :, 0],  # (B, h', w', C+1)
            "keys": _padded_keys(keys, radius, pad),  # (B, H', W', N, C+1)
            "bias": _column_bias(self.tile_shape[1], radius, self.num_refs, str(queries.device)),  # (tw, row_len)
        }
        if groups is not None:
            layout["query_groups"] = _cells_last(groups[0][:, None, None], 0, pad, fill=-1.0)[..., 0, 0]  # (B, h', w')
            layout["key_groups"] = _cells_last(groups[1][:, :, None], radius, pad, fill=_NO_GROUP)  # (B, H', W', N, 1)
        return layout

    def buffer(self) -> Tensor:
        tile_h, tile_w = self.tile_shape
        shape = (tile_h, 2 * self.config.radius + 1, tile_w, self.row_len)
        return _scratch(("similarities",), shape, torch.float32, self.values.device, zeroed=False)

    def tile(self, b: int, ty: int, tx: int, buffer: Tensor | None) -> Tensor:
        """The reduced tile (th, tw, L') of batch item b at tile row ty, tile column tx."""
        layout, config, radius = self.layout(), self.config, self.config.radius
        (tile_h, tile_w), num_refs = self.tile_shape, self.num_refs
        corner = (ty * tile_h, tx * tile_w)
        similarity = _tile_similarity(layout["queries"][b], layout["keys"][b], corner, radius, self.tile_shape, buffer)
        tile_values = _window_rows(self.values[b], corner, radius, self.tile_shape)  # (th, window_len, L)
        if self.grouped:  # the window rows are the two-stage top-k's members, its groups their columns
            scores, index = _grouped_topk(_within_radius(similarity, num_refs), config.topk)
            return self.reduce.picked(scores, _window_index(index, radius, num_refs, self.row_len), tile_values)
        similarity = (similarity + layout["bias"]).transpose(1, 2).reshape(tile_h, tile_w, -1)  # (th, tw, window_len)
        if "query_groups" in layout:
            similarity = _restrict_to_groups(
                similarity,
                layout["query_groups"][b, corner[0] : corner[0] + tile_h, corner[1] : corner[1] + tile_w],
                _window_rows(layout["key_groups"][b], corner, radius, self.tile_shape)[..., 0],
            )
        return self.reduce.whole(similarity, tile_values, config.topk)  # (th, tw, L')


def _bf16_inputs(queries: Tensor, keys: Tensor) -> bool:
    return queries.dtype == keys.dtype == torch.bfloat16 and queries.device.type == "cpu"


def _certifiable(config: AffinityConfig, num_refs: int) -> bool:
    """Whether a window has enough columns (groups) for :func:`_candidates` to keep topk + extra."""
    return (2 * config.radius + 1) * num_refs > config.topk + _RESCORED_EXTRA


def compact_embedding(embedding: Tensor) -> Tensor:
    """``embedding`` in the form :func:`attend` scores fastest, with the same values: bfloat16 on
    a CPU that multiplies bfloat16 natively when every value is a bfloat16 number (the output of a
    bfloat16 encoder), else unchanged. Keys and queries in bfloat16 are scored by
    :class:`_CertifiedTiles`, which selects the same top-k as in float32."""
    if embedding.device.type != "cpu" or embedding.dtype != torch.float32 or not _native_bf16():
        return embedding
    compact = embedding.bfloat16()
    return compact if torch.equal(compact.float(), embedding) else embedding


@functools.cache
def _native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); torch has no public test."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


# bfloat16 keeps 8 significant bits: rounding to nearest moves a value by at most 2**-8 of itself
# (1.5 x that bounds it relative to the rounded value, with room to spare).
_BF16_ROUNDING = 1.5 * 2.0**-8
# float32 sums of up to 2**7 products move by at most 2**-17 of the sum of their magnitudes.
_SUM_ROUNDING = 2.0**-16
# Candidates scored exactly per target beyond the top-k.
_RESCORED_EXTRA = 6
# A tile where more of the targets than this lack the proof is scored in float32 as a whole.
_MOST_UNPROVEN = 1 / 8


class _CertifiedTiles:
    """The top-k of a tile from bfloat16 similarities, proven to be the float32 top-k, then scored
    in float32.

    With queries and keys that are bfloat16 numbers, a bfloat16 matrix product (float32 sums,
    2-5x faster than float32 on CPUs with bfloat16 instructions) is exact but for rounding its
    outputs to bfloat16. Each target's query carries minus its similarity to its own cell in the
    last reference frame (``offset``, usually close to its best) against a key channel of ones, so
    the products are ``similarity - offset``, and the rounding is small where the best candidates
    lie. The two-stage top-k (:func:`_candidates`) keeps the k + extra best of those and a bound
    on every candidate left out; when the k-th kept one beats that bound by more than both
    roundings, the float32 top-k is among the kept ones, which are then scored in float32
    (the same products as :class:`_ExactTiles`) and reduced to the top-k. A tile where any target
    lacks that proof is done by ``fallback`` instead. The tile's queries meet all its key rows in
    one product (th * tw queries, (th + 2r) rows: 2x the useful products, in a shape that runs
    near the CPU's peak); the window of target (t, x) is a view of it.
    """

    def __init__(self, fallback: _ExactTiles):
        """The work of ``fallback`` (its queries and keys in bfloat16), which scores in float32 the
        tiles that lack the proof."""
        (queries, keys, _), pad = fallback.inputs, fallback.pad
        self.values, self.config, self.tile_shape, self.reduce = fallback.values, fallback.config, fallback.tile_shape, fallback.reduce
        self.fallback, config = fallback, fallback.config
        self.size = queries.shape[-2:]
        self.num_refs = keys.shape[1]
        exact = queries.float()
        offset = (exact * keys[:, -1]).sum(1).bfloat16()  # (B, h, w)
        augmented = torch.cat([queries, torch.ones_like(queries[:, :1]), -offset[:, None]], 1)
        self.queries = _cells_last(augmented[:, None], 0, pad)[:, :, :, 0]  # (B, h', w', C+2) bfloat16
        self.keys = _padded_keys(keys, config.radius, pad, torch.bfloat16, ones=True)  # (B, H', W', N, C+2)
        self.key_rows = _padded_keys(keys, config.radius, pad, torch.bfloat16, ones=True, rows_first=True).flatten(3)  # (B, H', C+2, W' * N)
        largest_key = torch.maximum(keys.amax(), -keys.amin()).float()  # no temporary of the keys' size
        magnitude = exact.abs().sum(1) * largest_key  # bounds the sum of the products' magnitudes
        exact = torch.cat([exact / config.temperature, torch.ones_like(offset[:, None]).float()], 1)
        self.exact_queries = _cells_last(F.pad(exact, (0, 0, 0, 0, 0, 1))[:, None], 0, pad)[:, :, :, 0]  # (B, h', w', C+2)
        self.slack = _SUM_ROUNDING * (magnitude + offset.float().abs())  # (B, h, w)

    def buffer(self) -> Tensor:
        tile_h, tile_w = self.tile_shape
        shape = (tile_h + 2 * self.config.radius, tile_h * tile_w, (tile_w + 2 * self.config.radius) * self.num_refs)
        return _scratch(("similarities",), shape, torch.bfloat16, self.keys.device, zeroed=False)

    def tile(self, b: int, ty: int, tx: int, buffer: Tensor | None) -> Tensor:
        config, radius, num_refs = self.config, self.config.radius, self.num_refs
        corner = (ty * self.tile_shape[0], tx * self.tile_shape[1])
        row_len = (self.tile_shape[1] + 2 * radius) * num_refs
        windows = self._windows(b, corner, buffer)
        kept, index, left_out = _candidates(windows, config.topk + _RESCORED_EXTRA)
        unproven = self._unproven(kept[..., config.topk - 1], left_out, b, corner)
        if len(unproven) > _MOST_UNPROVEN * unproven.new_tensor(self.tile_shape).prod():
            return self.fallback.tile(b, ty, tx, None)
        scores, index = self._rescored(index, b, corner)
        for t, x in unproven.tolist():
            scores[t, x], index[t, x] = self._whole_window(b, (corner[0] + t, corner[1] + x))
        tile_values = _window_rows(self.values[b], corner, radius, self.tile_shape)  # (th, window_len, L)
        return self.reduce.picked(scores, _window_index(index, radius, num_refs, row_len), tile_values)

    def _windows(self, b: int, corner: tuple[int, int], buffer: Tensor | None) -> Tensor:
        """The tile's similarities minus the offsets in bfloat16 (th, tw, 2r+1, (2r+1) * N): target
        (t, x), window row, window column and frame; a view of one product of the tile's queries with
        all its key rows."""
        (tile_h, tile_w), radius, num_refs = self.tile_shape, self.config.radius, self.num_refs
        window, row_len = 2 * radius + 1, (tile_w + 2 * radius) * num_refs
        first_column = corner[1] * num_refs
        key_rows = self.key_rows[b, corner[0] : corner[0] + tile_h + 2 * radius, :, first_column : first_column + row_len]
        queries = self.queries[b, corner[0] : corner[0] + tile_h, corner[1] : corner[1] + tile_w].flatten(0, 1)
        products = torch.bmm(queries.expand(key_rows.shape[0], -1, -1), key_rows, out=buffer)  # (th+2r, th*tw, row_len)
        plane = products.stride(0)
        return products.as_strided(
            (tile_h, tile_w, window, window * num_refs), (plane + tile_w * row_len, row_len + num_refs, plane, 1)
        )

    def _unproven(self, kth: Tensor, left_out: Tensor, b: int, corner: tuple[int, int]) -> Tensor:
        """The targets (n, 2) of the tile inside the image whose k-th kept candidate (th, tw) does
        not beat every candidate left out (at most ``left_out``) by more than their roundings."""
        rows, columns = (min(tile, size - start) for tile, size, start in zip(self.tile_shape, self.size, corner))
        slack = self.slack[b, corner[0] : corner[0] + rows, corner[1] : corner[1] + columns]
        kth, left_out = kth[:rows, :columns], left_out[:rows, :columns]
        worst_kth = kth - _BF16_ROUNDING * kth.abs() - slack
        best_left_out = left_out + _BF16_ROUNDING * left_out.abs() + slack
        return (best_left_out >= worst_kth).nonzero()

    def _whole_window(self, b: int, target: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The float32 top-k of one target over its whole window: scores (k,) and indices."""
        window = 2 * self.config.radius + 1
        keys = self.keys[b, target[0] : target[0] + window, target[1] : target[1] + window]  # (2r+1, 2r+1, N, C+2)
        similarity = keys.reshape(-1, keys.shape[-1]).float() @ self.exact_queries[b, target[0], target[1]]
        return similarity.topk(self.config.topk)

    def _rescored(self, index: Tensor, b: int, corner: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """index: (th, tw, m) kept candidates of each target, into its (2r+1) x (2r+1) * N window.
        Returns the top-k of their float32 similarities (th, tw, k), sorted, and their indices."""
        (tile_h, tile_w), num_refs = self.tile_shape, self.num_refs
        keys = self.keys[b]
        width = (2 * self.config.radius + 1) * num_refs
        rows = index.div(width, rounding_mode="floor") + torch.arange(corner[0], corner[0] + tile_h).view(-1, 1, 1)
        cells = rows * keys.shape[1] + torch.arange(corner[1], corner[1] + tile_w).view(1, -1, 1)
        flat = cells * num_refs + index % width  # (th, tw, m): (cell, frame) rows of the keys
        picked = keys.view(-1, keys.shape[-1]).index_select(0, flat.flatten()).float()
        queries = self.exact_queries[b, corner[0] : corner[0] + tile_h, corner[1] : corner[1] + tile_w]
        similarity = torch.bmm(picked.view(tile_h * tile_w, -1, keys.shape[-1]), queries.reshape(-1, keys.shape[-1], 1))
        scores, order = similarity.view(tile_h, tile_w, -1).topk(self.config.topk, dim=-1)
        return scores, torch.gather(index, -1, order)


def _candidates(windows: Tensor, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``count`` best of ``windows`` (..., M, G) (any strides, any dtype): the ``count``
    groups (columns) with the largest maxima (:func:`_best_groups`), then, when M splits into
    blocks of rows, the ``count`` blocks of those with the largest maxima, then the best of their
    members. Returns the values (..., count) float32, sorted, their indices into M * G, and a
    bound (...) on every candidate left out: the largest of the ``count``-th group maximum, the
    ``count``-th block maximum and the (count+1)-th value."""
    num_rows, num_groups = windows.shape[-2:]
    members, columns, left_out = _best_groups(windows, count)  # (..., M, count), (..., count)
    rows = torch.arange(num_rows, device=windows.device).view(-1, 1).expand(members.shape[-2:])
    block = _row_block(num_rows)
    if block is not None:  # (..., M / b, b, count) -> the blocks as groups of b members: (..., b, M / b * count)
        blocks = members.unflatten(-2, (-1, block)).transpose(-3, -2).flatten(-2)
        members, picked, block_max = _best_groups(blocks, count)  # (..., b, count)
        left_out = torch.maximum(left_out, block_max)
        slot, first_row = picked % count, picked.div(count, rounding_mode="floor") * block
        columns = torch.gather(columns, -1, slot)
        rows = first_row.unsqueeze(-2) + torch.arange(block, device=windows.device).view(-1, 1)  # (..., b, count)
    scores, position = members.flatten(-2).float().topk(count + 1, dim=-1)
    row = torch.gather(rows.expand(members.shape).flatten(-2), -1, position)
    index = row * num_groups + torch.gather(columns, -1, position % count)
    return scores[..., :count], index[..., :count], torch.maximum(left_out, scores[..., count])


def _best_groups(candidates: Tensor, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """candidates: (..., M, G), M members of G groups. Returns the members of the ``count`` groups
    with the largest maxima (..., M, count), those groups (..., count), and the smallest of their
    maxima (...) float32, which no member of another group exceeds."""
    group_max, best = candidates.amax(dim=-2).float().topk(count, dim=-1, sorted=False)
    members = torch.gather(candidates, -1, best.unsqueeze(-2).expand(*candidates.shape[:-1], count))
    return members, best, group_max.amin(dim=-1)


@functools.lru_cache(maxsize=16)
def _row_block(rows: int) -> int | None:
    """A divisor of ``rows`` near its square root (blocks of rows for :func:`_candidates`), or None."""
    divisors = [size for size in range(3, rows) if rows % size == 0]
    return min(divisors, key=lambda size: abs(size * size - rows), default=None)


def _side_by_side(run: Callable[[list], list], work: list) -> list:
    """``run(work)``, with ``work`` cut into contiguous parts run at the same time by as many
    threads as the caller has intra-op threads, each thread with one intra-op thread: a tile's
    operations are too small to share well between threads (and idle intra-op threads spin),
    whole tiles are not. A few parts per thread, so that a thread slowed by other work (decoding,
    writing) leaves its remaining parts to the others. Results in the order of ``work``."""
    workers = min(torch.get_num_threads(), len(work))
    if workers < 2:
        return run(work)
    size = -(-len(work) // (_PARTS_PER_THREAD * workers))
    pool = _tile_pool(workers)
    futures = [pool.submit(run, work[start : start + size]) for start in range(0, len(work), size)]
    return [result for future in futures for result in future.result()]


_PARTS_PER_THREAD = 4


@functools.lru_cache(maxsize=None)
def _tile_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads with one intra-op thread each, started at once. torch takes the count
    of a thread that starts later from the last one set, so the caller's count is set again."""
    callers_threads = torch.get_num_threads()
    started = threading.Barrier(workers + 1)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="affinity-tiles", initializer=torch.set_num_threads, initargs=(1,))
    for _ in range(workers):
        pool.submit(started.wait)
    started.wait()
    torch.set_num_threads(callers_threads)
    return pool


os.register_at_fork(after_in_child=_tile_pool.cache_clear)  # a forked child has none of the threads


# Similarities of one tile: at most 2**20 floats (4 MB), a CPU core's L2 cache.
_TILE_SIMILARITIES = 2**20

_MIN_TILE = 12

# Finite, not -inf: a padding target whose whole window is blocked must get weights, not NaN.
_BLOCKED = 1e30


def _tile_shape(radius: int, num_refs: int, height: int, width: int) -> tuple[int, int]:
    """Tiles as wide as the radius (a tile of width tw wastes (tw + 2r) / (2r + 1) of its
    candidates; a narrower one copies more neighbourhood per target) but at least 12 cells (the
    per-tile overhead of smaller ones costs more than the waste saves: at radius 6, 12-wide tiles
    are 25 % faster than 6-wide ones), at most square, and shorter when needed to keep a tile's
    similarities within TILE_SIMILARITIES. Measured on CPU at radius 12 (4 and 20 context frames)
    and radius 6 (4 frames)."""
    tile_w = max(4, min(width, max(radius, _MIN_TILE)))
    row_cells = tile_w * (tile_w + 2 * radius) * (2 * radius + 1) * num_refs
    tile_h = max(1, min(height, tile_w, _TILE_SIMILARITIES // row_cells))
    return tile_h, tile_w


def _padded_keys(
    keys: Tensor,
    radius: int,
    pad: tuple[int, int],
    dtype: torch.dtype = torch.float32,
    ones: bool = False,
    rows_first: bool = False,
) -> Tensor:
    """keys (B, N, C, h, w) -> (B, h + 2r + pad_y, w + 2r + pad_x, N, C+1) of ``dtype``, cells-last
    and padded as :func:`_cells_last` with zeros and one more channel: 0 inside the image,
    -BLOCKED outside; with ``ones``, a last channel of ones too (C+2). Built in place, one copy.
    ``rows_first``: laid out (B, H', C+1, W', N) instead, each row of cells a matrix. Without
    autograd, the tensor of this thread's previous call of the same layout is reused (:func:`_scratch`)."""
    batch, count, channels, height, width = keys.shape
    size_y, size_x, depth = height + 2 * radius + pad[0], width + 2 * radius + pad[1], channels + 1 + ones
    shape = (batch, size_y, depth, size_x, count) if rows_first else (batch, size_y, size_x, count, depth)
    differentiable = torch.is_grad_enabled() and keys.requires_grad
    stored = keys.new_zeros(shape, dtype=dtype) if differentiable else _scratch(("keys", rows_first), shape, dtype, keys.device)
    padded = stored.permute(0, 1, 3, 4, 2) if rows_first else stored
    inside = padded[:, radius : radius + height, radius : radius + width]
    padded[..., channels] = -_BLOCKED
    if rows_first:  # rows of w cells copied whole first, then the frames interleaved: 1.4x faster than at once
        staged = _scratch(("staged keys",), (batch, height, channels, count, width), keys.dtype, keys.device, zeroed=False)
        staged.copy_(keys.permute(0, 3, 2, 1, 4))  # (B, h, C, N, w)
        inside[..., :channels] = staged.permute(0, 1, 4, 3, 2)
    else:
        inside[..., :channels] = keys.permute(0, 3, 4, 1, 2)
    inside[..., channels] = 0.0
    if ones:
        padded[..., channels + 1] = 1.0
    return stored


_SCRATCH = threading.local()


def _scratch(
    name: tuple, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, zeroed: bool = True
) -> Tensor:
    """A tensor (zeroed, or as left) for this thread's ``name`` and ``dtype``: the one of its
    previous call when shape and device are the same (they are, frame after frame). Allocating the
    12 MB of a frame's key layout afresh costs a page fault per 4 KB (6.6 against 2.5 ms a layout
    on CPU); one tensor per name and thread is kept, until the shape changes or the thread ends."""
    name, wanted = (*name, dtype), (tuple(shape), device)
    kept = getattr(_SCRATCH, "tensors", None)
    if kept is None:
        kept = _SCRATCH.tensors = {}
    if name in kept and kept[name][0] == wanted:
        return kept[name][1].zero_() if zeroed else kept[name][1]
    kept[name] = (wanted, torch.zeros(shape, dtype=dtype, device=device))
    return kept[name][1]


def _cells_last(maps: Tensor, margin: int, pad: tuple[int, int], fill: float = 0.0) -> Tensor:
    """maps: (B, N, C, h, w) -> (B, h', w', N, C) contiguous, padded by ``margin`` cells on every
    side plus ``pad`` = (bottom, right), with ``fill``."""
    padded = F.pad(maps, (margin, margin + pad[1], margin, margin + pad[0]), value=fill)
    return padded.permute(0, 3, 4, 1, 2).contiguous()


def _tile_similarity(
    queries: Tensor, keys: Tensor, corner: tuple[int, int], radius: int, tile: tuple[int, int], out: Tensor | None
) -> Tensor:
    """queries (h', w', C+1) and keys (H', W', N, C+1) of one batch item, cells-last (keys
    contiguous). Returns the tile's similarities (th, 2r+1, tw, (tw+2r) * N): target row t, window
    row dy, target column x, reference (column, frame) of the window row. One batched product per
    target row, of its queries with its 2r + 1 window rows, each a contiguous block of the keys
    (a view, no copy). ``out``: a buffer of that shape to fill (without autograd); None allocates."""
    tile_h, tile_w = tile
    window, row_len = 2 * radius + 1, (tile_w + 2 * radius) * keys.shape[2]
    depth = keys.shape[-1]
    stride_y, stride_x = keys.stride(0), keys.stride(1)
    rows = []
    for t in range(tile_h):
        start = keys.storage_offset() + (corner[0] + t) * stride_y + corner[1] * stride_x
        window_keys = keys.as_strided((window, depth, row_len), (stride_y, 1, depth), start)
        row_queries = queries[corner[0] + t, corner[1] : corner[1] + tile_w].expand(window, tile_w, depth)
        if out is None:
            rows.append(torch.bmm(row_queries, window_keys))
        else:
            torch.bmm(row_queries, window_keys, out=out[t])
    return torch.stack(rows) if out is None else out


def _window_rows(maps: Tensor, corner: tuple[int, int], radius: int, tile: tuple[int, int]) -> Tensor:
    """maps: (H', W', N, L) of one batch item, cells-last and padded. Copies the tile's
    neighbourhood once and returns (th, (2r+1) * (tw+2r) * N, L): for target row t, its window
    rows t .. t + 2r in (row, column, frame) order, as :func:`_tile_similarity` scores them
    (overlapping views of the one copy)."""
    tile_h, tile_w = tile
    span = (tile_h + 2 * radius, tile_w + 2 * radius)
    depth = maps.shape[-1]
    block = maps[corner[0] : corner[0] + span[0], corner[1] : corner[1] + span[1]].contiguous()
    row_len = span[1] * maps.shape[2]
    return block.as_strided((tile_h, (2 * radius + 1) * row_len, depth), (row_len * depth, depth, 1))


@functools.lru_cache(maxsize=16)
def _column_bias(tile_w: int, radius: int, num_refs: int, device: str) -> Tensor:
    """(tile_w, (tw+2r) * N): -BLOCKED where the reference column is beyond ``radius`` of the
    target's column, in the (column, frame) order of a window row (:func:`_tile_similarity`)."""
    span_x = tile_w + 2 * radius
    offset = torch.arange(span_x)[None] - radius - torch.arange(tile_w)[:, None]  # (tile_w, span_x)
    bias = torch.zeros(offset.shape).masked_fill_(offset.abs() > radius, -_BLOCKED)
    return bias.repeat_interleave(num_refs, dim=1).to(device)


class _Reduction(NamedTuple):
    """What a target makes of its similarities to the references and their values (B, R, L):
    ``whole(similarity (B, Q, R), values, topk)``, or ``picked(scores, index, values)`` from
    its top-k already chosen (scores and indices into R, both (B, Q, k))."""

    whole: Callable[[Tensor, Tensor, int | None], Tensor]
    picked: Callable[[Tensor, Tensor, Tensor], Tensor]


def _weighted_sum(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits; values: (B, R, L). Returns (B, Q, L)."""
    if topk is None or topk >= similarity.shape[-1]:
        return torch.bmm(torch.softmax(similarity, dim=-1), values)
    return _weighted_picks(*_topk(similarity, topk), values)


def _weighted_picks(scores: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """scores, index: (B, Q, k) of the chosen references; values: (B, R, L). Returns (B, Q, L)."""
    weights = torch.softmax(scores, dim=-1)  # (B, Q, k)
    return (weights.unsqueeze(-1) * _picked_values(index, values)).sum(dim=2)


def _picked_values(index: Tensor, values: Tensor) -> Tensor:
    """index: (B, Q, k) into the R references; values: (B, R, L). Returns (B, Q, k, L)."""
    num_labels = values.shape[-1]
    return torch.gather(
        values.unsqueeze(1).expand(-1, index.shape[1], -1, -1),
        2,
        index.unsqueeze(-1).expand(-1, -1, -1, num_labels),
    )


def _scored_whole(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits; values: (B, R, L). Returns (B, Q, k + k * L): the k best
    logits, then their values (:func:`_attend_anchored` merges two such parts)."""
    return _scored_picks(*_topk(similarity, min(topk, similarity.shape[-1])), values)


def _scored_picks(scores: Tensor, index: Tensor, values: Tensor) -> Tensor:
    return torch.cat([scores, _picked_values(index, values).flatten(2)], dim=-1)


def _normalised_sum(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits over all references; values: (B, R, L). Returns (B, Q, 1 + L):
    the log of the softmax's normaliser, then the weighted sum."""
    return torch.cat([torch.logsumexp(similarity, dim=-1, keepdim=True), torch.bmm(torch.softmax(similarity, dim=-1), values)], dim=-1)


def _topk_pairs(similarity: Tensor, values: Tensor, topk: int | None) -> Tensor:
    """similarity: (B, Q, R) logits; values: (B, R, 1) reference indices (as floats).
    Returns (B, Q, 2k): the softmax weights of the k most similar references, then their indices."""
    return _index_pairs(*_topk(similarity, min(topk, similarity.shape[-1])), values)


def _index_pairs(scores: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """scores, index: (B, Q, k) of the chosen references; values: (B, R, 1) their indices."""
    weights = torch.softmax(scores, dim=-1)
    picked = torch.gather(values[..., 0].unsqueeze(1).expand(-1, index.shape[1], -1), 2, index)
    return torch.cat([weights, picked], dim=-1)


_WEIGHTED_SUM = _Reduction(_weighted_sum, _weighted_picks)
_TOPK_PAIRS = _Reduction(_topk_pairs, _index_pairs)
_SCORED_PICKS = _Reduction(_scored_whole, _scored_picks)
_NORMALISED_SUM = _Reduction(_normalised_sum, None)


def _topk(similarity: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``similarity.topk(k, dim=-1)`` in two stages (:func:`_grouped_topk`) when the rows are long
    enough for that to pay off: the same values (indices may differ only between equal values)."""
    count = _group_count(similarity.shape[-1], k)
    if count is None:
        return similarity.topk(k, dim=-1)
    return _grouped_topk(similarity.unflatten(-1, (-1, count)), k)



def _grouped_topk(grouped: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The top-k of the candidates ``m * G + g`` of ``grouped`` (..., M, G) (a view of any
    strides). Returns scores (..., k), sorted, and indices into M * G. The k groups g with the
    largest maxima hold the k largest values, since every other candidate is at most the k-th of
    those maxima: torch's top-k costs grow with the row length, while the maxima over m are one
    vectorised pass."""
    _, best = grouped.amax(dim=-2).topk(k, dim=-1, sorted=False)  # (..., k)
    members = torch.gather(grouped, -1, best.unsqueeze(-2).expand(*grouped.shape[:-1], k))  # (..., M, k)
    scores, position = members.flatten(-2).topk(k, dim=-1)
    return scores, position.div(k, rounding_mode="floor") * grouped.shape[-1] + torch.gather(best, -1, position % k)


def _within_radius(similarity: Tensor, num_refs: int) -> Tensor:
    """similarity: (th, 2r+1, tw, (tw+2r) * N) of :func:`_tile_similarity`, contiguous. Returns
    the view (th, tw, 2r+1, (2r+1) * N) of each target's own window: the 2r + 1 columns from its
    own onwards (target column x's window starts x reference columns, x * N cells, further)."""
    tile_h, window, tile_w, row_len = similarity.shape
    s_t, s_m, s_x, _ = similarity.stride()
    return similarity.as_strided((tile_h, tile_w, window, window * num_refs), (s_t, s_x + num_refs, s_m, 1))


def _window_index(index: Tensor, radius: int, num_refs: int, row_len: int) -> Tensor:
    """index: (th, tw, k) into the (2r+1) x (2r+1) * N windows of :func:`_within_radius`. Returns
    the same candidates as indices into the tile's window rows (2r+1) x row_len, as
    :func:`_window_rows` lays the values out."""
    width = (2 * radius + 1) * num_refs
    rows = index.div(width, rounding_mode="floor")
    columns = torch.arange(index.shape[1], device=index.device).view(1, -1, 1) * num_refs
    return index + rows * (row_len - width) + columns


@functools.lru_cache(maxsize=64)
def _group_count(length: int, k: int) -> int | None:
    """A divisor G of ``length`` near sqrt(k * length), with at least 4k groups, or None when
    rows are too short for two stages to pay off."""
    if length < 64 * k:
        return None
    ideal = (k * length) ** 0.5
    divisors = [g for g in range(4 * k, length // 2 + 1) if length % g == 0]
    return min(divisors, key=lambda g: abs(g - ideal), default=None)
