"""The colourization network: shapes, gradients, input conversion, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from colortrack.models.embedders.base import Embedder
from colortrack.models.network import MODEL_PRESETS, ColorizationNet, HeadConv, ModelConfig, rgb_to_input
from colortrack.train.loss import colorization_loss

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ModelConfig(
    widths=(8, 16), blocks=(1, 2), strides=(1, 2), dilations=(1, 1), embed_dim=8, head_layers=3, head_width=8,
    temporal_kernel=3,
)


@pytest.mark.parametrize(("preset", "stride"), [("small", 4), ("resnet18", 8)])
def test_presets_output_shapes(preset: str, stride: int) -> None:
    config = MODEL_PRESETS[preset]
    model = ColorizationNet(config)
    assert model.stride == config.stride == stride
    out = model(torch.zeros(2, 4, config.in_channels, 32, 32))
    assert out.shape == (2, 4, config.embed_dim, 32 // stride, 32 // stride)


@pytest.mark.parametrize("input_mode", ["gray", "lab"])
def test_encode_implements_the_embedder_protocol(input_mode: str) -> None:
    model = ColorizationNet(dataclasses.replace(TINY, input_mode=input_mode)).eval()
    assert isinstance(model, Embedder)
    frames = torch.rand(3, 3, 24, 40)
    with torch.no_grad():
        clip = model.encode(frames)
        single = model.encode(frames[:1])
    assert clip.shape == (3, 8, 3, 5) and clip.dtype == torch.float32
    assert single.shape == (1, 8, 3, 5)


def test_per_frame_head_gives_the_same_embedding_alone_or_in_a_clip() -> None:
    model = ColorizationNet(dataclasses.replace(TINY, temporal_kernel=1)).eval()
    frames = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(frames)[1:2], model.encode(frames[1:2]))


def test_fine_weight_adds_weight_times_the_first_stage_cosine_to_every_dot_product() -> None:
    """TINY's first stage is at stride 4 and its embedding at stride 8: the fine part is averaged onto the 8-grid."""
    torch.manual_seed(0)
    model = ColorizationNet(TINY).eval()
    captured = []
    model.trunk.stages[0].register_forward_hook(lambda module, inputs, output: captured.append(output))
    frames = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        plain = model.encode(frames)
        fine = model.encode(frames, fine_weight=9.0)
    first = F.avg_pool2d(captured[-1], 2)  # (2, 8, 4, 6)
    assert fine.shape == (2, 8 + 8, 4, 6)
    torch.testing.assert_close(fine[:, :8], plain)
    cells = lambda x: x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # noqa: E731
    added = cells(fine) @ cells(fine).T - cells(plain) @ cells(plain).T
    cosine = F.normalize(cells(first), dim=1) @ F.normalize(cells(first), dim=1).T
    torch.testing.assert_close(added, 9.0 * cosine, rtol=1e-4, atol=1e-4)


def test_inference_layout_encodes_the_same_numbers() -> None:
    torch.manual_seed(0)
    model = ColorizationNet(TINY).eval()
    frames = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        expected = model.encode(frames)
        fast = model.for_inference()
        assert fast.trunk.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert fast.head[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(fast.encode(frames), expected, rtol=1e-5, atol=1e-5)
        assert fast.encode(frames).is_contiguous()  # the tracker stacks and lays out embeddings from it


def test_head_conv_with_temporal_kernel_one_equals_conv3d() -> None:
    conv = HeadConv(5, 7, temporal_kernel=1, bias=True)
    x = torch.randn(2, 5, 3, 6, 6)
    expected = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=(0, 1, 1))
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("config", [MODEL_PRESETS["small"], dataclasses.replace(TINY, input_mode="lab")])
def test_every_parameter_gets_a_gradient_from_the_colorization_loss(config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = ColorizationNet(config).train()
    x = torch.rand(2, 4, config.in_channels, 32, 32) * 2 - 1
    embeddings = model(x)
    color_ids = torch.randint(0, 16, (2, 4, *embeddings.shape[-2:]))
    colorization_loss(embeddings, color_ids, 16).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_normalize_flag_gives_unit_embeddings() -> None:
    model = ColorizationNet(dataclasses.replace(TINY, normalize=True)).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 2, 1, 16, 16))
    torch.testing.assert_close(out.norm(dim=2), torch.ones(1, 2, 2, 2))


def test_input_conversion_ranges() -> None:
    rgb = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])[:, :, None]  # green, red pixels: (3, 2, 1)
    gray = rgb_to_input(rgb, "gray")
    lab = rgb_to_input(rgb, "lab")
    assert gray.shape == (1, 2, 1) and lab.shape == (3, 2, 1)
    assert lab.abs().max() <= 1.0 and gray.min() >= -1.0
    torch.testing.assert_close(rgb_to_input(torch.ones(3, 1, 1), "gray"), torch.ones(1, 1, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(rgb_to_input(torch.zeros(3, 1, 1), "lab"), torch.tensor([-1.0, 0, 0])[:, None, None])


def test_config_round_trip_and_validation() -> None:
    for config in MODEL_PRESETS.values():
        assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        ModelConfig(input_mode="rgb")
    with pytest.raises(ValueError):
        ModelConfig(widths=(8,), blocks=(1, 1), strides=(1,), dilations=(1,))
    with pytest.raises(ValueError):
        ColorizationNet(TINY)(torch.zeros(1, 1, 1, 12, 12))
