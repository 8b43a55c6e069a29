"""The evaluation folders a report compares, finished or still being written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colortrack.errors import InputError


@dataclass
class EvalRun:
    """One ``colortrack eval davis`` folder and what the report computes from it."""

    path: Path
    label: str
    results: dict
    config: dict
    frame_j: dict[str, np.ndarray] = field(default_factory=dict)  # seq -> (T-2,) mean over objects
    frame_f: dict[str, np.ndarray] = field(default_factory=dict)
    color_errors: dict[str, dict[int, float]] = field(default_factory=dict)  # seq -> frame -> error
    color_note: str = ""

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def sequences(self) -> list[str]:
        if self.results.get("partial"):
            return list(self.results["finished"])
        return list(dict.fromkeys(row["sequence"] for row in self.results.get("sequences", [])))

    def sequence_scores(self, name: str) -> tuple[float, float]:
        rows = [row for row in self.results.get("sequences", []) if row["sequence"] == name]
        return float(np.mean([r["J"] for r in rows])), float(np.mean([r["F"] for r in rows]))


def load_run(path: Path, label: str | None = None) -> EvalRun:
    """An eval folder. One still being written (no ``results.json`` yet) is read as *partial*:
    the sequences whose progress record and PNGs are complete, scored by the report itself."""
    results_path = path / "results.json"
    if not results_path.is_file():
        return _load_partial(path, label)
    try:
        results = json.loads(results_path.read_text())
        config = results.get("config") or json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(results_path, f"unreadable results ({err})") from err
    return EvalRun(path, label or path.resolve().name, results, config)


def _load_partial(path: Path, label: str | None) -> EvalRun:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InputError(path, "not an evaluation folder: no results.json nor config.json (run colortrack eval davis)")
    try:
        config = json.loads(config_path.read_text())
        finished = []
        for name in config.get("sequences", []):
            record = path / "progress" / f"{name}.json"
            if record.is_file():
                frames = int(json.loads(record.read_text())["frames"])
                if all((path / name / f"{t:05d}.png").is_file() for t in range(frames)):
                    finished.append(name)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"unreadable evaluation folder ({err})") from err
    if not finished:
        raise InputError(path, "evaluation folder has no finished sequence yet")
    total = len(config.get("sequences", []))
    results = {"partial": True, "finished": finished, "total": total, "sequences": []}
    return EvalRun(path, label or path.resolve().name, results, config)


def complete_partial(run: EvalRun, objects: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> None:
    """Fill a partial run's per-object rows and means (percent) from its per-frame scores."""
    rows = []
    for name in run.results["finished"]:
        for k, (j, f) in enumerate(objects.get(name, []), start=1):
            jm, fm = 100 * float(np.nanmean(j)), 100 * float(np.nanmean(f))
            rows.append({"sequence": name, "object": k, "J": jm, "F": fm, "J&F": (jm + fm) / 2})
    run.results["sequences"] = rows
    if rows:
        run.results["J"] = float(np.mean([r["J"] for r in rows]))
        run.results["F"] = float(np.mean([r["F"] for r in rows]))
        run.results["J&F"] = (run.results["J"] + run.results["F"]) / 2


def resolve_root(runs: list[EvalRun], root: Path | None) -> Path:
    if root is not None:
        return root
    for run in runs:
        candidate = run.config.get("root")
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise InputError("--root", "the DAVIS root of the evaluations was not found; pass --root")
