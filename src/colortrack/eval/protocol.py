"""The development protocol: which video trains a model, and which decides between models.

A model is trained on unlabeled video that holds no frame we score. The development benchmark is
the 19 DAVIS-2016 *train* sequences of the shared data folder (masks) plus the two BADJA sequences
among them (animal joints); a model that is compared on them must not have seen their frames, not
even unlabeled. Settings (presets, checkpoints, training variants) are chosen on the 8 tuning
sequences; the 11 others are only reported, so that a choice is never scored on the sequences
that made it. The shipped model of 2026-11 (``model``) predates this protocol: its corpus held
every DAVIS frame, so its numbers on these sequences are transductive (``docs/training.md``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# Folders of the shared data root that make the training corpus: unlabeled video only, none of
# it DAVIS, BADJA or JHMDB (see the data README).
TRAINING_FOLDERS = ("videos", "videos-256p", "videos-256p-more")
DEV_DAVIS_FOLDER = "davis2016-train"
TUNING_SEQUENCES = (
    "bear", "boat", "dance-jump", "drift-turn", "kite-walk", "motocross-bumps", "paragliding", "surf",
)
REPORT_SEQUENCES = (
    "breakdance-flare", "dog-agility", "flamingo", "hockey", "lucia", "mallard-fly", "motorbike",
    "rollerblade", "scooter-gray", "swing", "tennis",
)
DEV_SEQUENCES = tuple(sorted(TUNING_SEQUENCES + REPORT_SEQUENCES))
BADJA_SEQUENCES = ("bear", "dog-agility")


def training_folders(data_root: str | os.PathLike) -> list[Path]:
    """The training corpus under ``data_root`` (the shared data folder)."""
    return [Path(data_root) / name for name in TRAINING_FOLDERS]


def seen_in_training(training_data: Iterable[str | os.PathLike], frames: str | os.PathLike) -> bool:
    """Whether any folder (or file) of ``training_data`` holds ``frames`` or lies inside it.

    ``frames`` is a folder of evaluation frames (e.g. a DAVIS root or one sequence's JPEG folder).
    Relative training paths are taken from the current folder, as the trainer read them.
    """
    target = Path(frames).resolve()
    for source in training_data:
        path = Path(source).resolve()
        if path == target or path in target.parents or target in path.parents:
            return True
    return False
