"""Cross-check colortrack's DAVIS J&F against an independent evaluator (vos-benchmark 0.1.0).

    python benchmarks/check_evaluator.py --gt GT_ROOT --pred PRED_ROOT [--sequences a b ...]

GT_ROOT and PRED_ROOT hold ``<sequence>/%05d.png``. Masks are read as object ids: palette PNGs
as their indices, DAVIS-2016 0/255 grey masks as 0/1 (``colortrack.io.masks.read_mask`` when it
exists). vos-benchmark reads raw PNG values (a 0/255 mask would be object 255) and counts 255 as
an object, so both folders are re-written as id palette PNGs into a temporary folder first, gt
void (255) as background as the official semi-supervised evaluation does.

``--synthesize OUT`` first writes synthetic predictions for the chosen sequences into OUT
(the gt eroded, dilated or shifted by a few pixels, sometimes dropped or with a spurious blob)
and checks those; with ``--two-objects`` it also writes a 2-object gt (the object split into
left/right halves at the first frame's centre column) next to it and uses that as the gt.

Prints both evaluators' per-object and overall numbers and their difference; exits 1 if the
overall J&F, J or F differ by more than ``--tol`` points (default 0.2).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from colortrack.eval.metrics.davis import evaluate_sequence, summarize

try:  # the project's reader when present
    from colortrack.io.masks import read_mask as _project_read_mask
except ImportError:  # pragma: no cover - depends on the checkout
    _project_read_mask = None


def read_ids(path: Path) -> np.ndarray:
    """(H, W) uint8 object ids of a mask PNG."""
    if _project_read_mask is not None:
        return np.asarray(_project_read_mask(path), np.uint8)
    with Image.open(path) as im:
        if im.mode == "P":
            return np.array(im, np.uint8)
        grey = np.array(im)
    grey = grey[..., 0] if grey.ndim == 3 else grey  # LA / RGB: first channel
    return (grey > 0).astype(np.uint8) if np.isin(grey, (0, 255)).all() else grey.astype(np.uint8)


def write_ids(path: Path, ids: np.ndarray) -> None:
    """Palette PNG whose indices are the ids (palette: DAVIS-like, only used for viewing)."""
    im = Image.fromarray(np.ascontiguousarray(ids, np.uint8), mode="P")
    colors = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    im.putpalette([c for rgb in colors for c in rgb] + [255] * (3 * (256 - len(colors))))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def frame_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def read_sequence(folder: Path, names: list[str]) -> np.ndarray:
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        sys.exit(f"{folder}: missing {len(missing)} masks, e.g. {missing[0]}")
    return np.stack([read_ids(folder / n) for n in names])


# --------------------------------------------------------------------------- synthetic data


def _perturb(ids: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong prediction: per-object erosion/dilation/shift, some drops and blobs."""
    out = np.zeros_like(ids)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    for k in (int(k) for k in np.unique(ids) if 0 < k < 255):
        m = (ids == k).astype(np.uint8)
        kind = index % 4
        if kind == 1:
            m = cv2.erode(m, kernel, iterations=int(rng.integers(1, 4)))
        elif kind == 2:
            m = cv2.dilate(m, kernel, iterations=int(rng.integers(1, 4)))
        elif kind == 3:
            dy, dx = (int(v) for v in rng.integers(-12, 13, 2))
            m = np.roll(m, (dy, dx), axis=(0, 1))
        if index % 9 == 5:
            m[:] = 0  # lost the object on this frame
        out[m > 0] = k
    if index % 7 == 3 and out.max() > 0:
        y, x = (int(v) for v in rng.integers(0, min(ids.shape) - 30, 2))
        out[y : y + 30, x : x + 30] = out.max()  # spurious blob of the last object
    return out


def _split_in_two(ids: np.ndarray, column: int) -> np.ndarray:
    out = ids.copy()
    out[:, column:][ids[:, column:] == 1] = 2
    return out


def synthesize(gt_root: Path, out: Path, sequences: list[str], two_objects: bool) -> Path:
    """Write predictions (and with two_objects a 2-object gt) into out; return the gt to use."""
    rng = np.random.default_rng(0)
    gt_out = out / "gt" if two_objects else gt_root
    for seq in sequences:
        names = frame_names(gt_root / seq)
        gt = read_sequence(gt_root / seq, names)
        if two_objects:
            cols = np.nonzero(gt[0] == 1)[1]
            gt = np.stack([_split_in_two(g, int(np.median(cols))) for g in gt])
        for i, (name, ids) in enumerate(zip(names, gt)):
            if two_objects:
                write_ids(gt_out / seq / name, ids)
            write_ids(out / "pred" / seq / name, ids if i == 0 else _perturb(ids, i, rng))
    return gt_out


# --------------------------------------------------------------------------- evaluators


def ours(gt_root: Path, pred_root: Path, sequences: list[str]):
    scores = []
    for seq in sequences:
        names = frame_names(gt_root / seq)
        gt = read_sequence(gt_root / seq, names)
        pred = read_sequence(pred_root / seq, names)
        scores.extend(evaluate_sequence(seq, pred, gt))
    summary = summarize(scores)
    per_object = {(r["sequence"], r["object"]): (r["J"], r["F"]) for r in summary.per_sequence}
    return (summary.JF_mean, summary.J_mean, summary.F_mean), per_object


def vos_benchmark(gt_root: Path, pred_root: Path, sequences: list[str]):
    from vos_benchmark.benchmark import benchmark

    with tempfile.TemporaryDirectory(prefix="colortrack-vosb-") as tmp:
        tmp_gt, tmp_pred = Path(tmp) / "gt", Path(tmp) / "pred"
        for seq in sequences:
            names = frame_names(gt_root / seq)
            for name in names:
                gt = read_ids(gt_root / seq / name)
                write_ids(tmp_gt / seq / name, np.where(gt == 255, 0, gt))
                write_ids(tmp_pred / seq / name, read_ids(pred_root / seq / name))
        jf, j, f, objects = benchmark(
            [str(tmp_gt)], [str(tmp_pred)], strict=True, num_processes=1, verbose=False
        )
    per_object = {
        (seq, int(k)): (iou[k], bf[k]) for seq, (iou, bf) in objects[0].items() for k in iou
    }
    return (float(jf[0]), float(j[0]), float(f[0])), per_object


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gt", type=Path, required=True, help="annotation root: <seq>/%%05d.png")
    ap.add_argument("--pred", type=Path, help="prediction root: <seq>/%%05d.png")
    ap.add_argument("--sequences", nargs="*", help="default: every sequence folder in --pred")
    ap.add_argument("--synthesize", type=Path, metavar="OUT", help="write synthetic predictions")
    ap.add_argument("--two-objects", action="store_true", help="with --synthesize: 2-object gt")
    ap.add_argument("--tol", type=float, default=0.2, help="allowed difference in points")
    args = ap.parse_args(argv)

    gt_root, pred_root = args.gt, args.pred
    sequences = args.sequences
    if args.synthesize:
        sequences = sequences or sorted(p.name for p in gt_root.iterdir() if p.is_dir())[:2]
        gt_root = synthesize(gt_root, args.synthesize, sequences, args.two_objects)
        pred_root = args.synthesize / "pred"
    if pred_root is None:
        ap.error("--pred or --synthesize is required")
    sequences = sequences or sorted(p.name for p in pred_root.iterdir() if p.is_dir())

    (a_jf, a_j, a_f), a_obj = ours(gt_root, pred_root, sequences)
    (b_jf, b_j, b_f), b_obj = vos_benchmark(gt_root, pred_root, sequences)

    print(f"{'sequence':<20} {'obj':>3} {'J ours':>7} {'J vosb':>7} {'F ours':>7} {'F vosb':>7}")
    for key in sorted(set(a_obj) | set(b_obj)):
        (ja, fa), (jb, fb) = a_obj.get(key, (np.nan,) * 2), b_obj.get(key, (np.nan,) * 2)
        print(f"{key[0]:<20} {key[1]:>3} {ja:7.2f} {jb:7.2f} {fa:7.2f} {fb:7.2f}")
    print(f"\n{'':<8} {'ours':>8} {'vos-benchmark':>14} {'diff':>8}")
    worst = 0.0
    for label, a, b in (("J&F", a_jf, b_jf), ("J", a_j, b_j), ("F", a_f, b_f)):
        print(f"{label:<8} {a:8.3f} {b:14.3f} {a - b:+8.3f}")
        worst = max(worst, abs(a - b))
    ok = worst <= args.tol
    print(f"\nmax |diff| = {worst:.4f} points: {'OK' if ok else 'MISMATCH'} (tol {args.tol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
