"""The page's HTML: inline CSS, the sortable-table script and the tables."""

from __future__ import annotations

import html

import numpy as np

from colortrack.eval.report.runs import EvalRun
from colortrack.eval.report.stats import OddsRatio

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f3f8}td:first-child,th:first-child{text-align:left}
table.sortable thead tr.keys th{cursor:pointer;user-select:none}
table.sortable thead tr.keys th:after{content:" \\2195";color:#999}
tr.mean td{font-weight:bold;background:#fafafa}
td.best{background:#dff3df}td.t{text-align:left;word-break:break-all;max-width:260px}
img.plot{max-width:100%;border:1px solid #eee;margin:6px 0}
img.sheet{max-width:100%;display:block;margin:4px 0 16px}
p.note{color:#555;font-size:13px;max-width:900px}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var keys=table.querySelectorAll('thead tr.keys th');
  keys.forEach(function(th,col){
    th.addEventListener('click',function(){
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      var asc=th.getAttribute('data-order')!=='asc';
      keys.forEach(function(k){k.removeAttribute('data-order');});
      th.setAttribute('data-order',asc?'asc':'desc');
      rows.sort(function(a,b){
        var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
        var nx=parseFloat(x),ny=parseFloat(y);
        var r=(isNaN(nx)||isNaN(ny))?String(x).localeCompare(String(y)):nx-ny;
        return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def esc(text) -> str:
    return html.escape(str(text))


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or not np.isfinite(value):
        return "<td data-v='-1'>&ndash;</td>"
    return f"<td data-v='{value:.4f}'>{value:.{digits}f}</td>"


def summary_table(runs: list[EvalRun]) -> str:
    head = "<tr><th>method</th><th>folder</th><th>--method</th><th>preset</th><th>input height</th><th>sequences</th><th>J&amp;F</th><th>J</th><th>F</th><th>s/frame</th></tr>"
    rows = []
    for run in runs:
        r = run.results
        track = run.config.get("track") or {}
        partial = ""
        if r.get("partial"):
            partial = f" <em>(unfinished: {len(r['finished'])} of {r['total']} sequences)</em>"
        rows.append(
            f"<tr><td>{esc(run.label)}{partial}</td><td class='t'>{esc(run.path)}</td><td class='t'>{esc(run.method)}</td>"
            f"<td>{esc(run.config.get('preset', ''))}</td><td>{esc(track.get('short_side', track.get('input_height')) or 'native')}</td>"
            f"<td data-v='{len(run.sequences)}'>{len(run.sequences)}</td>"
            + _num(r.get("J&F")) + _num(r.get("J")) + _num(r.get("F"))
            + _num(r.get("seconds_per_frame"), 3) + "</tr>"
        )
    return f"<table id='summary'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def sequence_table(runs: list[EvalRun], names: list[str], attributes: dict[str, list[str]]) -> str:
    groups = "".join(f"<th colspan='2'>{esc(run.label)}</th>" for run in runs)
    keys = "<th>sequence</th><th style='text-align:left'>attributes</th>" + "<th>J</th><th>F</th>" * len(runs)
    body = []
    for name in names:
        cells = [f"<td data-v='{esc(name)}'>{esc(name)}</td>"]
        attrs = " ".join(attributes.get(name, []))
        cells.append(f"<td data-v='{esc(attrs)}' style='text-align:left'>{esc(attrs)}</td>")
        scores = [run.sequence_scores(name) if name in run.sequences else (None, None) for run in runs]
        best_j = max((s[0] for s in scores if s[0] is not None), default=None)
        for j, f in scores:
            cell = _num(j)
            if j is not None and j == best_j and len(runs) > 1:
                cell = cell.replace("<td ", "<td class='best' ", 1)
            cells.extend([cell, _num(f)])
        body.append(f"<tr class='seq'>{''.join(cells)}</tr>")
    mean = "<td>mean (dataset)</td><td></td>" + "".join(_num(run.results.get("J")) + _num(run.results.get("F")) for run in runs)
    return (
        "<table class='sortable' id='sequences'><thead>"
        f"<tr><th></th><th></th>{groups}</tr><tr class='keys'>{keys}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody><tfoot><tr class='mean'>{mean}</tr></tfoot></table>"
    )


def failure_table_html(runs: list[EvalRun], stats: dict[str, OddsRatio | None]) -> str:
    head = (
        "<tr><th>method</th><th>colorization</th><th>frames</th><th>track fail &amp; color fail (a)</th>"
        "<th>track fail &amp; color ok (b)</th><th>track ok &amp; color fail (c)</th><th>both ok (d)</th>"
        "<th>odds ratio</th><th>95% CI</th></tr>"
    )
    rows = []
    for run in runs:
        s = stats.get(run.label)
        if s is None:
            rows.append(f"<tr><td>{esc(run.label)}</td><td class='t'>{esc(run.color_note or 'no frames')}</td>" + "<td>&ndash;</td>" * 7 + "</tr>")
            continue
        (a, b), (c, d) = s.table
        mark = " *" if s.corrected else ""
        rows.append(
            f"<tr><td>{esc(run.label)}</td><td class='t'>{esc(run.color_note)}</td><td>{a + b + c + d}</td>"
            f"<td>{a}</td><td>{b}</td><td>{c}</td><td>{d}</td><td>{s.ratio:.2f}{mark}</td>"
            f"<td>{s.low:.2f} &ndash; {s.high:.2f}</td></tr>"
        )
    return f"<table id='failures'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
