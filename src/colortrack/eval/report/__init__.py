"""``colortrack report``: one self-contained HTML page comparing DAVIS evaluation folders.

Modules: ``runs`` (the folders), ``scores`` (cached per-frame J / F and colorization errors),
``stats``, ``plots``, ``page`` (HTML), ``build`` (the page); the command is ``colortrack.cli.report``.

Inputs are folders written by ``colortrack eval davis`` (``DIR/<seq>/%05d.png``,
``DIR/results.json``). The page holds, with no network access needed (inline CSS and JS, images
as base64 data URIs):

* a summary table (J&F, J, F, seconds per frame, configuration) per method;
* a sortable per-sequence J / F table, one column group per method;
* J over normalised time (Vondrick et al. Fig. 5): each sequence's scored frames 1 .. T-2 are
  mapped to [0, 1] and put in ``TIME_BINS`` equal bins; per method, the mean J of each bin over
  the sequences (a sequence counts once per bin, its objects averaged);
* J per DAVIS attribute (Fig. 6), from ``db_info.yml``: mean J over the sequences that have the
  attribute, in points relative to the ``flow`` method when one of the inputs is a flow
  evaluation, else absolute;
* tracking failure vs colorization failure (Sec. 4.5), per method. On a subsample of frames
  (every ``color_step``-th frame, first and last excluded as in the J&F protocol), the frame's
  gray version is colourized from frame 0 (the only colour reference) with the method's own
  embedder (a checkpoint's; the training-free gray embedder for identity, flow and color),
  ``reference`` colourization at ``color_height`` pixels high. Colorization error of a frame:
  the mean over pixels of the Euclidean distance between predicted and true Lab ab.
  Tracking failure: the frame's J (mean over objects) < ``fail_j`` (0.5). Colorization failure:
  error above the median error of all analysed frames of that method. The 2x2 contingency
  table gives the odds ratio ad / bc with a 95% confidence interval exp(log OR +- 1.96 SE),
  SE = sqrt(1/a + 1/b + 1/c + 1/d), 0.5 added to every cell when one is zero (Haldane).
  Errors are cached in ``DIR/report_colorization.json``;
* contact sheets: a few frames of each sequence, ground truth and each method's overlay.

Per-frame J and F are computed from the PNGs and the ground truth with
:func:`colortrack.eval.metrics.davis.evaluate_sequence` and cached in ``DIR/report_frames.json``
(invalidated when ``results.json`` changes). Plots and figures are only computed on the
sequences that every input evaluated; the table shows them all.
"""

from colortrack.eval.report.build import ReportOptions, build_report
from colortrack.eval.report.stats import OddsRatio, failure_table, odds_ratio, time_profile

__all__ = ["OddsRatio", "ReportOptions", "build_report", "failure_table", "odds_ratio", "time_profile"]
