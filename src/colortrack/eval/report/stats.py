"""The report's statistics: the tracking vs colorization failure odds ratio, J over time, J per attribute."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from colortrack.eval.report.runs import EvalRun

TIME_BINS = 10
FAIL_J = 0.5


@dataclass(frozen=True)
class OddsRatio:
    table: tuple[tuple[int, int], tuple[int, int]]  # ((a, b), (c, d)): rows track fail/ok, cols color fail/ok
    ratio: float
    low: float
    high: float
    corrected: bool


def odds_ratio(a: float, b: float, c: float, d: float, z: float = 1.96) -> OddsRatio:
    """Odds ratio ``ad / bc`` of the 2x2 table [[a, b], [c, d]] with its Wald interval
    ``exp(log OR +- z SE)``, SE = sqrt(1/a + 1/b + 1/c + 1/d); 0.5 is added to every cell when
    any cell is zero (Haldane-Anscombe correction)."""
    cells = np.array([a, b, c, d], float)
    if (cells < 0).any():
        raise ValueError(f"cells must be non-negative, got {cells.tolist()}")
    corrected = bool((cells == 0).any())
    if corrected:
        cells = cells + 0.5
    a_, b_, c_, d_ = cells
    ratio = (a_ * d_) / (b_ * c_)
    se = math.sqrt((1.0 / cells).sum())
    log_or = math.log(ratio)
    table = ((int(a), int(b)), (int(c), int(d)))
    return OddsRatio(table, ratio, math.exp(log_or - z * se), math.exp(log_or + z * se), corrected)


def failure_table(j: np.ndarray, errors: np.ndarray, fail_j: float = FAIL_J) -> tuple[int, int, int, int]:
    """(a, b, c, d): tracking failure (J < fail_j) x colorization failure (error > median)."""
    j, errors = np.asarray(j, float), np.asarray(errors, float)
    track_fail = j < fail_j
    color_fail = errors > np.median(errors)
    a = int(np.sum(track_fail & color_fail))
    b = int(np.sum(track_fail & ~color_fail))
    c = int(np.sum(~track_fail & color_fail))
    d = int(np.sum(~track_fail & ~color_fail))
    return a, b, c, d


def time_profile(per_frame_j: list[np.ndarray], bins: int = TIME_BINS) -> np.ndarray:
    """Mean J per normalised-time bin over sequences: (bins,), NaN where no sequence has a frame.
    per_frame_j: one array per sequence of the J of its scored frames, in time order."""
    sums, counts = np.zeros(bins), np.zeros(bins)
    for values in per_frame_j:
        values = np.asarray(values, float)
        if values.size == 0:
            continue
        position = np.arange(values.size) / max(values.size - 1, 1)
        index = np.minimum((position * bins).astype(int), bins - 1)
        for k in np.unique(index):
            sums[k] += values[index == k].mean()
            counts[k] += 1
    with np.errstate(invalid="ignore"):
        return sums / counts


def attribute_scores(runs: list[EvalRun], names: list[str], attributes: dict[str, list[str]]):
    """(attribute names, {label: values}, relative-to label or None); values in J points."""
    by_attribute: dict[str, list[str]] = {}
    for name in names:
        for attribute in attributes.get(name, []):
            by_attribute.setdefault(attribute, []).append(name)
    labels = sorted(by_attribute)
    base = next((run for run in runs if run.method == "flow"), None)
    values = {}
    for run in runs:
        row = []
        for attribute in labels:
            seqs = by_attribute[attribute]
            score = 100 * np.mean([run.frame_j[s].mean() for s in seqs if run.frame_j[s].size])
            if base is not None:
                score -= 100 * np.mean([base.frame_j[s].mean() for s in seqs if base.frame_j[s].size])
            row.append(score)
        values[run.label] = row
    counts = [len(by_attribute[a]) for a in labels]
    return labels, counts, values, (base.label if base is not None else None)
