"""Beyond one process: batch jobs shared between torchrun ranks (each item once, failures kept
apart, results equal to one process), sharded training data and multi-rank training from it."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from colortrack.cli.main import main
from colortrack.demo.synthetic import make_video
from colortrack.io.davis import write_sequence
from colortrack.scale.ranks import Ranks
from colortrack.scale.share import recorded_failures, run_shared, without_timing


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    """Three short sequences in the DAVIS layout (one with two objects)."""
    root = tmp_path_factory.mktemp("davis")
    for name, objects, seed in (("alpha", 1, 1), ("beta", 2, 2), ("gamma", 1, 3)):
        video = make_video(num_frames=6, height=48, width=64, num_objects=objects, seed=seed)
        write_sequence(root, name, video.frames, video.masks)
    return root


def eval_davis(root: Path, out: Path, *extra: str) -> int:
    return main(["eval", "davis", "--root", str(root), "--method", "color", "--out", str(out), "--quiet", *extra])


def test_eval_davis_with_two_workers_equals_one_process(davis_root: Path, tmp_path: Path) -> None:
    assert eval_davis(davis_root, tmp_path / "one") == 0
    assert eval_davis(davis_root, tmp_path / "two", "--workers", "2") == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert without_timing(two) == without_timing(one)
    assert [run["name"] for run in two["timing"]] == ["alpha", "beta", "gamma"]
    for mask in sorted((tmp_path / "one").glob("*/*.png")):
        assert (tmp_path / "two" / mask.relative_to(tmp_path / "one")).read_bytes() == mask.read_bytes()


def test_eval_colorize_with_two_workers_equals_one_process(davis_root: Path, tmp_path: Path) -> None:
    results = []
    for out, extra in ((tmp_path / "one", []), (tmp_path / "two", ["--workers", "2"])):
        argv = ["eval", "colorize", "--root", str(davis_root), "--embedder", "gray", "--out", str(out), "--quiet"]
        assert main([*argv, *extra]) == 0
        results.append(json.loads((out / "results.json").read_text()))
    assert without_timing(results[1]) == without_timing(results[0])
    assert list(results[1]["sequences"]) == ["alpha", "beta", "gamma"]


def _failing_rank(rank: int, world_size: int, port: int, root: Path, out: Path) -> None:
    """A torchrun-like rank whose tracking of 'beta' always fails (as a video that kills the decoder would)."""
    import colortrack.eval.davis as davis

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    track = davis._track_sequence

    def failing(propagator, sequence, masks, out_dir):
        if sequence.name == "beta":
            raise RuntimeError("decoder crashed")
        return track(propagator, sequence, masks, out_dir)

    davis._track_sequence = failing
    assert eval_davis(root, out) == 0


def test_a_failing_sequence_is_reported_and_the_others_finish(davis_root: Path, tmp_path: Path) -> None:
    mp.spawn(_failing_rank, args=(2, free_port(), davis_root, tmp_path / "out"), nprocs=2, join=True)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted({row["sequence"] for row in results["sequences"]}) == ["alpha", "gamma"]
    assert results["failed"] == [{"name": "beta", "error": "RuntimeError: decoder crashed", "attempts": 2}]
    assert not (tmp_path / "out" / "beta").exists() or not any((tmp_path / "out" / "beta").iterdir())
    assert eval_davis(davis_root, tmp_path / "out") == 0  # resumed in one process: beta now tracked, the rest reused
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "failed" not in results and sorted({row["sequence"] for row in results["sequences"]}) == ["alpha", "beta", "gamma"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_item_is_done_once_by_its_rank_and_retried_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Ranks, "barrier", lambda self: None)  # one process plays rank 1 of 2
    done: list[str] = []
    calls: dict[str, int] = {}

    def work(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1
        if name == "c" and calls[name] == 1:
            raise RuntimeError("flaky")
        if name == "e":
            raise ValueError("always\nbroken")
        done.append(name)

    items = ["a", "b", "c", "d", "e"]
    rank1 = Ranks(1, 2, torch.device("cpu"))
    out = tmp_path
    assert run_shared(items, work, str, out, rank1, progress=False) == []
    assert done == ["b", "d"]
    rank0 = Ranks(0, 1, torch.device("cpu"))
    failures = run_shared(items, work, str, out, rank0, progress=False)
    assert done == ["b", "d", "a", "b", "c", "d"] and calls["c"] == 2
    assert [(f.name, f.error, f.attempts) for f in failures] == [("e", "ValueError: always", 2)]
    assert recorded_failures(out) == failures


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Two short videos with their first-frame masks and colour references, and a manifest of them."""
    from colortrack.io.masks import write_mask
    from colortrack.io.video import write_frames_png, write_video

    folder = tmp_path_factory.mktemp("videos")
    for name, seed in (("one", 5), ("two", 6)):
        video = make_video(num_frames=6, height=48, width=64, num_objects=2, seed=seed)
        write_video(folder / f"{name}.mp4", video.frames, video.fps)
        write_mask(folder / f"{name}.png", video.masks[0])
        write_frames_png(folder / f"{name}-ref", video.frames[:1])
    return folder


def test_track_manifest_with_two_workers_equals_one_video_at_a_time(videos: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.csv"
    rows = [f"{videos / name}.mp4,{videos / name}.png,{name}" for name in ("one", "two")]
    manifest.write_text("video,mask,name\n" + "\n".join([*rows, "missing.mp4,missing.png,ghost"]) + "\n")
    common = ["--method", "color", "--no-overlay", "--quiet"]
    assert main(["track", "--manifest", str(manifest), "--out", str(tmp_path / "batch"), "--workers", "2", *common]) == 1
    batch = json.loads((tmp_path / "batch" / "batch.json").read_text())
    assert [(video["name"], video["failed"]) for video in batch["videos"]] == [("one", False), ("two", False), ("ghost", True)]
    for name in ("one", "two"):
        single = tmp_path / "single" / name
        assert main(["track", str(videos / f"{name}.mp4"), "--mask", str(videos / f"{name}.png"), "--out", str(single), *common]) == 0
        masks = sorted((single / "masks").glob("*.png"))
        assert len(masks) == 6
        for mask in masks:
            assert (tmp_path / "batch" / name / "masks" / mask.name).read_bytes() == mask.read_bytes()


def test_colorize_manifest_resumes_and_equals_one_video(videos: Path, tmp_path: Path) -> None:
    from colortrack.io.video import VideoReader

    manifest = tmp_path / "jobs.csv"
    manifest.write_text("video,ref\n" + "".join(f"{videos / n}.mp4,{videos / n}-ref/00000.png@0\n" for n in ("one", "two")))
    common = ["--embedder", "gray", "--quiet"]
    assert main(["colorize", "--manifest", str(manifest), "--out", str(tmp_path / "batch"), *common]) == 0
    first = (tmp_path / "batch" / "one.mp4").stat().st_mtime_ns
    assert main(["colorize", "--manifest", str(manifest), "--out", str(tmp_path / "batch"), *common]) == 0
    assert (tmp_path / "batch" / "one.mp4").stat().st_mtime_ns == first  # finished videos are kept
    single = tmp_path / "two.mp4"
    assert main(["colorize", str(videos / "two.mp4"), "--ref", f"{videos / 'two-ref' / '00000.png'}@0", "--out", str(single), *common]) == 0
    expected = np.stack(list(VideoReader(single)))
    np.testing.assert_array_equal(np.stack(list(VideoReader(tmp_path / "batch" / "two.mp4"))), expected)


# ----------------------------------------------------------------------------------- shards
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two synthetic colour videos, as in tests/test_train.py: a frame folder and an mp4."""
    from colortrack.io.video import write_frames_png, write_video

    root = tmp_path_factory.mktemp("corpus")
    write_frames_png(root / "clips" / "a", make_video(num_frames=40, height=64, width=64, seed=0).frames)
    write_video(root / "b.mp4", make_video(num_frames=40, height=64, width=64, seed=1).frames, fps=24)
    return root


def test_cut_chunks_joins_a_short_tail() -> None:
    from colortrack.train.shards import cut_chunks

    assert cut_chunks(70, 32) == [slice(0, 32), slice(32, 70)]
    assert cut_chunks(80, 32) == [slice(0, 32), slice(32, 64), slice(64, 80)]
    assert cut_chunks(10, 32) == [slice(0, 10)]


def test_lossless_whole_video_shards_draw_the_clips_of_the_cache(corpus: Path, tmp_path: Path) -> None:
    """With PNG frames and chunks as long as the videos, a chunk is a cached video: same draws."""
    from colortrack.train.data import ClipConfig, ClipDataset, find_videos, prepare_cache, sample_ab
    from colortrack.train.shard_format import ShardConfig
    from colortrack.train.shards import ShardReader, prepare_shards

    sources = find_videos([corpus])
    cached = prepare_cache(sources, tmp_path / "cache", short_side=48, fps=12, min_frames=4)
    config = ShardConfig(short_side=48, fps=12, chunk_frames=1000, videos_per_shard=1, image_format="png")
    prepare_shards(sources, tmp_path / "shards", config, workers=2, progress=False)
    reader = ShardReader((tmp_path / "shards").as_uri())  # a URL, as for shards on a server
    chunks = reader.videos(min_frames=4)
    assert [(v.source, v.num_frames, v.height, v.width) for v in chunks] == [
        (v.source, v.num_frames, v.height, v.width) for v in cached
    ]
    clip = ClipConfig(crop_size=32, scale_jitter=(0.8, 1.25), max_gap=3)
    centers = torch.randn(16, 2) * 20
    from_cache = ClipDataset(cached, centers, clip, seed=3)
    from_shards = ClipDataset(chunks, centers, clip, seed=3, frames_of=reader)
    for index in (0, 1, 17, 1000):
        expected, got = from_cache[index], from_shards[index]
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    np.testing.assert_array_equal(sample_ab(chunks, 50, 8, 0, frames_of=reader), sample_ab(cached, 50, 8, 0))


def test_shards_command_resumes_and_writes_plain_tar(corpus: Path, tmp_path: Path) -> None:
    import tarfile

    out = tmp_path / "shards"
    argv = ["shards", "--data", str(corpus), "--out", str(out), "--short-side", "48", "--chunk-frames", "8",
            "--videos-per-shard", "1", "--fps", "12", "--quiet"]
    assert main(argv) == 0
    index = json.loads((out / "index.json").read_text())
    assert [listing["file"] for listing in index["shards"]] == ["shard-000000.tar", "shard-000001.tar"]
    first = index["shards"][0]["chunks"][0]
    with tarfile.open(out / "shard-000000.tar") as tar:
        assert tar.getnames()[:2] == [f"{first['key']}/0000.jpg", f"{first['key']}/0001.jpg"]
    kept = (out / "shard-000000.tar").stat().st_mtime_ns
    (out / "shard-000001.json").unlink()  # as if killed while writing the second shard
    assert main(argv) == 0
    assert (out / "shard-000000.tar").stat().st_mtime_ns == kept
    assert json.loads((out / "index.json").read_text()) == index
    assert main([*argv[:-3], "--fps", "24", "--quiet"]) == 2  # another frame rate: refused, not mixed


# ----------------------------------------------------------------------------------- training from shards
def _train_rank(rank: int, world_size: int, port: int, config) -> None:
    from colortrack.train.trainer import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(config)


def test_two_ranks_from_shards_equal_one_process_accumulating_their_batches(corpus: Path, tmp_path: Path) -> None:
    """DDP over 2 gloo ranks (batch 2 each) reaches the weights of one process that takes the
    same global batch of 4 as two half-batches, averaging their gradients: the draw is a function
    of (seed, step) alone, and BatchNorm normalizes each rank's half separately (SyncBatchNorm
    needs CUDA), which is the one difference from one process with batch 4."""
    from torch.utils.data import default_collate

    from colortrack.core.affinity import AffinityConfig
    from colortrack.models.network import ColorizationNet, ModelConfig
    from colortrack.train import checkpoint as ckpt
    from colortrack.train.data import ClipDataset
    from colortrack.train.loss import objective_loss
    from colortrack.train.shard_format import ShardConfig
    from colortrack.train.shards import ShardReader, prepare_shards
    from colortrack.train.trainer import TrainConfig, _clip_config

    from colortrack.train.data import find_videos

    prepare_shards(find_videos([corpus]), tmp_path / "shards", ShardConfig(short_side=48, fps=12, chunk_frames=8),
                   progress=False)
    model_config = ModelConfig(widths=(8, 16), blocks=(1, 1), strides=(1, 1), dilations=(1, 1), embed_dim=16,
                               head_layers=2, head_width=16)
    config = TrainConfig(
        shards=str(tmp_path / "shards"), out=str(tmp_path / "ddp"), model=model_config, steps=3, batch_size=2,
        crop_size=32, log_every=1, checkpoint_every=3, progress=False, device="cpu", kmeans_samples=2000,
    )
    mp.spawn(_train_rank, args=(2, free_port(), config), nprocs=2, join=True)
    latest = ckpt.latest_checkpoint(tmp_path / "ddp")
    assert latest.name == "step_000003"

    resolved = config.resolved()
    torch.manual_seed(resolved.seed)
    model = ColorizationNet(resolved.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=resolved.lr_schedule[0][1])
    reader = ShardReader(config.shards)
    dataset = ClipDataset(reader.videos(4), ckpt.load_color_centers(latest), _clip_config(resolved), resolved.seed, reader)
    affinity = AffinityConfig(temperature=resolved.temperature, topk=None, radius=None)
    for step in range(resolved.steps):
        optimizer.zero_grad()
        for rank in range(2):
            batch = default_collate([dataset[(step * 2 + rank) * 2 + i] for i in range(2)])
            targets = {key: batch[key] for key in ("color_ids", "ab")}
            loss = objective_loss(resolved.objective, targets, resolved.num_colors, affinity)(model(batch["input"]).float())
            (loss / 2).backward()
        optimizer.step()
    trained = ColorizationNet(resolved.model)
    ckpt.load_weights(trained, latest)
    for (name, expected), (_, got) in zip(model.named_parameters(), trained.named_parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=name)


def test_a_run_from_shards_resumes_exactly_from_the_command_line(corpus: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from colortrack.train import checkpoint as ckpt

    shards = tmp_path / "shards"
    assert main(["shards", "--data", str(corpus), "--out", str(shards), "--short-side", "48", "--fps", "12",
                 "--chunk-frames", "8", "--quiet"]) == 0
    common = ["train", "--shards", str(shards), "--crop-size", "32", "--batch-size", "2", "--log-every", "1",
              "--checkpoint-every", "2", "--kmeans-samples", "500", "--device", "cpu", "--workers", "1", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "whole"), "--steps", "4"]) == 0
    assert main([*common, "--out", str(tmp_path / "split"), "--steps", "2"]) == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--resume", "--steps", "4", "--quiet"]) == 0
    expected = load_file(str(tmp_path / "whole" / "checkpoints" / "step_000004" / ckpt.WEIGHTS))
    actual = load_file(str(tmp_path / "split" / "checkpoints" / "step_000004" / ckpt.WEIGHTS))
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    both = [*common, "--data", str(corpus), "--out", str(tmp_path / "both"), "--steps", "1"]
    assert main(both) == 2
