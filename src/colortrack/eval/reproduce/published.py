"""The published numbers that ``colortrack reproduce`` shows beside ours, each with its source.

Every table names its paper, table, dataset and protocol; a row names what of ours is measured in
its place: the evaluation's subfolder (``identity``, ``flow``, ``ours``, ...; for colorization
``<references>/<eval colorize method>``). A value of None was not
available to us: the page shows it as missing rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VONDRICK = "Vondrick et al., Tracking Emerges by Colorizing Videos, ECCV 2018"
AKIMOTO = ("Akimoto, Hayakawa, Shin and Narihira, Reference-Based Video Colorization with Spatiotemporal "
           "Correspondence, arXiv 2011.12528, 2020")


@dataclass(frozen=True)
class PublishedRow:
    """One row: the paper's name for the method, ours in its place (None: not measured), values."""

    name: str
    ours: str | None
    values: dict[str, float | None]


@dataclass(frozen=True)
class PublishedTable:
    paper: str
    table: str
    dataset: str
    protocol: str
    columns: tuple[str, ...]
    rows: tuple[PublishedRow, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def row_for(self, ours: str) -> PublishedRow | None:
        return next((row for row in self.rows if row.ours == ours), None)

    def to_dict(self) -> dict:
        return {
            "paper": self.paper, "table": self.table, "dataset": self.dataset, "protocol": self.protocol,
            "columns": list(self.columns), "notes": list(self.notes),
            "rows": [{"name": row.name, "ours": row.ours, "values": row.values} for row in self.rows],
        }


def _row(name: str, ours: str | None, columns: tuple[str, ...], values) -> PublishedRow:
    return PublishedRow(name, ours, dict(zip(columns, values)))


_JF = ("J", "F")
VONDRICK_TABLE1 = PublishedTable(
    paper=VONDRICK,
    table="Table 1",
    dataset="DAVIS-2017 validation (30 sequences, up to 5 objects each), 480p",
    protocol="semi-supervised video object segmentation: first-frame masks given; J (region IoU) and F (boundary "
    "F-measure) in %, mean over objects",
    columns=_JF,
    rows=(
        _row("Identity", "identity", _JF, (22.1, 23.6)),
        _row("Single Image Colorization", "image-colorization", _JF, (4.7, 5.2)),
        _row("Optical Flow (Coarse-to-Fine)", "farneback", _JF, (13.0, 15.1)),
        _row("Optical Flow (FlowNet2)", "flow", _JF, (26.7, 25.2)),
        _row("Ours", "ours", _JF, (34.6, 32.7)),
    ),
    notes=(
        "Our coarse-to-fine flow is OpenCV's Farneback (a 5-level pyramid); our best flow is DIS, not FlowNet2.",
        "Entered from the paper without its PDF at hand; no source reachable from the development machines "
        "(searched 2026-11-29) shows this table, so check the values against the paper before citing them.",
    ),
)

PCK_COLUMNS = ("PCK@0.1", "PCK@0.2", "PCK@0.3", "PCK@0.4", "PCK@0.5")
VONDRICK_TABLE2 = PublishedTable(
    paper=VONDRICK,
    table="Table 2",
    dataset="JHMDB (the paper's evaluation split, all clips)",
    protocol="human pose propagation: the 15 joints of the first frame given; PCK in % at thresholds 0.1-0.5 of "
    "the person's size",
    columns=PCK_COLUMNS,
    rows=(
        _row("Identity", "identity", PCK_COLUMNS, (43.1, 64.5, 76.0, 83.5, 88.5)),
        _row("Optical Flow (FlowNet2)", "flow", PCK_COLUMNS, (45.2, 62.9, 73.5, 80.6, 85.5)),
        _row("Ours", "ours", PCK_COLUMNS, (45.2, 69.6, 80.8, 87.5, 91.4)),
    ),
    notes=(
        "PCK@0.3-0.5 as tabulated by later work (Wang et al., CVPR 2019, Table 3, citing Vondrick et al.); the "
        "paper's own table reports @0.1 and @0.2.",
        "Ours (45.2 / 69.6 / 80.8 / 87.5 / 91.4) match the paper's entry on Papers with Code "
        "(paperswithcode.com/paper/tracking-emerges-by-colorizing-videos, JHMDB pose tracking, checked 2026-11-29); "
        "the Identity and FlowNet2 rows were entered from the paper without its PDF at hand and could not be checked.",
    ),
)

# Sec. 4.3: J on the DAVIS-2017 val sequences with more than one object.
VONDRICK_MULTI_OBJECT = PublishedTable(
    paper=VONDRICK,
    table="Sec. 4.3 (multiple objects)",
    dataset="DAVIS-2017 validation, the sequences with more than one object",
    protocol="J in %, mean over objects",
    columns=("J",),
    rows=(_row("Optical Flow (FlowNet2)", "flow", ("J",), (19.1,)), _row("Ours", "ours", ("J",), (31.0,))),
)

# Sec. 4.5 / Fig. 10: odds ratio of a tracking failure given a colorization failure.
VONDRICK_ODDS_RATIO = PublishedTable(
    paper=VONDRICK,
    table="Sec. 4.5, Fig. 10",
    dataset="DAVIS-2017 validation",
    protocol="frames cross-tabulated by tracking failure and colorization failure; odds ratio",
    columns=("odds ratio",),
    rows=(_row("Ours", "ours", ("odds ratio",), (2.3,)),),
    notes=("The paper gives no interval; ours is a 95% Wald interval.",),
)

AKIMOTO_REFS = ("first", "10th", "first+last", "10th+N-10th")
AKIMOTO_METHODS = (
    ("without tracking", "reference"),
    ("instance", "reference+inst"),
    ("dense", "spatiotemporal"),
    ("instance + dense", "spatiotemporal+inst"),
)
PSNR_COLUMNS = ("PSNR", "PSNR in", "PSNR out")
AKIMOTO_TABLE1 = PublishedTable(
    paper=AKIMOTO,
    table="Table 1",
    dataset="DAVIS (the paper's test videos)",
    protocol="reference-based colorization of the gray video; PSNR (dB) over the whole frame, inside and outside "
    "the instance masks; references: frame 0, frame 10, 1st & Nth, 10th & (N-10)th",
    columns=PSNR_COLUMNS,
    rows=tuple(
        _row(f"{label} ({refs})", f"{refs}/{method}", PSNR_COLUMNS, (None, None, None))
        for refs in AKIMOTO_REFS
        for label, method in AKIMOTO_METHODS
    ),
    notes=(
        "The published values were not available to us (arXiv 2011.12528; its tables are not in any source "
        "reachable from the development machines, searched 2026-11-29); the cells stay empty rather than guessed.",
    ),
)
