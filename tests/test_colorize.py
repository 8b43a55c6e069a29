"""Video colourization: exact recolouring with ideal embeddings, restrictions, metrics, the CLI."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from colortrack.cli.main import main
from colortrack.tasks.colorize import (
    ColorizeConfig,
    Colorizer,
    _Maps,
    FrameSteps,
    _sweep,
    chrominance,
    compose,
    lightness,
    parse_reference,
    predict_ab,
    to_gray,
)
from colortrack.models.embedders.gray import LuminancePatchEmbedder
from colortrack.errors import InputError
from colortrack.io.masks import write_mask
from colortrack.io.video import VideoReader, write_frames_png, write_video
from colortrack.core.lab import lab_to_rgb, rgb_to_lab
from colortrack.eval.metrics.color import (
    PSNR_CAP,
    ColorScores,
    outlier_curve,
    outlier_percent,
    pixel_errors,
    psnr,
    rgb_to_ab,
)
from colortrack.demo.synthetic import make_video

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- an ideal embedder


def panning_texture(height=12, width=24, num_frames=5, shift=3, seed=0):
    """A wide texture panned right by ``shift`` px per frame, never wrapping. Every texture column
    has its own lightness (per row), colours are random: content is identifiable from L alone.
    Returns frames (T, H, W, 3) uint8 and the per-row lightness of every texture column."""
    rng = np.random.default_rng(seed)
    texture_width = width + (num_frames - 1) * shift
    level = 20.0 + 70.0 * np.arange(texture_width) / texture_width  # 1.9 L apart
    lab = np.stack(
        [np.broadcast_to(level, (height, texture_width)), *rng.uniform(-25, 25, (2, height, texture_width))]
    )
    texture = (lab_to_rgb(torch.from_numpy(lab).float()) * 255).round().byte().permute(1, 2, 0).numpy()
    table = rgb_to_lab(torch.from_numpy(texture).permute(2, 0, 1).float() / 255)[0]  # (H, Wt) actual L
    starts = [(num_frames - 1 - t) * shift for t in range(num_frames)]
    frames = np.stack([texture[:, s : s + width] for s in starts])
    return frames, table


class PositionCodeEmbedder:
    """Ideal embeddings: one-hot of each pixel's texture position (row, column decoded from L)."""

    stride = 1

    def __init__(self, table: torch.Tensor):
        self.table = table  # (H, Wt)

    def encode(self, frames):
        light = rgb_to_lab(frames.float())[:, 0]  # (T, H, W)
        height, texture_width = self.table.shape
        column = (light[..., None] - self.table[None, :, None, :]).abs().argmin(dim=-1)  # (T, H, W)
        code = torch.arange(height)[None, :, None] * texture_width + column
        return torch.nn.functional.one_hot(code, height * texture_width).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def panning():
    frames, table = panning_texture()
    return frames, PositionCodeEmbedder(table)


@pytest.mark.parametrize("method", ["propagate", "reference", "spatiotemporal"])
def test_ideal_embeddings_recolorize_exactly(panning, method):
    frames, embedder = panning
    last = len(frames) - 1
    # propagate's window must reach the last frame's copy of content new since the first (9 px)
    overrides = {"radius": 12} if method == "propagate" else {}
    colorizer = Colorizer(embedder, ColorizeConfig.for_method(method, **overrides), CPU)
    gray = [to_gray(frame) for frame in frames]
    out = np.stack(list(colorizer.colorize(frames, {0: frames[0], last: frames[last]})))
    # every pixel's colour exists in the first or the last frame and is found exactly
    assert np.abs(out.astype(int) - frames.astype(int)).max() <= 1
    # the same from the gray version of the video (its L is rounded to uint8 gray levels)
    from_gray = np.stack(list(colorizer.colorize(gray, {0: frames[0], last: frames[last]})))
    assert np.abs(from_gray.astype(int) - frames.astype(int)).max() <= 2


def test_predicted_ab_equals_the_true_ab_per_cell(panning):
    frames, embedder = panning
    colorizer = Colorizer(embedder, ColorizeConfig.for_method("propagate", radius=12), CPU)
    embeddings = [colorizer.embed(lightness(frame)) for frame in frames]
    truth = [chrominance(frame) for frame in frames]
    predicted = predict_ab(embeddings, {0: truth[0], 4: truth[4]}, colorizer.config)
    for t in range(len(frames)):
        assert torch.allclose(predicted[t], truth[t], atol=1e-3)


def test_dense_tracking_maps_follow_the_motion(panning):
    """With one-to-one embeddings the "where am I" map of every target pixel is one-hot on its true
    position in the reference: 3 px to the left per frame after it (the texture pans right)."""
    frames, embedder = panning
    colorizer = Colorizer(embedder, ColorizeConfig.for_method("spatiotemporal"), CPU)
    embeddings = [colorizer.embed(lightness(frame)) for frame in frames]
    height, width = frames.shape[1:3]
    config = colorizer.config.spatiotemporal
    steps = list(_sweep(FrameSteps(embeddings, config.track), [0], range(len(frames)), config, height * width))
    t, found = steps[2]
    targets, refs = found[0]
    ty, tx = targets // width, targets % width
    ry, rx = refs // width, refs % width
    assert torch.equal(ry, ty) and torch.equal(rx, tx - 6)
    assert set((tx >= 6).nonzero().flatten().tolist()) == set(range(len(tx)))  # new content: no candidate
    assert len(tx) == height * (width - 6)


def test_maps_on_a_hand_built_chain():
    """Three cells; one step of B (rows: cells of the current frame, their top-2 in the next)."""
    maps = _Maps.identity(3, CPU)
    indices = torch.tensor([[0, 1], [1, 2], [2, 0]])
    weights = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.15, 0.85]])
    from colortrack.tasks.colorize import SpatiotemporalConfig

    config = SpatiotemporalConfig(keep=8, prune=0.0, threshold=0.2, relative=False, max_candidates=8)
    maps = maps.advance(weights, indices, 3, config)
    dense = torch.zeros(3, 3)  # dense[reference cell, next cell]
    dense[maps.rows, maps.cols] = maps.values
    assert torch.allclose(dense, weights.new_zeros(3, 3).scatter_(1, indices, weights))
    targets, refs = maps.candidates(config)
    chosen = set(zip(targets.tolist(), refs.tolist()))
    assert chosen == {(0, 0), (1, 1), (2, 1), (0, 2)}  # values >= 0.2: (ref 0 -> 0: .9), (1 -> 1: .5) ...
    relative = SpatiotemporalConfig(keep=8, prune=0.0, threshold=0.2, relative=True, max_candidates=1)
    targets, refs = maps.candidates(relative)
    assert dict(zip(targets.tolist(), refs.tolist())) == {0: 0, 1: 1, 2: 1}  # the largest only


def test_instances_keep_colours_within_objects():
    """Left and right halves have the same gray texture but different colours: only the instance
    masks tell them apart."""
    rng = np.random.default_rng(0)
    height, width = 24, 48
    light = np.tile(rng.uniform(30, 70, (height, width // 2)), (1, 2))
    a = np.where(np.arange(width) < width // 2, 30.0, -30.0)[None].repeat(height, 0)
    lab = torch.from_numpy(np.stack([light, a, np.zeros_like(a)])).float()
    frame = (lab_to_rgb(lab) * 255).round().byte().permute(1, 2, 0).numpy()
    frames = np.stack([frame] * 3)
    mask = np.zeros((height, width), np.uint8)
    mask[:, width // 2 :] = 1
    colorizer = Colorizer(LuminancePatchEmbedder(stride=4, cell=2), ColorizeConfig.for_method("reference"), CPU)
    plain = np.stack(list(colorizer.colorize(frames, {0: frame})))
    restricted = np.stack(list(colorizer.colorize(frames, {0: frame}, instances=(0, mask))))
    inner = (slice(None), slice(None), slice(4, -4))
    truth_a = rgb_to_ab(frame)[..., 0]
    assert np.abs(rgb_to_ab(restricted[2])[..., 0] - truth_a)[inner[1:]].mean() < 3
    assert np.abs(rgb_to_ab(plain[2])[..., 0] - truth_a)[inner[1:]].mean() > 10


def test_gray_and_colour_inputs_give_the_same_output():
    video = make_video(num_frames=4, height=32, width=48, num_objects=1, seed=1)
    colorizer = Colorizer(LuminancePatchEmbedder(), ColorizeConfig.for_method("spatiotemporal"), CPU)
    references = {0: video.frames[0]}
    from_colour = np.stack(list(colorizer.colorize(video.frames, references))).astype(int)
    from_gray = np.stack(list(colorizer.colorize([to_gray(f) for f in video.frames], references))).astype(int)
    assert np.abs(from_colour - from_gray).max() <= 2
    assert np.abs(from_colour - from_gray).mean() < 0.5
    gray = to_gray(video.frames[1])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert torch.allclose(lightness(gray), lightness(video.frames[1]), atol=0.5)


def test_gray_embedder_only_sees_luminance():
    video = make_video(num_frames=1, height=32, width=48, seed=2)
    embedder = LuminancePatchEmbedder()
    rgb = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255
    lab = rgb_to_lab(rgb)
    gray = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))
    assert torch.allclose(embedder.encode(rgb), embedder.encode(gray), atol=1e-4)
    assert embedder.encode(rgb).shape == (1, 27, 4, 6)


def test_compose_keeps_full_resolution_lightness():
    frame = make_video(num_frames=1, height=16, width=24, seed=3).frames[0]
    ab = torch.nn.functional.adaptive_avg_pool2d(chrominance(frame), (2, 3))
    out = compose(lightness(frame), ab)
    assert out.shape == frame.shape
    assert torch.allclose(lightness(out), lightness(frame), atol=1.5)


# ----------------------------------------------------------------------------- metrics


def test_psnr_of_a_known_error():
    truth = np.full((4, 5, 3), 100, np.uint8)
    pred = truth + 5
    assert psnr(pred, truth) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(truth, truth) == math.inf
    mask = np.zeros((4, 5), bool)
    mask[0, 0] = True
    pred[0, 0] = [110, 100, 100]  # only this pixel is scored: MSE = 100 / 3
    assert psnr(pred, truth, mask) == pytest.approx(10 * math.log10(255**2 * 3 / 100))
    assert math.isnan(psnr(pred, truth, np.zeros((4, 5), bool)))


def test_outliers_on_a_hand_made_image():
    truth = np.zeros((10, 10, 3), np.uint8)
    pred = truth.copy()
    pred.reshape(-1, 3)[:7] = [0, 17, 0]  # max error 17 > 16
    pred.reshape(-1, 3)[7:10] = [16, 16, 16]  # max error 16: not an outlier; its L2 is 27.7
    assert outlier_percent(pred, truth) == pytest.approx(7.0)
    assert outlier_percent(pred, truth, norm="l2") == pytest.approx(10.0)
    assert outlier_percent(pred, truth, threshold=27, norm="l2") == pytest.approx(3.0)
    assert outlier_percent(pred, truth, threshold=28, norm="l2") == pytest.approx(0.0)
    np.testing.assert_allclose(outlier_curve(pred, truth, thresholds=[0, 15, 16, 17]), [10, 10, 7, 0])
    assert pixel_errors(pred, truth, "l2").reshape(-1)[7] == 28  # ceil(16 * sqrt(3))
    inside = np.zeros((10, 10), bool)
    inside[0, :5] = True
    assert outlier_percent(pred, truth, mask=inside) == pytest.approx(100.0)
    assert outlier_percent(pred, truth, mask=~inside) == pytest.approx(200 / 95)


def test_sequence_scores_and_flicker():
    truth = np.full((3, 4, 4, 3), 120, np.uint8)  # a steady gray video
    red, green = np.array([150, 110, 110], np.uint8), np.array([110, 140, 110], np.uint8)
    pred = np.stack([truth[0], np.broadcast_to(red, (4, 4, 3)), np.broadcast_to(green, (4, 4, 3))])
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    scores = ColorScores()
    for t in range(3):
        scores.add(pred[t], truth[t], mask, scored=t > 0)
    summary = scores.summary()
    assert summary["frames"] == 2
    expected_psnr = np.mean([psnr(pred[t], truth[t]) for t in (1, 2)])
    assert summary["psnr"] == pytest.approx(expected_psnr)
    assert summary["psnr_inside"] == pytest.approx(expected_psnr)
    assert summary["outliers"] == pytest.approx(100.0)  # every pixel off by 30
    jump1 = np.linalg.norm(rgb_to_ab(pred[1])[0, 0] - rgb_to_ab(pred[0])[0, 0])
    jump2 = np.linalg.norm(rgb_to_ab(pred[2])[0, 0] - rgb_to_ab(pred[1])[0, 0])
    assert summary["flicker_true"] == pytest.approx(0.0, abs=1e-4)
    assert summary["flicker"] == pytest.approx((jump1 + jump2) / 2, rel=1e-4)
    assert summary["curve"]["16"] == pytest.approx(100.0) and summary["curve"]["32"] == 0.0


def test_sequence_scores_of_regions_equal_the_frame_metrics():
    """Scores pooled in one pass of bincounts give each region's PSNR and outliers as the plain
    functions compute them; a mask that empties a region leaves that frame out of it."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 256, (4, 12, 10, 3), dtype=np.uint8)
    pred = np.clip(truth.astype(int) + rng.integers(-40, 40, truth.shape), 0, 255).astype(np.uint8)
    masks = rng.random((4, 12, 10)) > 0.5
    masks[2] = True  # nothing outside on frame 2
    for norm in ("max", "l2"):
        scores = ColorScores(norm=norm)
        for t in range(4):
            scores.add(pred[t], truth[t], masks[t], truth_ab=rgb_to_ab(truth[t]) if t % 2 else None)
        summary = scores.summary()
        assert summary["psnr_inside"] == pytest.approx(np.mean([psnr(p, q, m) for p, q, m in zip(pred, truth, masks)]))
        outside = [psnr(pred[t], truth[t], ~masks[t]) for t in (0, 1, 3)]
        assert summary["psnr_outside"] == pytest.approx(np.mean(outside))
        assert summary["outliers_inside"] == pytest.approx(outlier_percent(pred, truth, norm=norm, mask=masks))
        frame = [outlier_percent(p, q, norm=norm) for p, q in zip(pred, truth)]
        assert summary["outliers_by_frame"] == pytest.approx(frame)


def test_ab_of_uint8_frames_equals_the_lab_conversion():
    frame = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    lab = rgb_to_lab(torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0)
    assert np.abs(rgb_to_ab(frame) - lab[1:].permute(1, 2, 0).numpy()).max() < 1e-3


def test_frames_are_shrunk_to_a_short_side_and_masks_keep_their_ids():
    from colortrack.eval.colorize import at_short_side

    frames = np.zeros((2, 60, 100, 3), np.uint8)
    frames[:, :, 50:] = 200
    masks = np.zeros((2, 60, 100), np.uint8)
    masks[:, 30:, :] = 3
    masks[:, :, 98:] = 255
    small, small_masks = at_short_side(frames, masks, 30)
    assert small.shape == (2, 30, 50, 3) and small_masks.shape == (2, 30, 50)
    assert set(np.unique(small_masks)) == {0, 3, 255} and small[0, 0, 0, 0] == 0 and small[0, 0, -1, 0] == 200
    assert at_short_side(frames, masks, 60)[0] is frames and at_short_side(frames, masks, None)[1] is masks


def test_the_shared_grid_scores_each_setting_and_method_as_colourized_alone(davis_root, tmp_path):
    """Four reference settings of a sequence at once (frames embedded once, instances tracked once
    per first reference, dense tracking shared, the plain attention's confidence reused) score as
    each method colourized on its own by the public Colorizer."""
    from colortrack.eval.colorize import REFERENCE_SETTINGS, reference_frames, run_colorize_grid
    from colortrack.io.davis import DavisDataset
    from colortrack.models.refiner import load_refiner
    from colortrack.tasks.colorize import colorize_overrides, make_embedder

    dataset = DavisDataset(davis_root, sequences=["beta"])
    methods = ["reference", "reference+inst+refine", "spatiotemporal", "spatiotemporal+inst", "spatiotemporal+inst+refine"]
    folders = {tmp_path / refs: refs for refs in REFERENCE_SETTINGS}
    overrides = colorize_overrides("model")
    grid = run_colorize_grid(dataset, folders, methods, "model", CPU, overrides, None, refiner="refiner", progress=False)
    frames, masks = dataset["beta"].read_frames(), dataset["beta"].read_masks()
    embedder, refiner = make_embedder("model", CPU), load_refiner("refiner", CPU)
    for folder, refs in folders.items():
        references = reference_frames(refs, len(frames))
        for name in methods:
            config = ColorizeConfig.for_method(name.split("+")[0], **overrides)
            colorizer = Colorizer(embedder, config, CPU, refiner if name.endswith("+refine") else None)
            instances = (references[0], masks[references[0]]) if "+inst" in name else None
            colourized = colorizer.colorize(frames, {t: frames[t] for t in references}, instances)
            alone = ColorScores()
            for t, (frame, image) in enumerate(zip(frames, colourized)):
                alone.add(image, frame, (masks[t] > 0) & (masks[t] != 255), scored=t not in references)
            shared = grid[folder]["sequences"]["beta"][name]
            for key, value in alone.summary().items():
                assert shared[key] == pytest.approx(value, abs=1e-9), (refs, name, key)


# ----------------------------------------------------------------------------- command line


def test_parse_reference():
    assert parse_reference("a/b.png") == (__import__("pathlib").Path("a/b.png"), 0)
    assert parse_reference("a/b@x.png@12") == (__import__("pathlib").Path("a/b@x.png"), 12)
    with pytest.raises(InputError):
        parse_reference("a/b.png@one")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("colorize")
    video = make_video(num_frames=6, height=48, width=64, num_objects=1, seed=5)
    write_video(folder / "video.mp4", np.stack([to_gray(f) for f in video.frames]), video.fps)
    Image.fromarray(video.frames[0]).save(folder / "ref0.png")
    Image.fromarray(video.frames[3]).save(folder / "ref3.png")
    Image.fromarray(video.frames[0][:40]).save(folder / "small.png")
    write_mask(folder / "objects.png", video.masks[3])
    return folder, video


def test_cli_colorizes_a_gray_video(clip, tmp_path):
    folder, video = clip
    out, frames_dir = tmp_path / "out.mp4", tmp_path / "frames"
    argv = ["colorize", str(folder / "video.mp4"), "--ref", str(folder / "ref0.png"), "--ref", f"{folder / 'ref3.png'}@3"]
    argv += ["--out", str(out), "--frames-dir", str(frames_dir), "--method", "spatiotemporal", "--quiet"]
    assert main([*argv, "--instances", f"{folder / 'objects.png'}@3"]) == 0
    assert VideoReader(out).info.num_frames == 6
    written = sorted(frames_dir.glob("*.png"))
    assert [p.name for p in written] == [f"{t:05d}.png" for t in range(6)]
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["colorize"]["method"] == "spatiotemporal" and settings["references"].keys() == {"0", "3"}
    for t in (0, 3):  # reference frames (no @ means frame 0) carry their reference's colours
        got = np.asarray(Image.open(written[t]).convert("RGB")).astype(int)
        assert np.abs(got - video.frames[t].astype(int)).mean() < 3
    plain = np.asarray(Image.open(written[1]).convert("RGB"))
    assert np.abs(rgb_to_ab(plain)).mean() > 3  # coloured, not gray


def test_cli_rejects_a_reference_of_another_size(clip, tmp_path, capsys):
    folder, _ = clip
    argv = ["colorize", str(folder / "video.mp4"), "--ref", str(folder / "small.png"), "--out", str(tmp_path / "o.mp4")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "small.png" in err and "64x40" in err
    assert main([*argv[:3], f"{folder / 'ref0.png'}@9", *argv[4:]]) == 2
    assert "past the video's last frame" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_eval_colorize_measures_methods_and_baselines(tmp_path):
    root = tmp_path / "davis"
    moving = make_video(num_frames=5, height=32, width=48, num_objects=1, seed=1)
    scenes = [make_video(num_frames=1, height=32, width=48, num_objects=1, seed=seed).frames[0] for seed in (2, 3)]
    cut = np.stack([scenes[0]] * 3 + [scenes[1]] * 2)  # two still shots: frames 1, 2 nearest frame 0, 3 frame 4
    for name, frames in (("moving", moving.frames), ("cut", cut)):
        write_frames_png(root / "JPEGImages" / "480p" / name, frames)
        for index in range(5):
            write_mask(root / "Annotations" / "480p" / name / f"{index:05d}.png", moving.masks[index])
    out = tmp_path / "eval"
    argv = ["eval", "colorize", "--root", str(root), "--refs", "first+last", "--out", str(out), "--quiet"]
    assert main([*argv, "--method", "propagate,spatiotemporal+inst"]) == 0
    results = json.loads((out / "results.json").read_text())
    methods = ["propagate", "spatiotemporal+inst", "copy", "flow", "cells"]
    assert list(results["methods"]) == methods and set(results["sequences"]) == {"moving", "cut"}
    per_sequence = results["sequences"]
    for name in methods:
        assert results["methods"][name]["frames"] == 3  # the two references are not scored
        for key in ("psnr", "outliers"):
            mean = (per_sequence["moving"][name][key] + per_sequence["cut"][name][key]) / 2
            assert results["methods"][name][key] == pytest.approx(mean)
    # copying the nearest reference's colours is exact on still shots and wrong where things move
    assert per_sequence["cut"]["copy"]["psnr"] == PSNR_CAP and per_sequence["cut"]["copy"]["outliers"] == 0
    assert per_sequence["moving"]["copy"]["psnr"] < PSNR_CAP and per_sequence["moving"]["copy"]["outliers"] > 0
    assert main([*argv, "--method", "reference"]) == 2  # another configuration in the same folder


def test_a_trained_colorizer_carries_instances_on_the_embedding_its_colours_use():
    from colortrack.models.registry import load_model, trained_weights

    colorizer = Colorizer(load_model(trained_weights("model"), CPU), ColorizeConfig.for_method("spatiotemporal"), CPU)
    config = colorizer.instance_tracker().config
    assert (config.fine_weight, config.embed_dims, config.memory.recent) == (0.0, None, 7)
