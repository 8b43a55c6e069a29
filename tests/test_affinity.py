import pytest
import torch

from colortrack.affinity import AffinityConfig, attend


def dense_reference(queries, keys, values, config):
    """Straightforward dense affinity, masked to the window afterwards."""
    batch, channels, height, width = queries.shape
    num_refs = keys.shape[1]
    q = queries.flatten(2).transpose(1, 2)
    k = keys.transpose(1, 2).flatten(2)
    v = values.permute(0, 1, 3, 4, 2).reshape(batch, num_refs * height * width, -1)
    similarity = q @ k / config.temperature
    if config.radius is not None:
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        far = ((ys[:, None] - ys[None]).abs() > config.radius) | ((xs[:, None] - xs[None]).abs() > config.radius)
        similarity = similarity.masked_fill(far.repeat(1, num_refs), float("-inf"))
    if config.topk is not None:
        kth = similarity.topk(config.topk, dim=-1).values[..., -1:]
        similarity = similarity.masked_fill(similarity < kth, float("-inf"))
    out = torch.softmax(similarity, dim=-1) @ v
    return out.transpose(1, 2).reshape(batch, -1, height, width)


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
    expected = dense_reference(queries.float(), keys.float(), values.float(), config)
    assert torch.allclose(attend(queries, keys, values, config), expected, atol=1e-5)


def test_chunked_equals_unchunked():
    queries, keys, values = random_inputs(seed=1, height=16, width=5)
    whole = attend(queries, keys, values, AffinityConfig(radius=3, topk=5, chunk_size=10_000))
    pieces = attend(queries, keys, values, AffinityConfig(radius=3, topk=5, chunk_size=7))
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


def test_mismatched_shapes_are_rejected():
    queries, keys, values = random_inputs()
    with pytest.raises(ValueError):
        attend(queries[..., :-1], keys, values, AffinityConfig())
    with pytest.raises(ValueError):
        attend(queries, keys, values[:, :2], AffinityConfig())
