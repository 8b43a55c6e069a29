"""The development protocol: training data never holds the frames that are scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from colortrack.eval.protocol import (
    DEV_DAVIS_FOLDER,
    DEV_SEQUENCES,
    REPORT_SEQUENCES,
    TUNING_SEQUENCES,
    seen_in_training,
    training_folders,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_seen_in_training_follows_folders_both_ways(tmp_path: Path) -> None:
    davis = tmp_path / "davis" / "JPEGImages" / "480p"
    (davis / "bear").mkdir(parents=True)
    videos = tmp_path / "videos"
    videos.mkdir()
    assert seen_in_training([str(tmp_path / "davis")], davis / "bear")  # training folder above
    assert seen_in_training([str(davis / "bear")], tmp_path / "davis")  # training folder inside
    assert seen_in_training([str(videos), str(davis)], davis)
    assert not seen_in_training([str(videos)], davis / "bear")
    assert not seen_in_training([], davis)


def test_tuning_and_report_sequences_split_the_dev_set() -> None:
    assert not set(TUNING_SEQUENCES) & set(REPORT_SEQUENCES)
    assert len(DEV_SEQUENCES) == 19 == len(set(DEV_SEQUENCES))


def test_protocol_matches_the_shared_data() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the shared data folder)")
    davis = SHARED / DEV_DAVIS_FOLDER / "JPEGImages" / "480p"
    assert sorted(p.name for p in davis.iterdir()) == sorted(DEV_SEQUENCES)
    corpus = [str(folder) for folder in training_folders(SHARED)]
    assert all(Path(folder).is_dir() for folder in corpus)
    assert not seen_in_training(corpus, SHARED / DEV_DAVIS_FOLDER)
