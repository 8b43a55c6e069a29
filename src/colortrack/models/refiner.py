"""Colourization refinement (Akimoto et al., third stage): a small encoder-decoder G that turns the
warped ab of a frame into its refined ab, guided by its luminance (at the size the caller picks).

G sees, for frame t: L of frames t-1 and t, the refined ab of frame t-1, the warped ab of frame t
(upsampled from the feature grid) and the warp confidence S_t (the largest affinity weight of each
target cell, upsampled). It predicts a residual on top of the warped ab; its last convolution
starts at zero, so an untrained G returns the warped colours unchanged.

Frames are refined in time order along the same sweeps as ``propagate``: forward from the earliest
reference to the end, then backward from it to the start; at every reference frame the refined ab
is the reference's own ab.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from colortrack.core.precision import autocast
from colortrack.defaults import SHIPPED_REFINER
from colortrack.errors import InputError

FORMAT = "colortrack-refiner"
L_CENTER, L_SCALE, AB_SCALE = 50.0, 50.0, 64.0
IN_CHANNELS = 7  # L(t-1), L(t), refined ab(t-1), warped ab(t), confidence(t)
SHIPPED = SHIPPED_REFINER  # --refiner default


@dataclass(frozen=True)
class RefinerConfig:
    """Architecture of :class:`Refiner`: ``widths[i]`` channels after ``i`` halvings of the
    resolution (two 3x3 convolutions per level), ``dilations`` the 3x3 convolutions of the
    bottleneck (at the lowest resolution)."""

    widths: tuple[int, ...] = (32, 64, 64)
    dilations: tuple[int, ...] = (1, 2, 4)

    def __post_init__(self) -> None:
        if len(self.widths) < 1 or min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RefinerConfig:
        return cls(widths=tuple(data["widths"]), dilations=tuple(data["dilations"]))


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation), nn.LeakyReLU(0.1, inplace=True))


class GuidedUpsample(nn.Module):
    """Edge-aware upsampling of per-cell ab: each pixel takes a weighted mean of the warped ab of
    the ``kernel`` x ``kernel`` cells around its own, with log-weights
    ``-d^2 / 2 s^2 - (L - L_cell)^2 / 2 r^2 + g log(confidence)``: d the distance to the cell's centre
    (cell units), L_cell the cell's mean L, and s, r, g learned (start: 0.35 cell, 8 L units, 0;
    measured on true per-cell ab of DAVIS frames, this beats bilinear upsampling by 5-10 % L1)."""

    def __init__(self, kernel: int = 5):
        super().__init__()
        self.kernel = kernel
        self.log_spatial = nn.Parameter(torch.tensor(math.log(0.35)))
        self.log_range = nn.Parameter(torch.tensor(math.log(8.0)))
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, light: Tensor, warped: Tensor, confidence: Tensor) -> Tensor:
        """light (B, 1, H, W), warped (B, 2, h, w), confidence (B, 1, h, w) -> (B, 2, H, W)."""
        batch, (height, width), (h, w) = light.shape[0], light.shape[-2:], warped.shape[-2:]
        k, pad = self.kernel, self.kernel // 2
        cells = torch.cat([warped, F.adaptive_avg_pool2d(light, (h, w)), confidence.clamp_min(1e-4).log()], 1)
        patches = F.unfold(F.pad(cells, (pad,) * 4, mode="replicate"), k).view(batch, 4, k * k, h, w)
        ys, rows = _cell_coordinates(height, h, light.device)
        xs, cols = _cell_coordinates(width, w, light.device)
        offsets = torch.arange(-pad, pad + 1, device=light.device, dtype=torch.float32)
        dy = (rows[None] + offsets[:, None] - ys[None]) ** 2  # (k, H)
        dx = (cols[None] + offsets[:, None] - xs[None]) ** 2  # (k, W)
        distance = (dy[:, None, :, None] + dx[None, :, None, :]).reshape(k * k, height, width)
        if height % h or width % w:
            near = patches[:, :, :, rows][..., cols]  # (B, 4, k*k, H, W): the cells around each pixel's cell
        else:  # each cell is a block of pixels: broadcast over the block (2x faster than copying the cells)
            blocks = (h, height // h, w, width // w)
            near = patches[:, :, :, :, None, :, None]  # (B, 4, k*k, h, 1, w, 1)
            light, distance = light.view(batch, 1, *blocks), distance.view(k * k, *blocks)
        logits = (
            -distance / (2 * self.log_spatial.exp() ** 2)
            - (light - near[:, 2]) ** 2 / (2 * self.log_range.exp() ** 2)
            + self.gamma * near[:, 3]
        )
        return (logits.softmax(dim=1)[:, None] * near[:, :2]).sum(2).reshape(batch, 2, height, width)


def _cell_coordinates(pixels: int, cells: int, device) -> tuple[Tensor, Tensor]:
    """Pixel centres in cell units (cell centres at integers) and the nearest cell of each pixel."""
    centres = (torch.arange(pixels, device=device, dtype=torch.float32) + 0.5) * cells / pixels - 0.5
    return centres, centres.round().clamp(0, cells - 1).long()


class TemporalGate(nn.Module):
    """Share of the refined ab of frame t-1 (same pixel) that frame t keeps: a logistic function of
    the change of L at the pixel (units of 10 L), the warp confidence and the distance between the
    warped and the previous ab (units of 10 ab). Where nothing moved, the colours stay put."""

    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.tensor([-3.0, 0.0, -1.0]))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, light_change: Tensor, confidence: Tensor, disagreement: Tensor) -> Tensor:
        """Each (B, 1, H, W) -> (B, 1, H, W) in (0, 1)."""
        features = torch.cat([light_change / 10, confidence, disagreement / 10], 1)
        return torch.sigmoid((features * self.weights[:, None, None]).sum(1, keepdim=True) + self.bias)


class Refiner(nn.Module):
    """G: the warped ab of frame t (per cell), guided up to the frame by :class:`GuidedUpsample`,
    blended with the refined ab of frame t-1 by :class:`TemporalGate`, plus a residual from an
    encoder-decoder CNN on :func:`refiner_input`.

    forward(light_prev, light, ab_prev, warped, confidence): L (B, 1, H, W) of frames t-1 and t,
    refined ab (B, 2, H, W) of t-1, warped ab (B, 2, h, w) of t and its confidence (B, 1, h, w)
    -> refined ab (B, 2, H, W) of t. Warped ab already at H x W is taken as it is."""

    def __init__(self, config: RefinerConfig = RefinerConfig()):
        super().__init__()
        self.config = config
        widths = config.widths
        self.guide = GuidedUpsample()
        self.gate = TemporalGate()
        self.stem = nn.Sequential(_conv(IN_CHANNELS, widths[0]), _conv(widths[0], widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_conv(cin, cout, stride=2), _conv(cout, cout)) for cin, cout in zip(widths, widths[1:])
        )
        self.middle = nn.Sequential(*[_conv(widths[-1], widths[-1], dilation=d) for d in config.dilations])
        self.lateral = nn.ModuleList(nn.Conv2d(cin, cout, 1) for cin, cout in zip(widths[1:], widths))
        self.up = nn.ModuleList(_conv(width, width) for width in widths[:-1])
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, light_prev: Tensor, light: Tensor, ab_prev: Tensor, warped: Tensor, confidence: Tensor) -> Tensor:
        size = light.shape[-2:]
        confidence_up = _resize(confidence, size)
        with torch.autocast(light.device.type, enabled=False):
            base = warped.float()
            if warped.shape[-2:] != size:
                base = self.guide(light.float(), base, confidence.float())
            disagreement = (base - ab_prev).norm(dim=1, keepdim=True)
            keep = self.gate((light - light_prev).abs().float(), confidence_up, disagreement)
            base = base + keep * (ab_prev.float() - base)
        x = refiner_input(light_prev, light, ab_prev, base, confidence_up)
        multiple = self.config.multiple
        pad = (0, -size[1] % multiple, 0, -size[0] % multiple)
        residual = self.residual(F.pad(x, pad, mode="replicate") if any(pad) else x)
        return base + AB_SCALE * residual[..., : size[0], : size[1]].float()

    def residual(self, x: Tensor) -> Tensor:
        """x (B, 7, H, W), H and W multiples of ``config.multiple`` -> (B, 2, H, W) in AB_SCALE units."""
        skips = [self.stem(x)]
        for layer in self.down:
            skips.append(layer(skips[-1]))
        y = self.middle(skips.pop())
        for lateral, up in zip(reversed(self.lateral), reversed(self.up)):
            skip = skips.pop()
            y = up(skip + lateral(F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)))
        return self.head(y)

    def refine(self, light_prev: Tensor, light: Tensor, ab_prev: Tensor, warped: Tensor, confidence: Tensor) -> Tensor:
        """The same as calling the module (kept for readability at call sites)."""
        return self(light_prev, light, ab_prev, warped, confidence)


def _resize(maps: Tensor, size) -> Tensor:
    if maps.shape[-2:] == tuple(size):
        return maps
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)


def refiner_input(light_prev: Tensor, light: Tensor, ab_prev: Tensor, warped: Tensor, confidence: Tensor) -> Tensor:
    """Everything at (B, C, H, W) -> (B, 7, H, W) normalised input of :class:`Refiner`."""
    lights = (torch.cat([light_prev, light], 1) - L_CENTER) / L_SCALE
    return torch.cat([lights, ab_prev / AB_SCALE, warped / AB_SCALE, confidence * 2 - 1], 1)


def sweeps(num_frames: int, references: Sequence[int]) -> list[range]:
    """Frame orders of the refinement: forward from the earliest reference, backward before it."""
    first = min(references)
    return [range(first, num_frames), range(first, -1, -1)]


@torch.no_grad()
def refine_frames(
    refiner: Refiner,
    lights: Sequence[Tensor],
    warped: Sequence[Tensor],
    confidence: Sequence[Tensor],
    references: dict[int, Tensor],
    size: tuple[int, int] | None = None,
    precision: str = "fp32",
) -> Iterator[Tensor]:
    """lights: T (1, H, W) L; warped: T (2, h, w) ab; confidence: T (h, w) (1 at references);
    references: frame -> (2, H, W) true ab. G works at ``size`` (default H x W; the colorizer
    passes its embedding input size, the scale G is trained at), under the autocast of ``precision``.
    Yields the refined (2, *size) ab of every frame in time order (frames before the earliest
    reference are refined first and held)."""
    forward, backward = sweeps(len(lights), list(references))
    before = dict(_sweep(refiner, lights, warped, confidence, references, backward, size, precision))
    for t in sorted(before):
        if t != forward.start:
            yield before.pop(t)
    before.clear()
    for _, ab in _sweep(refiner, lights, warped, confidence, references, forward, size, precision):
        yield ab


class RefineSweep:
    """Refines frames one after the other along one sweep (see :func:`sweeps`): each from the
    frame before it in the sweep, restarting at every reference frame. G works at ``size``, under
    the autocast of ``precision`` (:func:`colortrack.core.precision.autocast`; bf16 is 1.5x faster
    on CPU with the same PSNR, docs/benchmarks.md)."""

    def __init__(self, refiner: Refiner, size: tuple[int, int] | None = None, precision: str = "fp32"):
        self.refiner, self.size, self.precision = refiner, None if size is None else tuple(size), precision
        self.previous: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def reference(self, light: Tensor, ab: Tensor) -> Tensor:
        """light (1, H, W), the reference's true ab (2, H, W) -> its ab at ``size``."""
        ab = self._resized(ab).float()
        self.previous = (self._resized(light), ab)
        return ab

    @torch.no_grad()
    def step(self, light: Tensor, warped: Tensor, confidence: Tensor) -> Tensor:
        """light (1, H, W), warped ab (2, h, w), confidence (h, w) -> the refined ab (2, *size)."""
        if self.previous is None:
            raise RuntimeError("a sweep starts at a reference frame")
        light = self._resized(light)
        light_prev, ab_prev = self.previous
        with autocast(self.precision, light.device):
            ab = self.refiner.refine(light_prev[None], light[None], ab_prev[None], warped[None], confidence[None, None])
        ab = ab[0].float()
        self.previous = (light, ab)
        return ab

    def _resized(self, maps: Tensor) -> Tensor:
        if self.size is None or self.size == tuple(maps.shape[-2:]):
            return maps
        return _shrink(maps, self.size)


def _shrink(maps: Tensor, size) -> Tensor:
    return F.interpolate(maps[None].float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)[0]


def _sweep(refiner, lights, warped, confidence, references, order, size, precision) -> Iterator[tuple[int, Tensor]]:
    sweep = RefineSweep(refiner, size, precision)
    for t in order:
        if t in references:
            yield t, sweep.reference(lights[t], references[t])
        else:
            yield t, sweep.step(lights[t], warped[t], confidence[t])


# ----------------------------------------------------------------------------- weights


def shipped_weights() -> Path:
    """The packaged ``weights/refiner.safetensors`` (may be absent in a source checkout)."""
    return Path(str(resources.files("colortrack") / "weights" / "refiner.safetensors"))


def resolve_refiner(spec: str | os.PathLike) -> Path:
    """``refiner`` (the shipped weights), a ``.safetensors`` file with its ``.json`` beside it, a
    refiner checkpoint folder or a refiner run folder -> the weights file."""
    if str(spec) == SHIPPED:
        path = shipped_weights()
        if not path.is_file():
            raise InputError("--refiner", "no shipped refiner weights in this installation; pass a run folder")
        return path
    path = Path(spec)
    if path.is_dir():
        from colortrack.train.checkpoint import WEIGHTS, resolve_checkpoint

        path = resolve_checkpoint(path) / WEIGHTS
    if not path.is_file():
        raise InputError(spec, "no such refiner weights file or run folder")
    return path


def _describe(weights: Path) -> Path:
    for name in ("checkpoint.json", weights.with_suffix(".json").name):
        if (weights.parent / name).is_file():
            return weights.parent / name
    raise InputError(weights, "no checkpoint.json or .json description beside the refiner weights")


def load_refiner(spec: str | os.PathLike, device: torch.device | None = None) -> Refiner:
    """The refiner of ``spec`` (see :func:`resolve_refiner`), strictly loaded, in eval mode, its
    weights channels-last (oneDNN's fast CPU layout: 1.4x faster, the same numbers)."""
    weights = resolve_refiner(spec)
    meta_path = _describe(weights)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        config = RefinerConfig.from_dict(meta["refiner_config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(meta_path, f"not a refiner description ({err})") from err
    refiner = Refiner(config)
    try:
        refiner.load_state_dict(load_file(str(weights)), strict=True)
    except (SafetensorError, OSError, RuntimeError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(weights, f"weights do not match the refiner: {problem}") from err
    return refiner.to(device or torch.device("cpu"), memory_format=torch.channels_last).eval()
