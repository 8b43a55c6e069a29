"""DAVIS semi-supervised evaluation: region similarity J and boundary accuracy F.

Follows the protocol of the official ``davis2017-evaluation`` package (Pont-Tuset et al.):

* J is the Jaccard index (IoU) of one object's predicted and annotated masks; an empty union
  counts as a perfect 1.
* F is the F-measure of boundary precision/recall: boundaries are the 1-px ``seg2bmap`` maps,
  and a boundary pixel is matched if the other map has a boundary pixel within a disk of
  ``ceil(0.008 * image diagonal)`` px (8 px at 854x480).
* A sequence is scored object by object, objects being ``1 .. max id of the first annotation``;
  the first frame (given to the tracker) and the last frame are not scored. Layouts whose
  objects enter later or whose annotations cover only some frames (DAVIS test-dev, YouTube-VOS):
  each object from the annotated frame after its first one, on annotated frames only.
* Per object: mean, recall (fraction of frames > 0.5) and decay (mean of the first quarter of
  the frames minus mean of the last quarter, quarters as the official binning). The dataset
  numbers are plain means of the per-object numbers; J&F = (J + F) / 2.
* A sequence of fewer than 3 frames has no frame left to score. Its objects are left out of
  every mean (never scored as 0 or as NaN) and listed in ``Summary.unscored``, in
  ``results.json`` and below the printed table; scoring a dataset in which no object has a frame
  to score is an error.

Void (label 255) in the ground truth: the official semi-supervised evaluation sets it to
background and then excludes nothing (its void test runs on the already-binarised masks, so it
never fires). ``evaluate_sequence`` does the same by default; ``exclude_void=True`` instead
leaves void pixels out of both J and F (what the ``void`` arguments of :func:`jaccard` and
:func:`boundary_f` do).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

from colortrack.io.masks import VOID_ID

# --------------------------------------------------------------------------- per frame


def _as_bool(mask: np.ndarray, void: np.ndarray | None, name: str = "pred") -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if void is not None:
        void = np.asarray(void).astype(bool)
        if void.shape != mask.shape:
            raise ValueError(f"void shape {void.shape} != {name} shape {mask.shape}")
        mask = mask & ~void
    return mask


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if np.shape(pred) != np.shape(gt) or np.ndim(pred) != 2:
        raise ValueError(f"pred {np.shape(pred)} and gt {np.shape(gt)} must be equal 2-D shapes")


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """IoU of two (H, W) masks, void pixels left out; an empty union gives 1.0."""
    _check_pair(pred, gt)
    pred, gt = _as_bool(pred, void), _as_bool(gt, void, "gt")
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """1-px boundary map of a (H, W) mask, the DAVIS/BSDS ``seg2bmap`` at image resolution.

    A pixel is boundary when it differs from its right, bottom or bottom-right neighbour
    (outside the image counts as background). Exceptions, as in the reference: on the last
    row only the right neighbour is compared, on the last column only the bottom one, and the
    bottom-right corner pixel is never boundary.
    """
    seg = np.asarray(mask).astype(bool)
    h, w = seg.shape
    padded = np.zeros((h + 1, w + 1), bool)
    padded[:h, :w] = seg
    right, below, below_right = padded[:h, 1:], padded[1:, :w], padded[1:, 1:]
    bmap = (seg ^ right) | (seg ^ below) | (seg ^ below_right)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ below[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_tolerance(shape: tuple[int, int], bound_th: float = 0.008) -> float:
    """Match radius in px: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return bound_th
    return float(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


@functools.lru_cache(maxsize=16)
def _disk(radius: float) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(np.uint8)


def boundary_precision_recall(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> tuple[float, float]:
    """Boundary precision and recall of two (H, W) masks, void pixels set to background.

    Precision: fraction of pred boundary pixels within the tolerance disk of a gt boundary
    pixel; recall likewise. No pred boundary: P = 1 (R = 0, or 1 if no gt boundary either);
    no gt boundary: R = 1 (P = 0, or 1).
    """
    _check_pair(pred, gt)
    pred_b = seg2bmap(_as_bool(pred, void))
    gt_b = seg2bmap(_as_bool(gt, void, "gt"))
    radius = boundary_tolerance(np.shape(gt), bound_th)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 or n_gt == 0:  # official special cases: (1,1), (1,0), (0,1)
        return float(n_pred == 0), float(n_gt == 0)
    kernel = _disk(radius)
    pred_dil = cv2.dilate(pred_b.view(np.uint8), kernel).view(bool)
    gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel).view(bool)
    precision = np.count_nonzero(pred_b & gt_dil) / n_pred
    recall = np.count_nonzero(gt_b & pred_dil) / n_gt
    return precision, recall


def boundary_f(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    """Boundary F-measure of two (H, W) masks (official DAVIS ``f_measure``); 0 if P + R = 0."""
    p, r = boundary_precision_recall(pred, gt, void, bound_th)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


# --------------------------------------------------------------------------- per object


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if np.size(values) else math.nan


def decay_bins(n: int) -> list[slice]:
    """The 4 official (overlapping, end-inclusive) quarters of ``n`` frame values.

    Boundaries are ``round(linspace(1, n, 5) + 1e-10) - 1``; bin i is ``[b_i, b_{i+1}]``.
    (The reference casts the boundaries to uint8, which wraps for n > 256; we do not.)
    """
    ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
    return [slice(int(ids[i]), int(ids[i + 1]) + 1) for i in range(4)]


def decay(values: np.ndarray) -> float:
    """Official decay: mean of the first quarter minus mean of the last quarter."""
    values = np.asarray(values, float)
    if values.size == 0:
        return math.nan
    bins = decay_bins(values.size)
    return _nanmean(values[bins[0]]) - _nanmean(values[bins[3]])


@dataclass
class ObjectScores:
    """Per-frame J and F (fractions in [0, 1]) of one object over the scored frames."""

    sequence: str
    object_id: int
    J: np.ndarray
    F: np.ndarray

    @property
    def scored(self) -> bool:
        """Whether the object has any frame to score (annotated, after its first, not the last)."""
        return np.size(self.J) > 0

    @property
    def J_mean(self) -> float:
        return _nanmean(self.J)

    @property
    def J_recall(self) -> float:
        return _nanmean(np.asarray(self.J) > 0.5)

    @property
    def J_decay(self) -> float:
        return decay(self.J)

    @property
    def F_mean(self) -> float:
        return _nanmean(self.F)

    @property
    def F_recall(self) -> float:
        return _nanmean(np.asarray(self.F) > 0.5)

    @property
    def F_decay(self) -> float:
        return decay(self.F)


def evaluate_sequence(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    frames: list[int] | None = None,
    num_frames: int | None = None,
    exclude_void: bool = False,
) -> list[ObjectScores]:
    """Score predicted (N, H, W) ids against their (N, H, W) annotation, object by object.

    frames: the video frame index of each of the N annotations (default 0 .. N-1, every frame);
    num_frames: the video's length (default N). Objects are 1 .. the largest id annotated (void
    255 not counted). Each object is scored on the annotated frames after the first one it appears
    in (the first annotated frame for an object never annotated), the video's last frame
    excluded; with every frame annotated and every object in frame 0, frames 1 .. T-2. An object
    left with no scored frame gets empty J and F (:func:`summarize` lists it as unscored). Void (255) in ``gt`` is background unless
    ``exclude_void`` (see the module docstring). Raises ValueError on a shape mismatch or on a
    predicted id above the number of objects.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or gt.ndim != 3:
        raise ValueError(f"{name}: pred {pred.shape} and gt {gt.shape} must be equal (N, H, W)")
    frames = list(range(len(gt))) if frames is None else list(frames)
    num_frames = len(gt) if num_frames is None else num_frames
    annotated = gt[gt != VOID_ID]
    n_obj = int(annotated.max()) if annotated.size else 0
    if pred.size and int(pred.max()) > n_obj:
        raise ValueError(f"{name}: predicted id {int(pred.max())} > {n_obj} annotated objects")
    scores = []
    for k in range(1, n_obj + 1):
        present = [i for i in range(len(gt)) if (gt[i] == k).any()]
        first = present[0] if present else 0
        scored = [i for i in range(first + 1, len(gt)) if frames[i] < num_frames - 1]
        void = [gt[i] == VOID_ID if exclude_void else None for i in scored]
        pairs = [(pred[i] == k, gt[i] == k, v) for i, v in zip(scored, void)]
        j = np.array([jaccard(p, g, v) for p, g, v in pairs], float)
        f = np.array([boundary_f(p, g, v) for p, g, v in pairs], float)
        scores.append(ObjectScores(name, k, j, f))
    return scores


# --------------------------------------------------------------------------- dataset


def _pct(x: float) -> float:
    return float(x) * 100.0


@dataclass
class Summary:
    """Dataset numbers in percent; ``per_sequence`` has one row per object."""

    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float
    JF_mean: float
    per_sequence: list[dict] = field(default_factory=list)
    unscored: list[dict] = field(default_factory=list)  # objects without a frame to score

    def to_json(self) -> dict:
        return {
            "J&F": self.JF_mean,
            "J": self.J_mean,
            "F": self.F_mean,
            "J-Recall": self.J_recall,
            "J-Decay": self.J_decay,
            "F-Recall": self.F_recall,
            "F-Decay": self.F_decay,
            "sequences": [dict(row) for row in self.per_sequence],
            "unscored": [dict(row) for row in self.unscored],
        }


def summarize(scores: list[ObjectScores]) -> Summary:
    """Means over objects of the per-object statistics (as the official ``evaluation_method``);
    objects without a scored frame are listed in ``unscored`` instead. ValueError when no object
    has a frame to score."""
    unscored = [{"sequence": s.sequence, "object": s.object_id} for s in scores if not s.scored]
    scores = [s for s in scores if s.scored]
    if not scores:
        raise ValueError("no object has a frame to score (sequences need 3 frames or more)")

    def over_objects(stat: str) -> float:
        return _pct(np.mean([getattr(s, stat) for s in scores]))

    rows = [
        {
            "sequence": s.sequence,
            "object": s.object_id,
            "J": _pct(s.J_mean),
            "F": _pct(s.F_mean),
            "J&F": _pct((s.J_mean + s.F_mean) / 2),
        }
        for s in scores
    ]
    j_mean, f_mean = over_objects("J_mean"), over_objects("F_mean")
    return Summary(
        J_mean=j_mean,
        J_recall=over_objects("J_recall"),
        J_decay=over_objects("J_decay"),
        F_mean=f_mean,
        F_recall=over_objects("F_recall"),
        F_decay=over_objects("F_decay"),
        JF_mean=(j_mean + f_mean) / 2,
        per_sequence=rows,
        unscored=unscored,
    )


def format_table(summary: Summary) -> str:
    """Plain-text table: one row per object, then the overall line (numbers in percent)."""
    names = [str(r["sequence"]) for r in summary.per_sequence] + ["Overall"]
    width = max(len("sequence"), *(len(n) for n in names))
    head = f"{'sequence':<{width}}  {'obj':>3}  {'J&F':>6}  {'J':>6}  {'F':>6}"
    lines = [head, "-" * len(head)]
    for r in summary.per_sequence:
        lines.append(
            f"{r['sequence']:<{width}}  {r['object']:>3}  {r['J&F']:6.1f}  {r['J']:6.1f}  {r['F']:6.1f}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'Overall':<{width}}  {'':>3}  {summary.JF_mean:6.1f}  {summary.J_mean:6.1f}  "
        f"{summary.F_mean:6.1f}"
    )
    lines.append(
        f"J-Recall {summary.J_recall:.1f}  J-Decay {summary.J_decay:.1f}  "
        f"F-Recall {summary.F_recall:.1f}  F-Decay {summary.F_decay:.1f}"
    )
    if summary.unscored:
        names = ", ".join(f"{r['sequence']} (object {r['object']})" for r in summary.unscored)
        lines.append(f"Not scored, no annotated frame between the first and the last: {names}")
    return "\n".join(lines)
