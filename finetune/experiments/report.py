"""A comparison of runs as one standalone HTML file: the runs table, the settings
that differ, the verdict and the overlaid curves. It opens offline (a workshop
laptop, an archived experiment): plotly's JavaScript is embedded once and no
page asset is fetched from a CDN. Every user string is escaped.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from plotly.offline import get_plotlyjs

from ..runs.records import RunRecord
from .compare import runs_rows, verdict
from .figures import overlay_figures
from .labels import settings_diff

# plotly.js's default topojson address (used only by geographic maps, which this
# report never draws) is the one CDN reference in its bundle: blank it, so the
# file provably fetches nothing.
TOPOJSON_DEFAULT = '"https://cdn.plot.ly/un/"'
FIGURE_ORDER = ("loss", "eval_loss", "learning_rate")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1e293b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #cbd5e1; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f1f5f9; }
.verdict { background: #f8fafc; border-left: 4px solid #2563eb; padding: 0.75rem 1rem; }
.muted { color: #64748b; font-size: 0.85rem; }
"""


def write_report(records: list[RunRecord], path: str | Path) -> Path:
    """Write the comparison of `records` to `path` (one .html file) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(records), encoding="utf-8")
    return path


def render_report(records: list[RunRecord]) -> str:
    found = verdict(records)
    figures = overlay_figures(records)
    body = "\n".join([
        "<h1>Fine-tuning runs compared</h1>",
        f'<p class="muted">{len(records)} runs, written {html.escape(time.strftime("%Y-%m-%d %H:%M"))}</p>',
        "<h2>Verdict</h2>",
        f'<p class="verdict">{html.escape(found["text"])}</p>',
        "<h2>Runs</h2>", _table(runs_rows(records, versus_best=True, held_out=found["held_out"])),
        "<h2>Settings that differ</h2>",
        _table(settings_diff(records)) or '<p class="muted">The runs share every setting.</p>',
        "<h2>Curves</h2>",
        *(figures[name].to_html(full_html=False, include_plotlyjs=False) for name in FIGURE_ORDER),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Fine-tuning runs compared</title>"
            f"<style>{STYLE}</style><script>{_plotly_js()}</script></head>"
            f"<body>\n{body}\n</body></html>\n")


def _plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package, once for every figure."""
    return get_plotlyjs().replace(TOPOJSON_DEFAULT, '""')


def _table(rows: list[dict]) -> str:
    """An HTML table of rows (the first row's keys are the columns); '' for no rows."""
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))
