"""PCK@alpha for keypoint propagation: JHMDB as scored by the self-supervised tracking papers, and BADJA.

The protocol is the one of the JHMDB evaluation script ``eval_pck.py`` shipped, with the same
scoring code, by UVC (Li et al., *Joint-task Self-supervised Learning for Temporal Correspondence*,
NeurIPS 2019, github.com/Liusifei/UVC ``eval_pck.py``) and CRW (Jabri et al., *Space-Time
Correspondence as a Contrastive Random Walk*, NeurIPS 2020, github.com/ajabri/videowalk
``code/eval/eval_pck.py``), the protocol of TimeCycle (Wang et al., CVPR 2019) under which those
papers compare with the colorization tracker of Vondrick et al.:

* ground truth: ``pos_img - 1`` (0-based pixels), all 15 joints of every frame;
* person size in frame t: ``0.6 * diagonal`` of the bounding box of that frame's ground-truth
  joints, ``0.6 * ||(max x, max y) - (min x, min y)||``. (The script carries the alternative
  ``max(width, height)`` commented out: it is not the protocol);
* a joint is correct when ``||pred - gt|| <= alpha * size`` (boundary included), alpha in
  0.1, 0.2, 0.3, 0.4, 0.5;
* frame 0 (the annotation given to the tracker) is not scored;
* PCK of a joint is its percentage of correct (frame, clip) pairs over all clips; the reported
  PCK is the mean of the 15 per-joint PCKs (equal to the pooled percentage, every joint being
  scored on every frame).

Differences, stated: a joint the tracker reports lost (NaN) counts as incorrect and the box always
uses every ground-truth joint (the script instead leaves joints whose predicted x is negative out
of both the box and the score); ground-truth entries that are NaN (never in JHMDB) are left out. Numbers are in
percent, like the papers' tables.

BADJA (Biggs et al., *Creatures great and SMAL*, ACCV 2018) scores with the same counts and another
size: ``sqrt(area)`` of the frame's ground-truth silhouette (:func:`silhouette_size`), passed as
``size`` to :func:`pck_counts`; a joint whose ground truth is NaN (not visible) is not scored there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PCK_ALPHAS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
SIZE_FACTOR = 0.6


def silhouette_size(mask: np.ndarray) -> float:
    """BADJA's size of one frame: ``sqrt`` of the number of non-zero pixels of its ground-truth mask (H, W)."""
    return float(np.sqrt(np.count_nonzero(mask)))


def person_size(gt: np.ndarray) -> np.ndarray:
    """gt: (T, J, 2) xy. Returns (T,) ``0.6 * diagonal`` of each frame's joint bounding box."""
    gt = np.asarray(gt, np.float64)
    low, high = np.nanmin(gt, axis=1), np.nanmax(gt, axis=1)  # (T, 2)
    return SIZE_FACTOR * np.linalg.norm(high - low, axis=1)


@dataclass
class PCKCounts:
    """Correct predictions per alpha and joint, (A, J), out of ``total`` (J,) scored frames."""

    alphas: tuple[float, ...]
    correct: np.ndarray
    total: np.ndarray

    def __add__(self, other: PCKCounts) -> PCKCounts:
        if self.alphas != other.alphas or self.correct.shape != other.correct.shape:
            raise ValueError("cannot add PCK counts of different alphas or joints")
        return PCKCounts(self.alphas, self.correct + other.correct, self.total + other.total)

    def per_joint(self) -> np.ndarray:
        """(A, J) PCK in percent; NaN for a joint never scored."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * self.correct / self.total[None, :]

    def mean(self) -> np.ndarray:
        """(A,) PCK in percent: the mean over joints of the per-joint PCK."""
        per_joint = self.per_joint()
        scored = self.total > 0
        if not scored.any():
            return np.full(len(self.alphas), np.nan)
        return per_joint[:, scored].mean(axis=1)

    def pooled(self) -> np.ndarray:
        """(A,) PCK in percent over every scored (frame, joint) pair: joints weigh by how often
        they are scored (BADJA's figure; equal to :meth:`mean` when every joint is scored equally)."""
        total = int(self.total.sum())
        return 100.0 * self.correct.sum(axis=1) / total if total else np.full(len(self.alphas), np.nan)

    def as_dict(self, names: tuple[str, ...] | None = None, pooled: bool = False) -> dict:
        """``{"PCK@0.1": ..., ..., "scored": N, "per_joint": {name: {"PCK@0.1": ..., "scored": n}}}``
        (percent); the headline is the mean over joints, or the :meth:`pooled` figure."""
        mean, per_joint = self.pooled() if pooled else self.mean(), self.per_joint()
        names = names or tuple(str(j) for j in range(len(self.total)))
        out: dict = {_key(alpha): _number(value) for alpha, value in zip(self.alphas, mean)}
        out["scored"] = int(self.total.sum())
        out["per_joint"] = {
            name: {**{_key(alpha): _number(per_joint[a, j]) for a, alpha in enumerate(self.alphas)}, "scored": int(self.total[j])}
            for j, name in enumerate(names)
        }
        return out


def pck_counts(
    pred: np.ndarray,
    gt: np.ndarray,
    alphas: tuple[float, ...] = PCK_ALPHAS,
    skip_first: bool = True,
    size: np.ndarray | None = None,
) -> PCKCounts:
    """pred, gt: (T, J, 2) xy in pixels; NaN in pred = lost (incorrect), NaN in gt = not scored.

    size: (T,) the length that alpha multiplies in each frame; None: the person size of ``gt``
    (:func:`person_size`, JHMDB). Frame 0 is skipped unless ``skip_first`` is False."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (T, J, 2)")
    start = 1 if skip_first else 0
    pred, gt = pred[start:], gt[start:]
    scored = np.isfinite(gt).all(axis=2)  # (T, J)
    if size is not None:
        size = np.asarray(size, np.float64)
        if size.shape != (len(gt) + start,):
            raise ValueError(f"size {size.shape} must be ({len(gt) + start},): one per frame")
        size = size[start:]
    elif len(gt):
        with np.errstate(invalid="ignore"):
            size = person_size(np.where(scored[..., None], gt, np.nan)) if scored.any() else np.zeros(len(gt))
    else:
        size = np.zeros(0)
    distance = np.linalg.norm(pred - gt, axis=2)  # NaN where lost
    correct = np.stack(
        [((distance <= alpha * size[:, None]) & scored).sum(axis=0) for alpha in alphas]
    ) if len(alphas) else np.zeros((0, gt.shape[1]), int)
    return PCKCounts(tuple(alphas), correct.astype(np.int64), scored.sum(axis=0).astype(np.int64))


def pck(pred: np.ndarray, gt: np.ndarray, alphas: tuple[float, ...] = PCK_ALPHAS) -> dict[float, float]:
    """``{alpha: PCK in percent}`` of one clip (frame 0 excluded)."""
    return dict(zip(alphas, (float(v) for v in pck_counts(pred, gt, alphas).mean())))


def _key(alpha: float) -> str:
    return f"PCK@{alpha:g}"


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def format_pck_table(rows: list[tuple[str, dict]], alphas: tuple[float, ...] = PCK_ALPHAS, label: str = "clip") -> str:
    """Plain-text table: one row per (name, result dict of :meth:`PCKCounts.as_dict`)."""
    width = max([len(label)] + [len(name) for name, _ in rows])
    head = f"{label:<{width}}  " + "  ".join(f"{_key(alpha):>8}" for alpha in alphas)
    lines = [head, "-" * len(head)]
    for name, result in rows:
        cells = "  ".join(_cell(result.get(_key(alpha))) for alpha in alphas)
        lines.append(f"{name:<{width}}  {cells}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{'n/a':>8}" if value is None else f"{value:8.1f}"
