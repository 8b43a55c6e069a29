"""JHMDB-layout datasets: ``Rename_Images/<action>/<clip>/%05d.png`` with
``joint_positions/<action>/<clip>/joint_positions.mat``.

A clip is a frame folder that has its joint file; frame folders without one are skipped. Clip
names are unique in JHMDB (they contain the action); a root where two actions share a clip name
is refused, since results are written per clip name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from colortrack.errors import InputError
from colortrack.io.video import natural_key


@dataclass(frozen=True)
class JhmdbClip:
    action: str
    name: str
    frames_dir: Path
    joints_path: Path


def find_jhmdb_clips(root: str | os.PathLike, names: list[str] | None = None) -> list[JhmdbClip]:
    """Clips of a JHMDB root sorted by action then clip name; ``names`` selects (and orders) some."""
    root = Path(root)
    images = root / "Rename_Images"
    if not images.is_dir():
        raise InputError(root, "no Rename_Images/ folder (expected a JHMDB root with Rename_Images/ and joint_positions/)")
    clips: dict[str, JhmdbClip] = {}
    for action_dir in sorted((p for p in images.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        for clip_dir in sorted((p for p in action_dir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            joints = root / "joint_positions" / action_dir.name / clip_dir.name / "joint_positions.mat"
            if not joints.is_file():
                continue
            if clip_dir.name in clips:
                raise InputError(root, f"clip name '{clip_dir.name}' appears under two actions")
            clips[clip_dir.name] = JhmdbClip(action_dir.name, clip_dir.name, clip_dir, joints)
    if not clips:
        raise InputError(root, "no clip has both Rename_Images/<action>/<clip>/ and joint_positions/<action>/<clip>/joint_positions.mat")
    if names is None:
        return list(clips.values())
    missing = [name for name in names if name not in clips]
    if missing:
        raise InputError("--clips", f"unknown clip(s) {', '.join(missing)} in {root}")
    return [clips[name] for name in names]
