"""What both papers' reproductions share: the steps' progress lines, the output folder, the
published-beside-ours tables, and the page around them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from colortrack.eval.report.page import CSS, JS, esc
from colortrack.eval.reproduce.published import PublishedTable
from colortrack.io.atomic import atomic_write_json, atomic_write_text
from colortrack.io.runs import RunFolder

RESULTS = "results.json"
PAGE = "index.html"


@dataclass
class Steps:
    """Numbered progress lines on stderr: ``[k/n] what -> where``."""

    total: int
    progress: bool = True
    done: int = 0

    def start(self, what: str, folder: Path | None = None) -> None:
        self.done += 1
        if self.progress:
            where = f" -> {folder}" if folder is not None else ""
            print(f"[{self.done}/{self.total}] {what}{where}", file=sys.stderr, flush=True)


def claim_output(out: Path, config: dict) -> RunFolder:
    """The output folder of a reproduction; refuses one that holds another configuration."""
    folder = RunFolder.open(Path(out), config)
    folder.claim()
    return folder


def comparison(table: PublishedTable, measured: dict[str, dict[str, float | None]]) -> list[dict]:
    """One row per published row: its published values and ours (``measured[row.ours]``, None
    when not measured), JSON-ready."""
    return [
        {"name": row.name, "ours": row.ours, "published": row.values, "measured": measured.get(row.ours)}
        for row in table.rows
    ]


def comparison_json(table: PublishedTable, measured: dict, our_dataset: str, our_protocol: str) -> dict:
    return {
        "published": {key: value for key, value in table.to_dict().items() if key != "rows"},
        "ours": {"dataset": our_dataset, "protocol": our_protocol},
        "rows": comparison(table, measured),
    }


def _cell(value, digits: int) -> str:
    return "<td>&ndash;</td>" if value is None else f"<td>{value:.{digits}f}</td>"


def comparison_html(section: dict, digits: int = 1, table_id: str = "") -> str:
    """A published-beside-ours table with both datasets and protocols written above it."""
    published, ours = section["published"], section["ours"]
    columns = published["columns"]
    head = (
        "<tr><th></th><th></th>"
        f"<th colspan='{len(columns)}'>published: {esc(published['dataset'])}</th>"
        f"<th colspan='{len(columns)}'>ours: {esc(ours['dataset'])}</th></tr>"
        "<tr><th>method (paper)</th><th>ours as</th>"
        + "".join(f"<th>{esc(c)}</th>" for c in columns) * 2 + "</tr>"
    )
    rows = []
    for row in section["rows"]:
        measured = row["measured"] or {}
        cells = "".join(_cell(row["published"].get(c), digits) for c in columns)
        cells += "".join(_cell(measured.get(c), digits) for c in columns)
        rows.append(f"<tr><td>{esc(row['name'])}</td><td class='t'>{esc(row['ours'] or '')}</td>{cells}</tr>")
    notes = "".join(f"<li>{esc(note)}</li>" for note in published["notes"])
    return (
        f"<p class='note'><b>Published</b>: {esc(published['paper'])}, {esc(published['table'])}; "
        f"{esc(published['protocol'])}.<br><b>Ours</b>: {esc(ours['protocol'])}.</p>"
        + (f"<ul class='note'>{notes}</ul>" if notes else "")
        + f"<table id='{esc(table_id)}'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    )


@dataclass
class Page:
    title: str
    parts: list[str] = field(default_factory=list)

    def section(self, heading: str, *html: str) -> None:
        self.parts.append(f"<h2>{esc(heading)}</h2>")
        self.parts.extend(html)

    def note(self, text: str) -> str:
        return f"<p class='note'>{esc(text)}</p>"

    def html(self) -> str:
        return "\n".join([
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
            *self.parts,
            f"<script>{JS}</script></body></html>",
        ])


def write_outputs(out: Path, results: dict, page: Page) -> tuple[Path, Path]:
    """``out/results.json`` and ``out/index.html``, atomically."""
    atomic_write_json(out / RESULTS, results)
    atomic_write_text(out / PAGE, page.html())
    return out / RESULTS, out / PAGE
