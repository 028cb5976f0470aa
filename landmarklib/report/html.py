"""The run's HTML pages, all readable offline: one per notebook, ``report.html`` and ``index.html``.

nbconvert's ``lab`` template is used with the blocks that load require.js, MathJax, Mermaid and
the widget manager from a CDN left out; figures are PNG outputs embedded as base64.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from .. import metrics as metrics_io
from .content import count, data_caveat, data_source_text, gap_text, metrics_for, pct

# nbconvert's lab template without what it loads from a CDN (require.js, MathJax, Mermaid, widgets).
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
"""
# The reader's page: a readable width, and markdown written by code aligned with markdown cells.
READER_TEMPLATE = (
    OFFLINE_TEMPLATE
    + """{% block extra_css %}<style type="text/css">
main { max-width: 1100px; margin: 0 auto; }
.jp-OutputArea-output.jp-RenderedMarkdown { padding-left: var(--jp-code-padding); }
</style>{% endblock extra_css %}
"""
)


# --------------------------------------------------------------------------- notebook pages


def html_exporter(report: bool = False):
    """nbconvert's HTMLExporter on the lab template, loading nothing from the network.

    Args:
        report: leave out code cells and In/Out prompts (the reader's page).
    """
    from nbconvert import HTMLExporter  # slow to import: only when a page is rendered (`landmarks --help` imports this)

    exporter = HTMLExporter(
        template_name="lab",
        embed_images=True,
        exclude_input=report,
        exclude_input_prompt=report,
        exclude_output_prompt=report,
        exclude_anchor_links=report,
    )
    exporter.raw_template = READER_TEMPLATE if report else OFFLINE_TEMPLATE
    return exporter


def _without_stderr(nb):
    """A copy of ``nb`` without stderr streams (library warnings, progress bars) for the reader's page."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("outputs"):
            cell.outputs = [
                o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    return nb


def render_html(notebook: str | os.PathLike, out_html: str | os.PathLike, report: bool = False) -> Path:
    """Render an executed notebook to a self-contained HTML file.

    Args:
        notebook: the executed ``.ipynb``.
        out_html: where to write the page.
        report: the reader's page: no code, no prompts, no stderr output.
    """
    import nbformat  # as nbconvert: only when a page is rendered

    nb = nbformat.read(str(notebook), as_version=4)
    if report:
        nb = _without_stderr(nb)
    out_html = Path(out_html)
    body, _ = html_exporter(report).from_notebook_node(nb, resources={"metadata": {"name": out_html.stem}})
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body, encoding="utf-8")
    return out_html


# --------------------------------------------------------------------------- index.html

# Per notebook number, (label, metrics key) shown beside its link.
KEY_NUMBERS: dict[str, list[tuple[str, str]]] = {
    "01": [("images", "n_images"), ("landmarks", "n_landmarks"), ("single-image landmarks", "single_image_landmarks")],
    "02": [("fetched", "ok"), ("failed", "failed"), ("images/s", "images_per_second")],
    "03": [("val top-1", "val_top1"), ("parameters", "params"), ("ran on", "ran_on")],
    "04": [("val top-1", "val_top1"), ("parameters", "params"), ("weights", "weights"), ("ran on", "ran_on")],
    "05": [("figures", "figures"), ("ran on", "ran_on")],
    "06": [("GAP", "gap"), ("test top-1", "top1"), ("test top-5", "top5"), ("ran on", "ran_on")],
}
_PERCENT_KEYS = {"val_top1", "val_top5", "top1", "top5", "train_top1", "answered_share", "answered_precision"}

_INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}p.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0 2rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.failed{color:#cf222e;font-weight:600}.stopped{color:#9a6700;font-weight:600}.notrun{color:#888}
a.report{display:inline-block;margin:.5rem 0 1rem;padding:.5rem 1rem;background:#0969da;color:#fff;
border-radius:6px;text-decoration:none}code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
"""


def format_value(key: str, value: Any) -> str:
    """A metrics value as the index page shows it (accuracies in %, counts with separators)."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return str(len(value))
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return pct(value, missing="-") if key in _PERCENT_KEYS else f"{value:.4g}"
    return str(value)


def beyond_numbers(data: dict) -> list[str]:
    """Notebook 07's key numbers (``metrics.Beyond``), one HTML line per method: closed-set top-1 and
    open-set GAP, each with its 95% bootstrap interval."""

    def with_interval(row: dict, key: str, text) -> str:
        interval = f"{text(row.get(f'{key}_low'))}, {text(row.get(f'{key}_high'))}"
        return f"<b>{escape(text(row.get(key)))}</b> <small>[{escape(interval)}]</small>"

    def percent(value) -> str:
        return pct(value, 1, missing="-")

    def gap(value) -> str:
        return "-" if value is None else gap_text(value)

    return [
        f"{escape(str(name))}: closed top-1 {with_interval(row, 'closed_top1', percent)}, "
        f"open GAP {with_interval(row, 'open_gap', gap)}"
        for name, row in (data.get("methods") or {}).items()
    ]


KEY_LINES = {"07": beyond_numbers}
"""Per notebook number, a function of its metrics giving key-number lines beyond ``KEY_NUMBERS``."""


def _notebook_row(nb: Path, run: Any, html_dir: Path, metrics: dict[str, dict]) -> str:
    """One row of the index: link, status (with the error), seconds, key numbers (``run``: a
    ``runner.NotebookRun``, or ``None`` for a notebook not run this time)."""
    number = nb.stem[:2]
    page = html_dir / f"{nb.stem}.html"
    name = f'<a href="{escape(page.name)}">{escape(nb.stem)}</a>' if page.exists() else escape(nb.stem)
    if run is not None:
        status, css, seconds = run.status, run.status.replace(" ", ""), f"{run.seconds:.1f}"
    else:
        status, css, seconds = ("earlier run", "ok", "") if page.exists() else ("not run", "notrun", "")
    data = metrics_for(number, metrics)
    numbers = "<br>".join(
        [
            f"{escape(label)}: <b>{escape(format_value(key, data[key]))}</b>"
            for label, key in KEY_NUMBERS.get(number, [])
            if key in data
        ]
        + (KEY_LINES[number](data) if number in KEY_LINES and data else [])
    )
    health = data.get("health")
    if health and health != "ok":  # a diverged or collapsed run is no result
        numbers += (
            f'<br><span class="failed">{escape(str(health))}: no result</span>'
            f"<br><small>{escape(str(data.get('health_note') or ''))}</small>"
        )
    error = f"<br><small>{escape(run.error)}</small>" if run is not None and run.error else ""
    return (
        f'<tr><td>{name}</td><td class="{css}">{escape(status)}{error}</td>'
        f'<td class="num">{seconds}</td><td>{numbers}</td></tr>'
    )


def _markdown_inline(text: str) -> str:
    """``**bold**`` and ```code``` of a one-line markdown text as HTML (the rest escaped)."""
    html = escape(text)
    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", html)


def _data_line(source: dict | None, params: dict) -> str:
    """The index's "Data" paragraph: notebook 01's data source record and, unless it is the 2018 catalog, the caveat."""
    if not source:
        catalog = params.get("train_csv")
        return (
            "<p><b>Data:</b> not recorded (notebook 01 not run, or run before it recorded its data source)"
            + (f"; catalog parameter <code>{escape(str(catalog))}</code>" if catalog else "")
            + ".</p>"
        )
    caveat = data_caveat(source.get("kind"))
    return f"<p><b>Data:</b> {_markdown_inline(data_source_text(source))}.</p>" + (
        f'<p class="failed">{escape(caveat)}</p>' if caveat else ""
    )


def build_index(out_dir: str | os.PathLike, notebooks: Sequence[Path], runs: Sequence[Any], params: dict) -> Path:
    """Write ``<out>/html/index.html``: a link per notebook with its key numbers, and the parameters.

    Args:
        out_dir: the reports folder of the run.
        notebooks: every numbered notebook (those not run this time are listed from earlier runs).
        runs: this run's notebooks (``runner.NotebookRun``).
        params: the parameters the run used.
    """
    out_dir = Path(out_dir)
    html_dir = out_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics_io.load_all(out_dir)
    by_name = {r.name: r for r in runs}
    rows = "".join(_notebook_row(nb, by_name.get(nb.stem), html_dir, metrics) for nb in notebooks)
    params_rows = "".join(
        f"<tr><td><code>{escape(str(k))}</code></td><td>{escape(repr(v))}</td></tr>" for k, v in params.items()
    )
    report_link = (
        '<a class="report" href="report.html">Open the report</a>'
        if (html_dir / "report.html").exists()
        else "<p>The report notebook has not been rendered yet.</p>"
    )
    title = f"Landmark recognition: run {escape(str(params.get('run_name', out_dir.name)))}"
    source = metrics_for("01", metrics).get("data_source")
    data_line = _data_line(source, params)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_INDEX_CSS}</style></head>
<body><h1>{title}</h1><p class="sub">written {escape(time.strftime("%Y-%m-%d %H:%M"))}</p>
{report_link}
{data_line}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>key numbers</th></tr>
{rows}</table>
<h2>Parameters</h2>
<table><tr><th>name</th><th>value</th></tr>{params_rows}</table>
</body></html>
"""
    index = html_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
