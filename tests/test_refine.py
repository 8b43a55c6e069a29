"""Colourization refiner: shapes, gradients, identity on perfect colours, data, weights, CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colortrack.cli.main import main
from colortrack.tasks.colorize import ColorizeConfig, Colorizer, predict_ab
from colortrack.eval.colorize import check_methods
from colortrack.models.embedders.gray import LuminancePatchEmbedder
from colortrack.errors import InputError
from colortrack.core.lab import rgb_to_lab
from colortrack.models.refiner import Refiner, RefinerConfig, load_refiner, refine_frames
from colortrack.demo.synthetic import make_video
from colortrack.train.data import CachedVideo
from colortrack.train.refine_data import RefineDataset, prepare_warps
from colortrack.train.refine_trainer import export_weights, perfect_batch, refine_step, unrolled_loss

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
SMALL = RefinerConfig(widths=(8, 16), dilations=(1, 2))


def _lab(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) Lab."""
    return rgb_to_lab(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)



def test_shapes_and_the_untrained_refiner():
    refiner = Refiner().eval()
    assert sum(p.numel() for p in refiner.parameters()) < 1_000_000
    light = torch.rand(2, 1, 30, 42) * 100
    warped = torch.randn(2, 2, 8, 11) * 20  # per cell: guided up to the frame
    with torch.no_grad():
        guided = refiner.guide(light, warped, torch.rand(2, 1, 8, 11))  # gamma = 0: confidence unused
        out = refiner(light, light, guided, warped, torch.rand(2, 1, 8, 11))  # the gate blends equals
        assert out.shape == (2, 2, 30, 42)
        assert torch.allclose(out, guided, atol=1e-4)
        full = torch.randn(2, 2, 30, 42) * 20  # already at frame size: the residual only, zero untrained
        assert torch.allclose(refiner(light, light, full, full, torch.ones(2, 1, 30, 42)), full, atol=1e-5)
        still = refiner(light, light, torch.zeros(2, 2, 30, 42), guided, torch.rand(2, 1, 8, 11))
        assert (still.abs() < guided.abs() + 1e-4).all()  # nothing moved: partly kept from frame t-1


def test_guided_upsampling_keeps_uniform_cells_and_follows_edges():
    guide = Refiner().guide
    light = torch.full((1, 1, 16, 16), 30.0)
    light[..., 6:] = 70.0  # an edge inside the second cell column (cells of 4 px)
    ab = torch.zeros(1, 2, 16, 16)
    ab[..., 6:] = 40.0
    cells = F.avg_pool2d(ab, 4)  # the edge cell holds a blend
    with torch.no_grad():
        out = guide(light, cells, torch.ones(1, 1, 4, 4))
        bilinear = F.interpolate(cells, size=(16, 16), mode="bilinear", align_corners=False)
        assert (out - ab).abs().mean() < 0.8 * (bilinear - ab).abs().mean()
        flat = torch.full((1, 2, 4, 4), 12.0)
        assert torch.allclose(guide(light, flat, torch.rand(1, 1, 4, 4)), torch.full((1, 2, 16, 16), 12.0))


def _guided_by_gathering(guide, light: torch.Tensor, warped: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """GuidedUpsample's formula with the k*k cells around every pixel copied out one by one."""
    (height, width), (h, w), pad = light.shape[-2:], warped.shape[-2:], guide.kernel // 2
    cells = torch.cat([warped, F.adaptive_avg_pool2d(light, (h, w)), confidence.clamp_min(1e-4).log()], 1)
    cells = F.pad(cells, (pad,) * 4, mode="replicate")
    out = torch.zeros(light.shape[0], 2, height, width)
    for y, x in np.ndindex(height, width):
        cy, cx = min(round((y + 0.5) * h / height - 0.5), h - 1), min(round((x + 0.5) * w / width - 0.5), w - 1)
        logits, values = [], []
        for dy, dx in np.ndindex(guide.kernel, guide.kernel):
            cell = cells[:, :, cy + dy, cx + dx]  # (B, 4)
            distance = (cy + dy - pad - ((y + 0.5) * h / height - 0.5)) ** 2 + (cx + dx - pad - ((x + 0.5) * w / width - 0.5)) ** 2
            logits.append(
                -distance / (2 * guide.log_spatial.exp() ** 2)
                - (light[:, 0, y, x] - cell[:, 2]) ** 2 / (2 * guide.log_range.exp() ** 2)
                + guide.gamma * cell[:, 3]
            )
            values.append(cell[:, :2])
        weights = torch.stack(logits, 1).softmax(1)  # (B, k*k)
        out[:, :, y, x] = (weights[:, :, None] * torch.stack(values, 1)).sum(1)
    return out


@pytest.mark.parametrize("size", [(12, 16), (13, 18)])  # whole cells of 4 px (broadcast blocks), and not
def test_guided_upsampling_equals_gathering_each_pixels_cells(size):
    guide = Refiner().guide
    with torch.no_grad():
        guide.log_spatial.fill_(-0.5), guide.gamma.fill_(0.4)
        generator = torch.Generator().manual_seed(0)
        light = torch.rand(2, 1, *size, generator=generator) * 100
        warped, confidence = torch.randn(2, 2, 3, 4, generator=generator) * 20, torch.rand(2, 1, 3, 4, generator=generator)
        expected = _guided_by_gathering(guide, light, warped, confidence)
        assert torch.allclose(guide(light, warped, confidence), expected, atol=1e-4)


def _batch(lab: torch.Tensor, rng: np.random.Generator, size: int = 32, batch: int = 8, cell: int = 8) -> dict:
    """Samples of frames t-2, t-1, t (see RefineDataset): half with warped ab = true ab per cell at
    confidence 1, half with it blurred over neighbouring cells at confidence 0.5."""
    samples = []
    for index in range(batch):
        t = int(rng.integers(2, len(lab)))
        top, left = (cell * int(rng.integers((n - size) // cell + 1)) for n in lab.shape[-2:])
        clip = lab[t - 2 : t + 1, :, top : top + size, left : left + size]
        ab = clip[:, 1:]
        perfect = index % 2 == 0
        warped = F.avg_pool2d(ab[1:], cell)
        if not perfect:
            warped = F.avg_pool2d(F.pad(warped, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        confidence = torch.full_like(warped[:, :1], 1.0 if perfect else 0.5)
        samples.append({"light": clip[:, :1], "ab": ab, "start": ab[0], "warped": warped, "confidence": confidence})
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def test_gradients_reach_every_parameter():
    video = make_video(num_frames=4, height=32, width=32, num_objects=1, seed=3)
    batch = _batch(_lab(video.frames), np.random.default_rng(0), batch=2)
    batch["confidence"] = torch.rand_like(batch["confidence"])
    torch.manual_seed(0)
    refiner = Refiner(SMALL)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-3)
    refine_step(refiner, optimizer, batch, 1e-3, 0.3)  # moves the zero head off zero
    loss = unrolled_loss(refiner, batch, 0.3)
    loss.backward()
    for name, parameter in refiner.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_trained_refiner_keeps_perfect_colours():
    video = make_video(num_frames=6, height=48, width=64, num_objects=2, seed=1)
    lab = _lab(video.frames)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    refiner = Refiner(SMALL)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-3)
    initial = [p.detach().clone() for p in refiner.parameters()]
    for step in range(30):
        batch = _batch(lab, rng)
        refine_step(refiner, optimizer, perfect_batch(batch) if step % 2 == 0 else batch, 1e-3, 0.3)
    assert all(not torch.equal(a, p) for a, p in zip(initial, refiner.parameters()))
    refiner.eval()
    light, ab = lab[:, :1], lab[:, 1:]
    with torch.no_grad():  # perfect colours at full resolution, full confidence
        kept = refiner(light[2:3], light[3:4], ab[2:3], ab[3:4], torch.ones(1, 1, 48, 64))
    assert (kept - ab[3:4]).abs().mean() < 1.0  # ab units (2.3 is a just noticeable difference)


def test_refine_frames_in_time_order_with_references_kept():
    refiner = Refiner(SMALL).eval()
    num_frames, references = 5, {2: torch.randn(2, 16, 24)}
    lights = [torch.rand(1, 16, 24) * 100 for _ in range(num_frames)]
    warped = [torch.randn(2, 4, 6) for _ in range(num_frames)]
    confidence = [torch.rand(4, 6) for _ in range(num_frames)]
    out = list(refine_frames(refiner, lights, warped, confidence, references))
    assert len(out) == num_frames and all(ab.shape == (2, 16, 24) for ab in out)
    assert torch.equal(out[2], references[2])
    full = [torch.randn(2, 16, 24) for _ in range(num_frames)]  # at frame size: kept by the untrained G
    with torch.no_grad():
        refiner.gate.bias.fill_(-50.0)  # without the temporal gate
    out = list(refine_frames(refiner, lights, full, confidence, references))
    assert all(torch.equal(out[t], full[t]) for t in (0, 1, 3, 4))
    smaller = list(refine_frames(refiner, lights, warped, confidence, references, size=(8, 12)))
    assert all(ab.shape == (2, 8, 12) for ab in smaller)


@pytest.mark.parametrize("method", ["propagate", "reference"])
def test_confidence_leaves_the_colours_unchanged(method):
    torch.manual_seed(0)
    embeddings = [F.normalize(torch.randn(8, 6, 7), dim=0) for _ in range(4)]
    references = {0: torch.randn(2, 6, 7)}
    config = ColorizeConfig.for_method(method, temperature=0.1)
    plain = predict_ab(embeddings, references, config)
    confidence: list = []
    with_confidence = predict_ab(embeddings, references, config, confidence=confidence)
    for a, b in zip(plain, with_confidence):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(confidence[0], torch.ones(6, 7))
    assert all(c.shape == (6, 7) and (c > 0).all() and (c <= 1 + 1e-6).all() for c in confidence)
    with pytest.raises(InputError, match="top-k"):
        predict_ab(embeddings, references, ColorizeConfig.for_method(method, topk=None), confidence=[])


def test_warped_training_set_is_made_once(tmp_path):
    video = make_video(num_frames=6, height=40, width=48, num_objects=1, seed=2)
    cache = tmp_path / "clip.npy"
    np.save(cache, video.frames)
    videos = [CachedVideo("clip", str(cache), 6, 40, 48)]
    colorizer = Colorizer(LuminancePatchEmbedder(), ColorizeConfig.for_method("propagate"), CPU)
    segments = prepare_warps(videos, tmp_path / "run", colorizer, length=4, per_video=2)
    assert [s.start for s in segments] == [0, 2]
    stamps = [(tmp_path / "run" / "warps" / s.file).stat().st_mtime_ns for s in segments]
    again = prepare_warps(videos, tmp_path / "run", colorizer, length=4, per_video=2)
    assert [(tmp_path / "run" / "warps" / s.file).stat().st_mtime_ns for s in again] == stamps
    dataset = RefineDataset(segments, crop_size=16, hflip=True, seed=0, cell=8)
    sample = dataset[7]
    assert sample["light"].shape == (3, 1, 16, 16) and sample["ab"].shape == (3, 2, 16, 16)
    assert sample["start"].shape == (2, 16, 16)
    assert sample["warped"].shape == (2, 2, 2, 2) and sample["confidence"].shape == (2, 1, 2, 2)
    assert torch.equal(sample["light"], RefineDataset(segments, 16, True, seed=0, cell=8)[7]["light"])


def test_exported_weights_load_strictly(tmp_path):
    from colortrack.models.refiner import FORMAT
    from colortrack.train.checkpoint import save_checkpoint

    refiner = Refiner(SMALL)
    meta = {"format": FORMAT, "train_config": {}, "refiner_config": SMALL.to_dict()}
    save_checkpoint(tmp_path / "run", 5, refiner, meta, {})
    weights = export_weights(tmp_path / "run", tmp_path / "w" / "refiner.safetensors")
    assert json.loads(weights.with_suffix(".json").read_text())["step"] == 5
    loaded = load_refiner(weights)
    assert loaded.config == SMALL and load_refiner(tmp_path / "run").config == SMALL
    description = json.loads(weights.with_suffix(".json").read_text())
    description["refiner_config"]["widths"] = [8, 32]
    weights.with_suffix(".json").write_text(json.dumps(description))
    with pytest.raises(InputError, match="do not match"):
        load_refiner(weights)


def test_methods_and_cli_errors(tmp_path, capsys):
    assert check_methods(["propagate+refine", "spatiotemporal+inst+refine"])
    with pytest.raises(InputError, match="unknown method"):
        check_methods(["flow+refine"])
    assert main(["train-refiner", "--out", str(tmp_path / "r"), "--data", str(tmp_path), "--perfect", "2"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["train-refiner", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.fixture
def exported(tmp_path):
    from colortrack.models.refiner import FORMAT
    from colortrack.train.checkpoint import save_checkpoint

    meta = {"format": FORMAT, "train_config": {}, "refiner_config": SMALL.to_dict()}
    save_checkpoint(tmp_path / "refiner-run", 1, Refiner(SMALL), meta, {})
    return export_weights(tmp_path / "refiner-run", tmp_path / "weights" / "refiner.safetensors")


def test_eval_and_colorize_with_refinement(tmp_path, exported):
    from colortrack.io.masks import write_mask
    from colortrack.io.video import VideoReader, write_frames_png, write_video

    video = make_video(num_frames=4, height=32, width=48, num_objects=1, seed=4)
    root = tmp_path / "davis"
    write_frames_png(root / "JPEGImages" / "480p" / "alpha", video.frames)
    for index, mask in enumerate(video.masks):
        write_mask(root / "Annotations" / "480p" / "alpha" / f"{index:05d}.png", mask)
    argv = ["eval", "colorize", "--root", str(root), "--out", str(tmp_path / "eval"), "--quiet"]
    assert main([*argv, "--method", "propagate,propagate+refine", "--refiner", str(exported)]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    plain, refined = results["methods"]["propagate"], results["methods"]["propagate+refine"]
    assert abs(plain["psnr"] - refined["psnr"]) < 0.5  # an untrained refiner keeps the warped colours
    write_video(tmp_path / "clip.mp4", video.frames, fps=10)
    from PIL import Image

    Image.fromarray(video.frames[0]).save(tmp_path / "ref.png")
    out = tmp_path / "out.mp4"
    colorize = ["colorize", str(tmp_path / "clip.mp4"), "--ref", str(tmp_path / "ref.png"), "--out", str(out), "--quiet"]
    assert main([*colorize, "--refine", "--refiner", str(exported)]) == 0
    assert VideoReader(out).info.num_frames == 4
    assert json.loads(out.with_suffix(".json").read_text())["refiner"] == str(exported)
    assert main([*colorize, "--refine", "--refiner", str(tmp_path / "missing")]) == 2
    assert main(colorize) == 0  # refinement is on by default, with the shipped weights
    assert json.loads(out.with_suffix(".json").read_text())["refiner"] == "refiner"
    assert main([*colorize, "--no-refine"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["refiner"] is None


def test_shipped_refiner_loads_strictly():
    from colortrack.models.refiner import SHIPPED, shipped_weights

    description = json.loads(shipped_weights().with_suffix(".json").read_text())
    refiner = load_refiner(SHIPPED)
    assert refiner.config == RefinerConfig.from_dict(description["refiner_config"])
    assert shipped_weights().stat().st_size < 2_000_000


def test_resumed_training_reaches_the_same_weights(tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    from colortrack.io.video import write_frames_png
    from colortrack.train.refine_trainer import RefineTrainConfig, train_refiner

    video = make_video(num_frames=5, height=32, width=48, num_objects=1, seed=5)
    write_frames_png(tmp_path / "data" / "clip", video.frames)
    base = RefineTrainConfig(
        data=[str(tmp_path / "data")], refiner=SMALL, short_side=None, cache_short_side=32, fps=24.0,
        segment_frames=4, steps=4, batch_size=2, crop_size=16, perfect=0.5, checkpoint_every=2, log_every=1,
        device="cpu", progress=False,
    )
    straight, _, _ = train_refiner(replace(base, out=str(tmp_path / "straight")))
    train_refiner(replace(base, out=str(tmp_path / "split"), steps=2))
    resumed, step, _ = train_refiner(replace(base, out=str(tmp_path / "split")), resume=True)
    assert step == 4
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)


def _ddp_worker(rank: int, world_size: int, port: int, config) -> None:
    import os

    from colortrack.train.refine_trainer import train_refiner

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    train_refiner(config)


def test_two_process_gloo_ddp_run(tmp_path):
    import socket

    import torch.multiprocessing as mp

    from colortrack.io.video import write_frames_png
    from colortrack.train import checkpoint as ckpt
    from colortrack.train.refine_trainer import RefineTrainConfig

    video = make_video(num_frames=5, height=32, width=48, num_objects=1, seed=6)
    write_frames_png(tmp_path / "data" / "clip", video.frames)
    config = RefineTrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "ddp"), refiner=SMALL, short_side=None,
        cache_short_side=32, fps=24.0, segment_frames=4, steps=3, batch_size=2, crop_size=16, log_every=1,
        device="cpu", progress=False,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, config), nprocs=2, join=True)
    assert ckpt.latest_checkpoint(tmp_path / "ddp").name == "step_000003"
    rows = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert len(rows) == 4  # header and steps 1-3: written once, by rank 0
