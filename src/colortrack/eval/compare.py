"""Paired comparison of two evaluation runs of one benchmark: the difference of their headline
scores and its bootstrap interval.

The scores within a unit move together (a DAVIS sequence's frames; a tracked joint's frames, on
JHMDB and BADJA, where one clip holds most of the scored pairs), so the bootstrap resamples units,
not frames: 309 scored BADJA joint-frames are 20 joints, and a difference of a few points may be
one joint. Both runs are resampled alike (the same draws), which cancels what the units share.

Every headline is a ratio of sums over units, so one resampling rule serves all: DAVIS J&F is the
mean over (sequence, object) rows, units are sequences (numerator: their rows' sum; denominator:
their row count); BADJA pools (frame, joint) pairs (correct / scored per joint); JHMDB averages
joints (per-joint PCK over one)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from colortrack.errors import InputError

DAVIS_METRICS = ("J&F", "J", "F")
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class Units:
    """What a run scored, per unit: ``numerators`` and ``denominators`` (metric -> (U,)) whose
    ratio of sums is the headline; ``names`` (U,) identify the units across runs."""

    unit: str
    names: tuple[str, ...]
    numerators: dict[str, np.ndarray]
    denominators: dict[str, np.ndarray]

    def headline(self, metric: str, draws: np.ndarray | None = None) -> np.ndarray | float:
        """The metric over all units, or (R,) over each row of ``draws`` (R, U) of unit indices."""
        num, den = self.numerators[metric], self.denominators[metric]
        if draws is None:
            return float(num.sum() / den.sum())
        return num[draws].sum(axis=1) / den[draws].sum(axis=1)


@dataclass(frozen=True)
class Comparison:
    """One metric of two runs: ``second - first`` and its ``level`` bootstrap interval."""

    metric: str
    first: float
    second: float
    difference: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


def load_units(path: str | os.PathLike) -> Units:
    """The units of an ``eval davis``, ``eval jhmdb`` or ``eval badja`` output folder (or its results.json)."""
    file = Path(path)
    file = file / RESULTS_FILE if file.is_dir() else file
    try:
        results = json.loads(file.read_text())
    except FileNotFoundError:
        raise InputError(file, "no such results file (give an eval output folder or its results.json)") from None
    except (OSError, ValueError) as err:
        raise InputError(file, f"cannot be read as JSON ({err})") from None
    if isinstance(results, dict) and "sequences" in results and "J&F" in results:
        return _davis_units(results)
    if isinstance(results, dict) and "per_joint" in results:
        return _keypoint_units(results, file)
    raise InputError(file, "is not the results.json of eval davis, jhmdb or badja")


def compare_runs(
    first: Units, second: Units, resamples: int = 10_000, level: float = 0.95, seed: int = 0, labels: tuple[str, str] = ("first", "second")
) -> list[Comparison]:
    """Every metric both runs hold, second minus first, with the paired bootstrap interval
    (percentiles of ``resamples`` draws of the units with replacement)."""
    if first.unit != second.unit:
        raise InputError(labels[1], f"scores {second.unit}s, {labels[0]} {first.unit}s: the runs cannot be paired")
    if first.names != second.names:
        raise InputError(labels[1], f"scores other {second.unit}s than {labels[0]}: the runs cannot be paired")
    if resamples < 1 or not 0 < level < 1:
        raise InputError("compare", f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    draws = np.random.default_rng(seed).integers(0, len(first.names), size=(resamples, len(first.names)))
    tail = 100 * (1 - level) / 2
    comparisons = []
    for metric in (m for m in first.numerators if m in second.numerators):
        differences = second.headline(metric, draws) - first.headline(metric, draws)
        low, high = np.percentile(differences, [tail, 100 - tail])
        a, b = first.headline(metric), second.headline(metric)
        comparisons.append(Comparison(metric, a, b, b - a, float(low), float(high)))
    return comparisons


def _davis_units(results: dict) -> Units:
    rows = results["sequences"]
    names = tuple(sorted({row["sequence"] for row in rows}))
    numerators = {m: np.array([sum(r[m] for r in rows if r["sequence"] == s) for s in names], float) for m in DAVIS_METRICS}
    count = np.array([sum(1 for r in rows if r["sequence"] == s) for s in names], float)
    return Units("sequence", names, numerators, {m: count for m in DAVIS_METRICS})


def _keypoint_units(results: dict, file: Path) -> Units:
    joints = {name: row for name, row in results["per_joint"].items() if row.get("scored")}
    names = tuple(sorted(joints))
    scored = np.array([joints[name]["scored"] for name in names], float)
    metrics = [key for key in results if key.startswith("PCK@") and results[key] is not None]
    numerators, denominators = {}, {}
    for metric in metrics:
        pck = np.array([joints[name][metric] for name in names], float)
        pooled = float((pck * scored).sum() / scored.sum())
        if np.isclose(pooled, results[metric], atol=1e-6):
            numerators[metric], denominators[metric] = pck * scored / 100.0, scored / 100.0
        elif np.isclose(pck.mean(), results[metric], atol=1e-6):
            numerators[metric], denominators[metric] = pck, np.ones_like(pck)
        else:
            raise InputError(file, f"its per-joint scores do not give its {metric} (pooled or averaged)")
    return Units("joint", names, numerators, denominators)


def format_comparison(comparisons: list[Comparison], units: Units, labels: tuple[str, str], resamples: int, level: float) -> str:
    lines = [
        f"first:  {labels[0]}",
        f"second: {labels[1]}",
        f"paired bootstrap over {len(units.names)} {units.unit}s, {resamples} resamples, {100 * level:g} % interval",
        f"{'metric':<8} {'first':>7} {'second':>7} {'second-first':>13} {'interval':>17}",
    ]
    for c in comparisons:
        lines.append(f"{c.metric:<8} {c.first:>7.1f} {c.second:>7.1f} {c.difference:>+13.1f} {f'[{c.low:+.1f}, {c.high:+.1f}]':>17}")
    return "\n".join(lines)
