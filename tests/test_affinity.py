import threading

import pytest
import torch

from colortrack.core.affinity import AffinityConfig, _native_bf16, affinity_topk, attend, attend_dense


def random_inputs(seed=0, batch=2, refs=3, channels=8, labels=5, height=9, width=11):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
    keys = torch.randn(batch, refs, channels, height, width, generator=generator, dtype=torch.float64)
    values = torch.rand(batch, refs, labels, height, width, generator=generator, dtype=torch.float64)
    return queries, keys, values


@pytest.mark.parametrize("topk", [None, 1, 7])
@pytest.mark.parametrize("radius", [None, 0, 2])
@pytest.mark.parametrize("chunk_size", [1, 10, 23, 100_000])
def test_banded_equals_dense_masked_reference(topk, radius, chunk_size):
    queries, keys, values = random_inputs()
    config = AffinityConfig(temperature=0.3, topk=topk, radius=radius, chunk_size=chunk_size)
    expected = attend_dense(queries.float(), keys.float(), values.float(), config)
    assert torch.allclose(attend(queries, keys, values, config), expected, atol=1e-5)


@pytest.mark.parametrize("topk", [None, 1, 7, 40])
@pytest.mark.parametrize("anchors", [1, 2, 3])
def test_global_anchors_equal_the_dense_reference_with_their_window_lifted(topk, anchors):
    queries, keys, values = random_inputs(seed=3)
    config = AffinityConfig(temperature=0.3, topk=topk, radius=1)
    expected = attend_dense(queries.float(), keys.float(), values.float(), config, anchors=anchors)
    assert not torch.allclose(expected, attend_dense(queries.float(), keys.float(), values.float(), config))
    assert torch.allclose(attend(queries, keys, values, config, anchors=anchors), expected, atol=1e-5)


def test_chunked_equals_unchunked():
    queries, keys, values = random_inputs(seed=1, height=16, width=5)
    whole = attend(queries, keys, values, AffinityConfig(radius=None, topk=5, chunk_size=10_000))
    pieces = attend(queries, keys, values, AffinityConfig(radius=None, topk=5, chunk_size=7))
    assert torch.allclose(whole, pieces, atol=1e-6)


def test_outputs_are_convex_combinations_of_values():
    queries, keys, values = random_inputs(seed=2)
    out = attend(queries, keys, values, AffinityConfig(topk=None, radius=None))
    assert out.shape == (2, 5, 9, 11)
    assert out.min() >= values.min() - 1e-6 and out.max() <= values.max() + 1e-6


def test_identical_embeddings_copy_the_matching_pixel():
    height, width = 6, 7
    one_hot_positions = torch.eye(height * width).view(height * width, height, width)
    keys = one_hot_positions[None, None]  # every cell has a unique orthogonal embedding
    labels = torch.arange(height * width, dtype=torch.float32).view(1, 1, 1, height, width)
    config = AffinityConfig(temperature=0.01, topk=None, radius=None)
    out = attend(one_hot_positions[None], keys, labels, config)
    assert torch.allclose(out[0, 0], labels[0, 0, 0], atol=1e-3)


def test_gradients_reach_queries_keys_and_values():
    queries, keys, values = (t.float().requires_grad_() for t in random_inputs(seed=3))
    attend(queries, keys, values, AffinityConfig(topk=4, radius=2, chunk_size=16)).sum().backward()
    for tensor in (queries, keys, values):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("topk", [3, 4])  # 3: two-stage top-k over 5 x 15 window cells (15 >= 4k); 4: one stage
def test_local_gradients_equal_the_dense_reference(topk):
    inputs = [t.float().requires_grad_() for t in random_inputs(seed=3)]
    config = AffinityConfig(temperature=0.5, topk=topk, radius=2)
    attend(*inputs, config).square().sum().backward()
    dense = [t.detach().clone().requires_grad_() for t in inputs]
    attend_dense(*dense, config).square().sum().backward()
    for local, reference in zip(inputs, dense):
        assert torch.allclose(local.grad, reference.grad, atol=1e-4)


def test_mismatched_shapes_are_rejected():
    queries, keys, values = random_inputs()
    with pytest.raises(ValueError):
        attend(queries[..., :-1], keys, values, AffinityConfig())
    with pytest.raises(ValueError):
        attend(queries, keys, values[:, :2], AffinityConfig())


def restricted_reference(queries, keys, values, config, allowed):
    """Dense affinity over the (target, reference) pairs where ``allowed`` (Q, N*h*w) is true, then top-k."""
    batch, _, height, width = queries.shape
    num_refs = keys.shape[1]
    q = queries.flatten(2).transpose(1, 2)
    k = keys.transpose(1, 2).flatten(2)
    v = values.permute(0, 1, 3, 4, 2).reshape(batch, num_refs * height * width, -1)
    similarity = (q @ k / config.temperature).masked_fill(~allowed, float("-inf"))
    if config.topk is not None:
        kth = similarity.topk(config.topk, dim=-1).values[..., -1:]
        similarity = similarity.masked_fill(similarity < kth, float("-inf"))
    out = torch.softmax(similarity, dim=-1) @ v
    return out.transpose(1, 2).reshape(batch, -1, height, width)


def window_mask(height, width, radius, num_refs):
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    if radius is None:
        return torch.ones(height * width, num_refs * height * width, dtype=torch.bool)
    near = ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)
    return near.repeat(1, num_refs)


@pytest.mark.parametrize("topk", [None, 3])
@pytest.mark.parametrize("radius", [None, 1, 3])
def test_group_restriction_equals_dense_masked_reference(topk, radius):
    queries, keys, values = (t.float() for t in random_inputs(seed=5, batch=1, refs=2))
    generator = torch.Generator().manual_seed(6)
    query_groups = torch.randint(-1, 3, (1, 9, 11), generator=generator)
    key_groups = torch.randint(0, 3, (1, 2, 9, 11), generator=generator)
    key_groups[0, :, :, :3] = 0  # group 0 only on the left: far right targets of group 0 have none nearby
    config = AffinityConfig(temperature=0.3, topk=topk, radius=radius, chunk_size=17)
    window = window_mask(9, 11, radius, 2)
    same = query_groups.flatten()[:, None] == key_groups.flatten()[None]
    restricted = (query_groups.flatten() >= 0)[:, None] & (same & window).any(dim=1, keepdim=True)
    allowed = window & (same | ~restricted)
    expected = restricted_reference(queries, keys, values, config, allowed[None])
    got = attend(queries, keys, values, config, groups=(query_groups, key_groups))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, attend(queries, keys, values, config), atol=1e-3)


@pytest.mark.parametrize("topk", [None, 2])
def test_candidate_restriction_equals_dense_masked_reference(topk):
    queries, keys, values = (t.float() for t in random_inputs(seed=7, batch=2, refs=2, height=5, width=6))
    generator = torch.Generator().manual_seed(8)
    num_targets, num_refs_pixels = 30, 60
    allowed = torch.rand(2, num_targets, num_refs_pixels, generator=generator) < 0.15
    allowed[:, :, 0] |= ~allowed.any(dim=-1)  # at least one candidate each
    count = int(allowed.sum(-1).max())
    candidates = torch.full((2, num_targets, count + 2), -1, dtype=torch.long)  # padded with -1
    for b in range(2):
        for j in range(num_targets):
            listed = allowed[b, j].nonzero().flatten()
            candidates[b, j, : len(listed)] = listed[torch.randperm(len(listed), generator=generator)]
    config = AffinityConfig(temperature=0.2, topk=topk, radius=1, chunk_size=3)  # radius is ignored
    expected = restricted_reference(queries, keys, values, config, allowed)
    assert torch.allclose(attend(queries, keys, values, config, candidates=candidates), expected, atol=1e-5)
    candidates[0, 4] = -1  # a target with no candidate gets zeros
    assert torch.all(attend(queries, keys, values, config, candidates=candidates)[0, :, 0, 4] == 0)


@pytest.mark.parametrize("radius", [None, 2])
def test_affinity_topk_is_the_affinity_that_attend_applies(radius):
    queries, keys, values = (t.float() for t in random_inputs(seed=9, batch=2, refs=3))
    config = AffinityConfig(temperature=0.3, topk=4, radius=radius, chunk_size=20)
    weights, indices = affinity_topk(queries, keys, config)
    assert weights.shape == indices.shape == (2, 99, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 99))
    flat = values.permute(0, 1, 3, 4, 2).reshape(2, -1, values.shape[2])
    rebuilt = torch.einsum("bqk,bqkl->blq", weights, torch.stack([flat[b][indices[b]] for b in range(2)]))
    assert torch.allclose(rebuilt.reshape(2, -1, 9, 11), attend(queries, keys, values, config), atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 7, 5184), (2, 640), (1, 5, 999), (4, 30)])
def test_two_stage_topk_finds_the_same_values_as_torch(shape):
    from colortrack.core.affinity import _topk

    similarity = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    similarity[..., ::3] = -1e30  # blocked candidates, as the window bias makes them
    scores, index = _topk(similarity, 10)
    expected, _ = similarity.topk(10, dim=-1)
    assert torch.equal(scores, expected)
    assert torch.equal(torch.gather(similarity, -1, index), scores)


@pytest.mark.parametrize("refs", [4, 20])
def test_local_equals_dense_at_the_default_window(refs):
    """Radius 12 and top-10 over 4 or 20 frames: the tile shapes and two-stage top-k of real use."""
    queries, keys, values = random_inputs(seed=4, batch=1, refs=refs, channels=16, labels=3, height=30, width=41)
    config = AffinityConfig(temperature=1.0, topk=10, radius=12)
    expected = attend_dense(queries.float(), keys.float(), values.float(), config)
    assert torch.allclose(attend(queries, keys, values, config), expected, atol=1e-5)


def test_tiles_side_by_side_equal_one_thread_and_keep_the_callers_thread_count():
    """Default window over 8 frames: 12 tiles, split between two threads of one intra-op thread each."""
    from colortrack.core.affinity import _tile_pool

    queries, keys, values = (t.float() for t in random_inputs(seed=10, batch=1, refs=8, channels=16, labels=3, height=30, width=41))
    config = AffinityConfig(temperature=1.0, topk=10, radius=12)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = attend(queries, keys, values, config)
        torch.set_num_threads(2)
        _tile_pool.cache_clear()
        side_by_side = attend(queries, keys, values, config)
        seen = []
        later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        later.start()
        later.join()
        assert torch.get_num_threads() == 2 and seen == [2]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial, side_by_side)


def smooth_bf16_inputs(seed=0, refs=8, channels=16, labels=3, height=30, width=41):
    """A smooth embedding field seen through refs shifted frames, every value a bfloat16 number (as
    a bfloat16 encoder makes them): the best candidates of a target cluster around its match."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, channels, height // 4 + 2, width // 4 + 2, generator=generator)
    field = torch.nn.functional.interpolate(coarse, size=(height + refs, width + refs), mode="bilinear", align_corners=False)
    frames = [field[..., n : n + height, n : n + width] for n in range(refs + 1)]
    noise = [0.05 * torch.randn(1, channels, height, width, generator=generator) for _ in frames]
    queries = (3 * (frames[-1] + noise[-1])).bfloat16()
    keys = torch.stack([3 * (frame + n) for frame, n in zip(frames[:-1], noise[:-1])], 1).bfloat16()
    values = torch.rand(1, refs, labels, height, width, generator=generator)
    return queries, keys, values


def counting_fallbacks(monkeypatch) -> list:
    from colortrack.core import affinity

    calls = []
    exact_tile = affinity._ExactTiles.tile
    monkeypatch.setattr(affinity._ExactTiles, "tile", lambda self, *args: calls.append(args[:3]) or exact_tile(self, *args))
    return calls


def counting_calls(monkeypatch, method: str) -> list:
    from colortrack.core import affinity

    calls = []
    original = getattr(affinity._CertifiedTiles, method)
    monkeypatch.setattr(affinity._CertifiedTiles, method, lambda self, *args: calls.append(args) or original(self, *args))
    return calls


@pytest.mark.skipif(not _native_bf16(), reason="bfloat16 scoring needs a CPU with bfloat16 instructions")
def test_bf16_embeddings_get_the_float32_top_k_and_weights(monkeypatch):
    queries, keys, values = smooth_bf16_inputs()
    config = AffinityConfig(temperature=1.0, topk=10, radius=12)
    expected = attend(queries.float(), keys.float(), values, config)
    expected_weights, expected_indices = affinity_topk(queries.float(), keys.float(), config)
    fallbacks = counting_fallbacks(monkeypatch)
    alone = counting_calls(monkeypatch, "_whole_window")
    with torch.no_grad():
        out = attend(queries, keys, values, config)
        weights, indices = affinity_topk(queries, keys, config)
    assert fallbacks == []  # every tile was scored in bfloat16
    assert 0 < len(alone) < 10  # a few targets without the proof: over their whole window in float32
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(indices, expected_indices)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


@pytest.mark.skipif(not _native_bf16(), reason="bfloat16 scoring needs a CPU with bfloat16 instructions")
def test_bf16_embeddings_with_a_global_anchor_equal_the_dense_reference():
    queries, keys, values = smooth_bf16_inputs()
    config = AffinityConfig(temperature=1.0, topk=10, radius=12)
    expected = attend_dense(queries.float(), keys.float(), values, config, anchors=1)
    with torch.no_grad():
        assert torch.allclose(attend(queries, keys, values, config, anchors=1), expected, atol=1e-5)


@pytest.mark.skipif(not _native_bf16(), reason="bfloat16 scoring needs a CPU with bfloat16 instructions")
def test_bf16_tiles_without_a_proof_are_scored_in_float32(monkeypatch):
    """Cells that all hold one of 3 embeddings: ties everywhere, no k-th candidate beats the ones
    left out, and those tiles are done in float32."""
    generator = torch.Generator().manual_seed(11)
    palette = torch.randn(3, 16, generator=generator).bfloat16().float()
    cells = palette[torch.randint(0, 3, (9, 30, 41), generator=generator)]  # (N + 1, h, w, C)
    queries, keys = cells[-1].permute(2, 0, 1)[None], cells[:-1].permute(0, 3, 1, 2)[None]
    values = torch.rand(1, 8, 3, 30, 41, generator=generator)
    config = AffinityConfig(temperature=1.0, topk=10, radius=12)
    expected = attend(queries, keys, values, config)
    fallbacks = counting_fallbacks(monkeypatch)
    with torch.no_grad():
        out = attend(queries.bfloat16(), keys.bfloat16(), values, config)
    assert len(fallbacks) > 0
    assert torch.allclose(out, expected, atol=1e-6)


def test_compact_embeddings_are_bf16_only_where_that_loses_nothing():
    from colortrack.core.affinity import compact_embedding

    exact = torch.randn(4, 5, 6).bfloat16().float()
    assert torch.equal(compact_embedding(exact).float(), exact)
    assert compact_embedding(exact).dtype == (torch.bfloat16 if _native_bf16() else torch.float32)
    inexact = exact + 1e-4
    assert compact_embedding(inexact) is inexact


def test_key_layouts_reuse_the_threads_tensor_and_hold_only_the_new_keys():
    """A frame's padded key layout is rebuilt in the tensor of the previous frame (no fresh pages)."""
    from colortrack.core.affinity import _padded_keys

    first = random_inputs(seed=12, batch=1, refs=3)[1].float()
    second = first + 1.0
    for rows_first in (False, True):
        earlier = _padded_keys(first, 2, (1, 0), torch.bfloat16, ones=True, rows_first=rows_first)
        pointer = earlier.data_ptr()
        later = _padded_keys(second, 2, (1, 0), torch.bfloat16, ones=True, rows_first=rows_first)
        assert later.data_ptr() == pointer
        with torch.enable_grad():
            fresh = _padded_keys(second.requires_grad_(), 2, (1, 0), torch.bfloat16, ones=True, rows_first=rows_first)
        second.requires_grad_(False)
        assert fresh.data_ptr() != pointer and torch.equal(later, fresh.detach())
