"""The colourization network of Vondrick et al. 2018, configurable down to a CPU-sized variant.

Each frame goes through a ResNet trunk (a 4x stem, then stages of basic blocks), two coordinate
channels in [-1, 1] are appended, and a head of 3D convolutions mixes the frames of the clip and
outputs one embedding per feature cell. Targets copy reference colours through dot products of
these embeddings (:func:`colortrack.core.affinity.attend`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colortrack.core.lab import rgb_to_lab

INPUT_MODES = ("gray", "lab")
_STEM_STRIDE = 4


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`ColorizationNet`.

    widths / blocks / strides / dilations: one entry per trunk stage (basic blocks of two 3x3
    convolutions); the stem divides the resolution by 4 and each stage by its stride, so
    ``stride = 4 * prod(strides)``. A stage that keeps the resolution where a plain ResNet would
    halve it can use a dilation instead to keep its receptive field.
    embed_dim: size of the output embedding.
    head_layers / head_width: the head is ``head_layers`` 3D convolutions of kernel
    (temporal_kernel, 3, 3), BatchNorm + ReLU between them, the last one linear.
    temporal_kernel: 3 mixes neighbouring frames as in the paper; 1 embeds every frame on its own,
    so that embeddings are the same at training time and at tracking time.
    input_mode: "gray" feeds the L channel only; "lab" feeds L, a, b, each scaled to [-1, 1].
    normalize: L2-normalise the embeddings (off in the paper).
    """

    widths: tuple[int, ...] = (32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 1)
    strides: tuple[int, ...] = (1, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 1)
    embed_dim: int = 64
    head_layers: int = 5
    head_width: int = 64
    temporal_kernel: int = 1
    input_mode: str = "gray"
    normalize: bool = False

    def __post_init__(self) -> None:
        stages = len(self.widths)
        if stages == 0 or not len(self.blocks) == len(self.strides) == len(self.dilations) == stages:
            raise ValueError("widths, blocks, strides and dilations need one entry per stage")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {self.input_mode!r}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel must be odd and positive, got {self.temporal_kernel}")
        if self.head_layers < 1:
            raise ValueError(f"head_layers must be at least 1, got {self.head_layers}")

    @property
    def stride(self) -> int:
        return _STEM_STRIDE * math.prod(self.strides)

    @property
    def in_channels(self) -> int:
        return 1 if self.input_mode == "gray" else 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        tuples = {"widths", "blocks", "strides", "dilations"}
        return cls(**{key: tuple(value) if key in tuples else value for key, value in data.items()})


MODEL_PRESETS: dict[str, ModelConfig] = {
    # The paper: ResNet-18 per frame, output stride 8 (stages 3 and 4 dilated instead of strided),
    # then a 5-layer 3D convolutional head over the 4 frames, 64-d embeddings.
    "resnet18": ModelConfig(
        widths=(64, 128, 256, 512),
        blocks=(2, 2, 2, 2),
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        embed_dim=64,
        head_layers=5,
        head_width=256,
        temporal_kernel=3,
        input_mode="gray",
    ),
    # Trainable on a CPU in an afternoon: stride 4, three narrow stages, per-frame head.
    "small": ModelConfig(),
}


def rgb_to_input(rgb: Tensor, input_mode: str) -> Tensor:
    """rgb: (..., 3, H, W) in [0, 1]. Returns the network input (..., Cin, H, W) in [-1, 1]."""
    return lab_to_input(rgb_to_lab(rgb.float()), input_mode)


def lab_to_input(lab: Tensor, input_mode: str) -> Tensor:
    """lab: (..., 3, H, W) as from :func:`rgb_to_lab`. Returns (..., Cin, H, W) in [-1, 1]:
    L / 50 - 1 for "gray", and a / 128, b / 128 appended for "lab"."""
    lightness = lab[..., :1, :, :] / 50.0 - 1.0
    if input_mode == "gray":
        return lightness
    return torch.cat([lightness, lab[..., 1:, :, :] / 128.0], dim=-3)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18's block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dilation: int):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride, dilation)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels, 1, dilation)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Trunk(nn.Module):
    """Per-frame ResNet: (N, Cin, H, W) -> (N, widths[-1], H / stride, W / stride)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        first = config.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, first, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(first),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_channels = first
        for width, blocks, stride, dilation in zip(config.widths, config.blocks, config.strides, config.dilations):
            layers = [BasicBlock(in_channels, width, stride, dilation)]
            layers += [BasicBlock(width, width, 1, dilation) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.Sequential(*stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def forward_with_first_stage(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The trunk's output and its first stage's, (N, widths[0], H / 4, W / 4)."""
        first = self.stages[0](self.stem(x))
        return self.stages[1:](first), first


class HeadConv(nn.Conv3d):
    """Conv3d of kernel (temporal_kernel, 3, 3) on (B, C, T, H, W), zero-padded in time and space.

    A temporal kernel of 1 runs as the equivalent 2D convolution over the B * T frames (faster on
    CPU); the parameters are the same in both cases.
    """

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int, bias: bool):
        super().__init__(
            in_channels, out_channels, (temporal_kernel, 3, 3), padding=(temporal_kernel // 2, 1, 1), bias=bias
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size[0] != 1:
            return super().forward(x)
        batch, channels, time, height, width = x.shape
        frames = x.transpose(1, 2).reshape(batch * time, channels, height, width)
        out = F.conv2d(frames, self.weight[:, :, 0], self.bias, padding=1)
        return out.view(batch, time, -1, height, width).transpose(1, 2)


class ColorizationNet(nn.Module):
    """Grayscale (or Lab) clip -> per-pixel embeddings. Implements the Embedder protocol.

    forward: x (B, T, Cin, H, W) in [-1, 1], H and W divisible by ``stride``.
    Returns (B, T, embed_dim, H / stride, W / stride).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.stride = config.stride
        self.trunk = Trunk(config)
        self.head = _make_head(config)

    def forward(self, x: Tensor, fine_weight: float = 0.0) -> Tensor:
        """fine_weight > 0 appends the first trunk stage's features, L2-normalised, times
        ``sqrt(fine_weight)`` (see :meth:`encode`): (B, T, embed_dim + widths[0], h, w)."""
        batch, time, channels, height, width = x.shape
        if height % self.stride or width % self.stride:
            raise ValueError(f"input {height}x{width} is not divisible by the stride {self.stride}")
        features, fine = self.trunk.forward_with_first_stage(x.reshape(batch * time, channels, height, width))
        features = _append_coordinates(features)
        features = features.view(batch, time, *features.shape[1:]).transpose(1, 2)  # (B, C, T, h, w)
        embeddings = self.head(features).transpose(1, 2)  # (B, T, D, h, w)
        if self.config.normalize:
            embeddings = F.normalize(embeddings, dim=2)
        if fine_weight <= 0:
            return embeddings
        fine = _fine_features(fine, embeddings.shape[-2:], fine_weight).to(embeddings.dtype)  # bf16 stays bf16
        return torch.cat([embeddings, fine.view(batch, time, *fine.shape[1:])], dim=2)

    def for_inference(self) -> ColorizationNet:
        """Eval mode, the weights stored channels-last (NHWC; the head's, 5-D, as NDHWC), the layout
        of oneDNN's fast CPU kernels: 1.4x faster encoding on CPU for the trunk, 1.15x more for the
        head (bf16: 32 -> 28 ms a 480p frame), the same numbers in fp32 (in bf16 the head's sums
        round differently: values move by a bf16 step at most). Training keeps the default layout
        (safetensors saves contiguous tensors only)."""
        self.trunk.to(memory_format=torch.channels_last)
        self.head.to(memory_format=torch.channels_last_3d)
        return self.eval()

    def encode(self, frames: Tensor, fine_weight: float = 0.0) -> Tensor:
        """frames: (T, 3, H, W) RGB in [0, 1]. Returns (T, embed_dim, H / stride, W / stride) float32,
        or (T, embed_dim + widths[0], ...) with ``fine_weight`` > 0.

        The T frames form one clip. With temporal_kernel > 1 the head mixes neighbouring frames,
        and a clip of a single frame (what the tracker passes) sees zero padding in time: only the
        centre temporal taps of the head act on it. With temporal_kernel = 1 every frame is
        embedded alone and T does not matter.

        fine_weight: the first trunk stage's features (a receptive field of ~27 input pixels: local
        texture), L2-normalised and scaled so that a dot product of two cells adds ``fine_weight``
        times their cosine to that of the head's embeddings (which see ~100 pixels and the cell's
        coordinates: what object, and roughly where). Averaged onto the embedding's grid where
        the trunk is strided further.
        """
        x = rgb_to_input(frames, self.config.input_mode)
        return self(x[None], fine_weight)[0].float().contiguous()  # not the head's NHWC


def _conv3x3(in_channels: int, out_channels: int, stride: int, dilation: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def _make_head(config: ModelConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = config.widths[-1] + 2
    for index in range(config.head_layers):
        last = index == config.head_layers - 1
        out_channels = config.embed_dim if last else config.head_width
        layers.append(HeadConv(in_channels, out_channels, config.temporal_kernel, bias=last))
        if not last:
            layers += [nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def _fine_features(fine: Tensor, grid: tuple[int, int], weight: float) -> Tensor:
    """fine: (N, C, h', w') -> (N, C, *grid) float32, unit length per cell times sqrt(weight)."""
    fine = fine.float()
    if tuple(fine.shape[-2:]) != tuple(grid):
        fine = F.adaptive_avg_pool2d(fine, grid)
    return F.normalize(fine, dim=1) * math.sqrt(weight)


def _append_coordinates(features: Tensor) -> Tensor:
    """features: (N, C, h, w). Returns (N, C + 2, h, w) with x then y cell coordinates in [-1, 1]."""
    count, _, height, width = features.shape
    ys = torch.linspace(-1.0, 1.0, height, device=features.device, dtype=features.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=features.device, dtype=features.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_x, grid_y]).expand(count, -1, -1, -1)
    return torch.cat([features, coords], dim=1)
