"""Run the numbered notebooks with papermill, render them to offline HTML, and build the report's tables.

Two halves:

* The runner (``landmarks report``): executes ``notebooks/NN_*.ipynb`` in order from one YAML
  parameters file (each notebook gets only the names its ``parameters`` cell declares), keeps the
  executed copies in ``<out>/notebooks/``, renders each to ``<out>/html/NN_name.html``, the report
  notebook without code to ``<out>/html/report.html``, and writes ``<out>/html/index.html``.
* The report's content (used by ``notebooks/06_write_report.ipynb``): the study's published
  numbers, the table setting this run beside them, the markdown of each section, and the
  evaluation of both models on the test set.

The HTML needs no network: nbconvert's ``lab`` template is used with the blocks that load
require.js, MathJax, Mermaid and the widget manager from a CDN left out; figures are PNG
outputs embedded as base64.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import html
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from . import paths

if TYPE_CHECKING:
    import pandas as pd

KERNEL = "landmarks"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
REPORT_NOTEBOOK = "06"
# Parameters the runner itself reads (the embedded sample's size); notebooks may declare them too.
RUNNER_PARAMS = ("sample_dir", "sample_landmarks", "sample_train", "sample_test", "sample_seed")
_SAMPLE_ARGS = {"sample_landmarks": "n_landmarks", "sample_train": "n_train",
                "sample_test": "n_test", "sample_seed": "seed"}

# nbconvert's lab template without what it loads from a CDN (require.js, MathJax, Mermaid, widgets).
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
"""
# The reader's page: a readable width, and markdown written by code aligned with markdown cells.
READER_TEMPLATE = OFFLINE_TEMPLATE + """{% block extra_css %}<style type="text/css">
main { max-width: 1100px; margin: 0 auto; }
.jp-OutputArea-output.jp-RenderedMarkdown { padding-left: var(--jp-code-padding); }
</style>{% endblock extra_css %}
"""


class ReportError(Exception):
    """A run that cannot start or go on; the message is meant for the user, one line."""


@dataclass
class NotebookRun:
    """One notebook of a run: where it went and how it ended."""

    name: str
    source: Path
    executed: Path
    html: Path
    parameters: dict = field(default_factory=dict)
    status: str = "not run"  # ok | failed | not run
    seconds: float = 0.0
    error: str = ""


# --------------------------------------------------------------------------- parameters


def load_params(path: str | os.PathLike, overrides: dict | None = None) -> dict:
    """The parameters file as a flat dict, with ``overrides`` applied on top.

    Args:
        path: a YAML file holding one mapping of names to values.
        overrides: values that replace the file's (e.g. from ``--set``).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ReportError(f"parameters file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(params, dict):
        raise ReportError(f"{path}: expected a mapping of names to values, got {type(params).__name__}")
    params.update(overrides or {})
    return params


def parse_overrides(items: Sequence[str]) -> dict:
    """``["epochs=3", "threshold=0.1"]`` -> ``{"epochs": 3, "threshold": 0.1}`` (values parsed as YAML)."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReportError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return overrides


def declared_parameters(notebook: str | os.PathLike) -> list[str]:
    """The names a notebook's ``parameters`` cell declares (papermill.inspect_notebook)."""
    import papermill

    return list(papermill.inspect_notebook(str(notebook)))


def notebook_parameters(notebook: str | os.PathLike, params: dict) -> dict:
    """The subset of ``params`` that ``notebook`` declares."""
    names = declared_parameters(notebook)
    return {name: params[name] for name in names if name in params}


# --------------------------------------------------------------------------- notebooks and kernel


def find_notebooks(notebooks_dir: str | os.PathLike, only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``notebooks_dir``, sorted; ``only`` keeps some.

    Args:
        notebooks_dir: the folder holding the notebooks.
        only: numbers (``"01"``, ``"2"``) or name prefixes; ``None`` keeps them all.
    """
    found = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ReportError(f"no numbered notebooks (NN_*.ipynb) in {notebooks_dir}")
    if not only:
        return found
    chosen = []
    for token in only:
        token = token.strip()
        prefix = f"{int(token):02d}_" if token.isdigit() else token
        matches = [p for p in found if p.stem.startswith(prefix)]
        if not matches:
            names = ", ".join(p.stem for p in found)
            raise ReportError(f"--only {token}: no such notebook (have: {names})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def parse_only(value: str | None) -> list[str] | None:
    """``"01,02"`` -> ``["01", "02"]``; empty -> ``None`` (all notebooks)."""
    if not value:
        return None
    return [t for t in (s.strip() for s in value.split(",")) if t]


def check_kernel(name: str = KERNEL) -> None:
    """Raise ``ReportError`` with what to do when the Jupyter kernel ``name`` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    if name == KERNEL:
        raise ReportError(
            f'Jupyter kernel "{name}" not found: run `make install` '
            f"(or `python -m ipykernel install --sys-prefix --name {name}`), or pick one with --kernel"
        )
    raise ReportError(f'Jupyter kernel "{name}" not found (see `jupyter kernelspec list`)')


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (the kernel inherits them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ensure_sample(params: dict) -> dict | None:
    """Build the embedded sample when ``train_csv`` lies under ``sample_dir`` and is missing.

    Returns ``make_sample``'s summary, or ``None`` when nothing had to be built. Paths are
    relative to the project root.
    """
    if not params.get("sample_dir") or not params.get("train_csv"):
        return None
    sample_dir = paths.resolve(params["sample_dir"])
    train_csv = paths.resolve(params["train_csv"])
    if train_csv.exists() or not train_csv.resolve().is_relative_to(sample_dir.resolve()):
        return None
    from .sample import make_sample

    kwargs = {arg: params[key] for key, arg in _SAMPLE_ARGS.items() if params.get(key) is not None}
    print(f"building the embedded sample in {sample_dir} ...", flush=True)
    return make_sample(sample_dir, **kwargs)


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _source_cell_index(source_nb: Path, failing_source: str, executed_index: int) -> int:
    """The failing cell's index in the source notebook (papermill's index counts its injected cell)."""
    import nbformat

    cells = nbformat.read(source_nb, as_version=4).cells
    same = [i for i, c in enumerate(cells) if c.source == failing_source]
    return min(same, key=lambda i: abs(i - executed_index)) if same else executed_index


def execute_notebook(run: NotebookRun, kernel: str, root: Path, progress: bool = True) -> None:
    """Execute ``run.source`` into ``run.executed``; fill in status, seconds and error.

    A failing cell sets ``run.status = "failed"`` and ``run.error`` to one line naming the
    cell (index, ``In [n]``, first line of its source) and the exception; the executed notebook
    keeps the failure, highlighted by papermill.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run.executed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(run.source), str(run.executed), parameters=run.parameters, kernel_name=kernel,
            cwd=str(root), progress_bar=progress,
            extra_arguments=["--log-level=ERROR"],  # the kernel's own warnings (e.g. plain-TCP transport) are noise here
        )
        run.status = "ok"
    except PapermillExecutionError as exc:
        index = _source_cell_index(run.source, exc.source, exc.cell_index)
        run.status = "failed"
        run.error = (f"cell {index} (In [{exc.exec_count}]: {_first_line(exc.source)!r}): "
                     f"{exc.ename}: {_first_line(str(exc.evalue))}")
    except Exception as exc:  # kernel died, timed out, could not start: name it, keep going to the summary
        run.status = "failed"
        run.error = f"{type(exc).__name__}: {_first_line(str(exc))}"
    run.seconds = time.perf_counter() - start


# --------------------------------------------------------------------------- HTML


def html_exporter(report: bool = False):
    """nbconvert's HTMLExporter on the lab template, loading nothing from the network.

    Args:
        report: leave out code cells and In/Out prompts (the reader's page).
    """
    from nbconvert import HTMLExporter

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
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    return nb


def render_html(notebook: str | os.PathLike, out_html: str | os.PathLike, report: bool = False) -> Path:
    """Render an executed notebook to a self-contained HTML file.

    Args:
        notebook: the executed ``.ipynb``.
        out_html: where to write the page.
        report: the reader's page: no code, no prompts, no stderr output.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    if report:
        nb = _without_stderr(nb)
    body, _ = html_exporter(report).from_notebook_node(nb, resources={"metadata": {"name": Path(out_html).stem}})
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body, encoding="utf-8")
    return out_html


# index.html: per notebook number, (label, metrics key) shown beside its link.
KEY_NUMBERS: dict[str, list[tuple[str, str]]] = {
    "01": [("images", "n_images"), ("landmarks", "n_landmarks"), ("single-image landmarks", "single_image_landmarks")],
    "02": [("fetched", "ok"), ("failed", "failed"), ("images/s", "images_per_second")],
    "03": [("val top-1", "val_top1"), ("parameters", "params")],
    "04": [("val top-1", "val_top1"), ("parameters", "params"), ("weights", "weights")],
    "05": [("figures", "figures")],
    "06": [("GAP", "gap"), ("test top-1", "top1"), ("test top-5", "top5")],
}
_PERCENT_KEYS = {"val_top1", "val_top5", "top1", "top5", "train_top1", "answered_share", "answered_precision"}


def format_value(key: str, value: Any) -> str:
    """A metrics value as the index page shows it (accuracies in %, counts with separators)."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return str(len(value))
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{100 * value:.2f}%" if key in _PERCENT_KEYS else f"{value:.4g}"
    return str(value)


def metrics_for(number: str, metrics: dict[str, dict]) -> dict:
    """The metrics file of notebook ``number`` (``"03"`` -> ``metrics["03_res_incep"]``), or ``{}``."""
    for stem, data in metrics.items():
        if stem.startswith(f"{number}_"):
            return data
    return {}


_INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}p.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0 2rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.failed{color:#cf222e;font-weight:600}.notrun{color:#888}
a.report{display:inline-block;margin:.5rem 0 1rem;padding:.5rem 1rem;background:#0969da;color:#fff;
border-radius:6px;text-decoration:none}code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
"""


def build_index(out_dir: str | os.PathLike, notebooks: Sequence[Path], runs: Sequence[NotebookRun],
                params: dict) -> Path:
    """Write ``<out>/html/index.html``: a link per notebook with its key numbers, and the parameters.

    Args:
        out_dir: the reports folder of the run.
        notebooks: every numbered notebook (those not run this time are listed from earlier runs).
        runs: this run's notebooks.
        params: the parameters the run used.
    """
    from . import metrics as metrics_io

    out_dir = Path(out_dir)
    html_dir = out_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics_io.load_all(out_dir)
    by_name = {r.name: r for r in runs}
    esc = html.escape
    rows = []
    for nb in notebooks:
        number = nb.stem[:2]
        run = by_name.get(nb.stem)
        page = html_dir / f"{nb.stem}.html"
        name = f'<a href="{esc(page.name)}">{esc(nb.stem)}</a>' if page.exists() else esc(nb.stem)
        if run is not None:
            status, css = run.status, run.status.replace(" ", "")
            seconds = f"{run.seconds:.1f}"
        else:
            status, css, seconds = ("earlier run", "ok", "") if page.exists() else ("not run", "notrun", "")
        data = metrics_for(number, metrics)
        numbers = "<br>".join(f"{esc(label)}: <b>{esc(format_value(key, data[key]))}</b>"
                              for label, key in KEY_NUMBERS.get(number, []) if key in data)
        error = f"<br><small>{esc(run.error)}</small>" if run is not None and run.error else ""
        rows.append(f'<tr><td>{name}</td><td class="{css}">{esc(status)}{error}</td>'
                    f'<td class="num">{seconds}</td><td>{numbers}</td></tr>')
    params_rows = "".join(f"<tr><td><code>{esc(str(k))}</code></td><td>{esc(repr(v))}</td></tr>"
                          for k, v in params.items())
    report_link = ('<a class="report" href="report.html">Open the report</a>'
                   if (html_dir / "report.html").exists() else "<p>The report notebook has not been rendered yet.</p>")
    title = f"Landmark recognition: run {esc(str(params.get('run_name', out_dir.name)))}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_INDEX_CSS}</style></head>
<body><h1>{title}</h1><p class="sub">written {esc(time.strftime('%Y-%m-%d %H:%M'))}</p>
{report_link}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>key numbers</th></tr>
{''.join(rows)}</table>
<h2>Parameters</h2>
<table><tr><th>name</th><th>value</th></tr>{params_rows}</table>
</body></html>
"""
    index = html_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


# --------------------------------------------------------------------------- the run


def summary_table(runs: Sequence[NotebookRun]) -> str:
    """A plain-text table: notebook, seconds, status."""
    width = max([len("notebook")] + [len(r.name) for r in runs])
    lines = [f"{'notebook':<{width}}  {'seconds':>8}  status", f"{'-' * width}  {'-' * 8}  ------"]
    lines += [f"{r.name:<{width}}  {r.seconds:>8.1f}  {r.status}" for r in runs]
    lines.append(f"{'total':<{width}}  {sum(r.seconds for r in runs):>8.1f}")
    return "\n".join(lines)


def run_report(
    params_file: str | os.PathLike,
    out: str | os.PathLike | None = None,
    only: Sequence[str] | None = None,
    overrides: dict | None = None,
    kernel: str = KERNEL,
    notebooks_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[NotebookRun]:
    """Execute the numbered notebooks in order, render them, and write the index page.

    Stops at the first failing notebook (its executed copy and HTML are kept); the others are
    marked "not run". Raises ``ReportError`` before running anything when the parameters, the
    selection or the kernel are wrong.

    Args:
        params_file: the YAML parameters file.
        out: the reports folder (relative to the project root); sets ``reports_dir``. ``None``:
            the file's ``reports_dir``, else ``reports``.
        only: notebook numbers to run (``["01", "02"]``); ``None`` runs them all.
        overrides: values replacing the file's (``--set``).
        kernel: the Jupyter kernel to execute with.
        notebooks_dir: where the notebooks are (default ``<root>/notebooks``).
        root: the project root: the notebooks' working folder and ``LANDMARKS_ROOT``.
        progress: show papermill's per-cell progress bar.
    """
    root = Path(root).resolve() if root else paths.project_root()
    # Figures inline in the executed notebooks even where MPLBACKEND=Agg is set for headless scripts.
    with _environment(LANDMARKS_ROOT=str(root), MPLBACKEND=INLINE_BACKEND):
        params = load_params(params_file, overrides)
        reports_dir = str(out if out is not None else params.get("reports_dir") or "reports")
        params["reports_dir"] = reports_dir
        out_dir = paths.resolve(reports_dir)
        all_notebooks = find_notebooks(notebooks_dir or root / "notebooks")
        selected = find_notebooks(notebooks_dir or root / "notebooks", only)
        check_kernel(kernel)
        _warn_unknown(overrides or {}, all_notebooks)
        ensure_sample(params)

        runs = [NotebookRun(name=nb.stem, source=nb, executed=out_dir / "notebooks" / nb.name,
                            html=out_dir / "html" / f"{nb.stem}.html", parameters=notebook_parameters(nb, params))
                for nb in selected]
        for i, run in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {run.name}", flush=True)
            execute_notebook(run, kernel, root, progress=progress)
            if run.executed.exists():
                render_html(run.executed, run.html)
                if run.name.startswith(f"{REPORT_NOTEBOOK}_"):
                    render_html(run.executed, out_dir / "html" / "report.html", report=True)
            if run.status == "failed":
                print(f"FAILED {run.name}: {run.error}\n  executed notebook: {run.executed}\n"
                      f"  rendered: {run.html}", file=sys.stderr, flush=True)
                break
        index = build_index(out_dir, all_notebooks, runs, params)
    print(summary_table(runs))
    print(f"index: {index}")
    if (out_dir / "html" / "report.html").exists():
        print(f"report: {out_dir / 'html' / 'report.html'}")
    return runs


def _warn_unknown(overrides: dict, notebooks: Sequence[Path]) -> None:
    """Warn about ``--set`` names that no notebook declares and the runner does not read (typos)."""
    known = set(RUNNER_PARAMS) | {"reports_dir", "run_name"}
    for nb in notebooks:
        known.update(declared_parameters(nb))
    for key in overrides:
        if key not in known:
            print(f"warning: --set {key}: no notebook declares this parameter", file=sys.stderr)


# --------------------------------------------------------------------------- CLI


def add_cli(subparsers) -> None:
    """Register ``landmarks report``."""
    p = subparsers.add_parser(
        "report",
        help="run the numbered notebooks with papermill and render the HTML report",
        description="Run notebooks/NN_*.ipynb in order from one parameters file; executed copies go to "
                    "<out>/notebooks/, HTML to <out>/html/ (index.html, report.html).",
    )
    p.add_argument("--params", default=None,
                   help="YAML parameters file (default: params/default.yaml of the project)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")
    p.add_argument("--out", default=None,
                   help="reports folder, relative to the project root (default: reports_dir of the parameters)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (value parsed as YAML); repeatable")
    p.add_argument("--kernel", default=KERNEL, help=f"Jupyter kernel to execute with (default: {KERNEL})")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    params_file = Path(args.params) if args.params else paths.project_root() / "params" / "default.yaml"
    try:
        runs = run_report(params_file, out=args.out, only=parse_only(args.only),
                          overrides=parse_overrides(args.overrides), kernel=args.kernel,
                          progress=not args.no_progress)
    except ReportError as exc:
        print(f"landmarks report: error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(r.status == "failed" for r in runs) else 0


# =========================================================================== the report's content
# Used by notebooks/06_write_report.ipynb: every number comes from a metrics file or is measured here.

STUDY = {
    "n_images": 5000,
    "n_landmarks": 2286,
    "single_image_landmarks": 159,
    "failed": 33,
    "empty_folders_removed": 12,
    "image_size": 250,
    "res_incep_params": 2_200_000,
    "resnet50_params": 25_636_712,
    "res_incep_val_top1": 0.0589,
    "resnet50_val_top1": 0.0402,
    "res_incep_seconds_per_image": 33.14,
    "resnet50_seconds_per_image": 24.37,
    "threshold": 0.045,
    "res_incep_answered_of_ten": 0.6,
    "resnet50_answered_of_ten": 0.0,
}
"""The study's published numbers (Data and Exploration, Implementation, Justification)."""

MODELS = {"res_incep": "Res-Incep", "resnet50": "ResNet-50"}
NOT_RUN = "not run"


def pct(value: float | None, digits: int = 2, missing: str = NOT_RUN) -> str:
    """``0.0589`` -> ``"5.89%"``; ``None``/NaN -> ``missing``."""
    if value is None or (isinstance(value, float) and value != value):
        return missing
    return f"{100 * value:.{digits}f}%"


def _precision(scores: dict) -> str:
    """Precision of the answers; undefined (no answers) is said so."""
    return pct(scores["answered_precision"], 1, missing="no answers")


def count(value: float | int | None) -> str:
    """``2286`` -> ``"2,286"``; ``None`` -> ``"not run"``."""
    if value is None or (isinstance(value, float) and value != value):
        return NOT_RUN
    return f"{int(round(value)):,}"


def _get(metrics: dict[str, dict], number: str, key: str):
    return metrics_for(number, metrics).get(key)


def data_source(train_csv: str, sample_dir: str | None, metrics: dict[str, dict]) -> dict:
    """Which data the run used: the embedded synthetic sample or a real catalog.

    Returns:
        dict: kind (``"sample"`` | ``"real"``), catalog (the CSV the exploration read, or
        ``train_csv``), text (one markdown sentence).
    """
    catalog = _get(metrics, "01", "catalog") or train_csv
    csv = paths.resolve(catalog)
    sample = paths.resolve(sample_dir) if sample_dir else None
    if sample is not None and csv.resolve().is_relative_to(sample.resolve()):
        text = (f"This run used the **embedded synthetic sample** (`{sample_dir}`, drawn by "
                "`landmarklib.sample`: invented landmarks, a long tail of rare ones, broken files on "
                "purpose), not the Kaggle photos; its numbers test the pipeline, not the study's accuracy.")
        return {"kind": "sample", "catalog": str(catalog), "text": text}
    text = f"This run used the real catalog `{catalog}`."
    return {"kind": "real", "catalog": str(catalog), "text": text}


def resnet_weights(metrics: dict[str, dict]) -> str:
    """One sentence: did the ResNet-50 benchmark start from ImageNet weights (the study's did)?"""
    weights = _get(metrics, "04", "weights")
    if weights is None:
        return "The ResNet-50 benchmark (notebook 04) was not run."
    note = _get(metrics, "04", "weights_note") or ""
    if weights == "imagenet":
        return f"ResNet-50 started from **ImageNet weights**, as in the study. {note}".strip()
    return (f"ResNet-50 started from **{'random' if weights == 'random' else weights} weights**, "
            f"not ImageNet as in the study. {note}").strip()


def figure_list(entry: dict) -> list[tuple[str, str]]:
    """``(path relative to reports_dir, caption)`` of each figure a metrics file lists."""
    out = []
    for item in entry.get("figures") or []:
        if isinstance(item, dict):
            out.append((str(item.get("path", "")), str(item.get("caption", ""))))
        else:
            out.append((str(item), ""))
    return out


def show_figures(entry: dict, reports_dir: str | os.PathLike) -> None:
    """Display a notebook's figures, embedded as PNG (so the HTML is self-contained), with their captions.

    Args:
        entry: the notebook's metrics (its ``figures`` list).
        reports_dir: the folder the figure paths are relative to.
    """
    from IPython.display import Image, Markdown, display

    for rel, caption in figure_list(entry):
        path = paths.resolve(reports_dir) / rel
        if not path.is_file():
            display(Markdown(f"*Figure `{rel}` is missing.*"))
            continue
        display(Image(filename=str(path), embed=True))
        if caption:
            display(Markdown(f"*{caption}*"))


def shown_path(path: str | os.PathLike) -> str:
    """A path as the report prints it: relative to the project root when inside it."""
    path = Path(path).resolve()
    root = paths.project_root()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


# --------------------------------------------------------------------------- evaluation on the test set


@dataclass
class ModelEvaluation:
    """One model on the test set."""

    name: str
    label: str
    model_path: Path
    predictions: Any  # DataFrame(id, landmark_id, confidence, answered, top_ids, error, actual, correct)
    scores: dict
    curve: Any  # DataFrame(threshold, answered, answered_share, precision_answered, gap)
    confusion: Any  # DataFrame, rows true landmark, columns predicted
    timing: dict
    submission: Path


def curve_thresholds(threshold: float) -> list[float]:
    """Thresholds for the curve: 0 to 1 in steps of 0.005, and the run's threshold."""
    import numpy as np

    return sorted(set(np.round(np.linspace(0.0, 1.0, 201), 4).tolist()) | {float(threshold)})


def evaluate_model(model_path: str | os.PathLike, test_dir: str | os.PathLike,
                   test_solution_csv: str | os.PathLike, threshold: float, reports_dir: str | os.PathLike,
                   progress: bool = True) -> ModelEvaluation:
    """Predict the test folder with one saved model and score it against the solution.

    Writes the Kaggle submission to ``<reports_dir>/submissions/<model>.csv``.

    Args:
        model_path: ``<models_dir>/<name>.keras``.
        test_dir: the fetched test folder (``manifest.csv``, ``<id>.jpg``).
        test_solution_csv: ``id,landmark_id`` (empty = no landmark).
        threshold: answer only at or above this confidence (the study's 4.5%).
        reports_dir: the reports folder.
        progress: show progress bars.

    Load time, single-image latency and batched throughput are measured with ``evaluate.time_model``.
    """
    from . import evaluate

    model_path = paths.resolve(model_path)
    name = model_path.name.removesuffix(".keras")
    pred = evaluate.predict(model_path, paths.resolve(test_dir), threshold=threshold, progress=progress)
    solution = evaluate.read_solution(paths.resolve(test_solution_csv))
    scores = evaluate.score(pred, solution, threshold)
    table = solution.rename(columns={"landmark_id": "actual"}).merge(pred, on="id", how="left")
    predicted = table["landmark_id"].astype("Int64").astype("string").fillna("")
    table["correct"] = (predicted == table["actual"]) & (table["actual"] != "")
    curve = evaluate.threshold_curve(table["confidence"].to_numpy(dtype=float), table["correct"].to_numpy(),
                                     curve_thresholds(threshold), n_landmarks=scores["n_landmark_images"],
                                     ids=table["id"].to_numpy())
    confusion = evaluate.confusion_matrix(table["landmark_id"], table["actual"], top_n=10)
    times = evaluate.time_model(model_path, paths.resolve(test_dir), n_latency=20, warmup=3,
                                batch_size=32, n_batches=2)
    submission = evaluate.write_submission(pred, paths.resolve(reports_dir) / "submissions" / f"{name}.csv", threshold)
    table["answered"] = table["answered"].astype("boolean").fillna(False).astype(bool)
    return ModelEvaluation(name=name, label=MODELS.get(name, name), model_path=model_path, predictions=table,
                           scores=scores, curve=curve, confusion=confusion, timing=times, submission=submission)


def evaluate_models(models_dir: str | os.PathLike, test_dir: str | os.PathLike,
                    test_solution_csv: str | os.PathLike, threshold: float, reports_dir: str | os.PathLike,
                    progress: bool = True) -> tuple[dict[str, ModelEvaluation], list[str]]:
    """``evaluate_model`` for Res-Incep and ResNet-50 where saved; the reasons for those that could not be.

    Returns:
        (name -> ModelEvaluation, list of one-line reasons for models left out).
    """
    test_dir, solution = paths.resolve(test_dir), paths.resolve(test_solution_csv)
    if not test_dir.is_dir():
        return {}, [f"the fetched test folder `{test_dir}` is missing (notebook 02 not run)"]
    if not solution.is_file():
        return {}, [f"the test solution `{solution}` is missing"]
    results, missing = {}, []
    for name in MODELS:
        model_path = paths.resolve(models_dir) / f"{name}.keras"
        if not model_path.is_file():
            missing.append(f"{MODELS.get(name, name)}: `{model_path}` is missing (notebook "
                           f"{'03' if name == 'res_incep' else '04'} not run)")
            continue
        results[name] = evaluate_model(model_path, test_dir, solution, threshold, reports_dir, progress=progress)
    return results, missing


# --------------------------------------------------------------------------- tables


def study_comparison(metrics: dict[str, dict], evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """The study's published numbers beside this run's (strings, "not run" where a step was not run)."""
    import pandas as pd

    def ev(name: str, key: str):
        e = evaluations.get(name)
        return None if e is None else e.scores.get(key)

    def seconds(name: str) -> str:
        e = evaluations.get(name)
        if e is None:
            return NOT_RUN
        return f"{e.timing['latency_median_ms'] / 1000:.4f}"

    rows = [
        ("training rows used (first N of train.csv)", count(STUDY["n_images"]), count(_get(metrics, "01", "n_images"))),
        ("unique landmarks among them", count(STUDY["n_landmarks"]), count(_get(metrics, "01", "n_landmarks"))),
        ("single-image landmarks", count(STUDY["single_image_landmarks"]),
         count(_get(metrics, "01", "single_image_landmarks"))),
        ("failed downloads", count(STUDY["failed"]), count(_get(metrics, "02", "failed"))),
        ("empty landmark folders removed", count(STUDY["empty_folders_removed"]),
         count(_get(metrics, "02", "empty_folders_removed"))),
        ("image size (px)", f"{STUDY['image_size']}", count(_get(metrics, "02", "image_size"))),
        ("model input size (px)", f"{STUDY['image_size']}", count(_get(metrics, "03", "input_size"))),
        ("Res-Incep parameters", "~2.2M", count(_get(metrics, "03", "params"))),
        ("ResNet-50 parameters", count(STUDY["resnet50_params"]), count(_get(metrics, "04", "params"))),
        ("Res-Incep validation accuracy", pct(STUDY["res_incep_val_top1"]), pct(_get(metrics, "03", "val_top1"))),
        ("ResNet-50 validation accuracy", pct(STUDY["resnet50_val_top1"]), pct(_get(metrics, "04", "val_top1"))),
        ("Res-Incep seconds per image", f"{STUDY['res_incep_seconds_per_image']}", seconds("res_incep")),
        ("ResNet-50 seconds per image", f"{STUDY['resnet50_seconds_per_image']}", seconds("resnet50")),
        ("Res-Incep test GAP", "not measured", _fmt_gap(ev("res_incep", "gap"))),
        ("ResNet-50 test GAP", "not measured", _fmt_gap(ev("resnet50", "gap"))),
        ("Res-Incep test top-5 accuracy", "not measured", pct(ev("res_incep", "top5"))),
        ("ResNet-50 test top-5 accuracy", "not measured", pct(ev("resnet50", "top5"))),
        (f"Res-Incep answered at {pct(STUDY['threshold'], 1)}", "60% of 10 images", pct(ev("res_incep", "answered_share"), 1)),
        (f"ResNet-50 answered at {pct(STUDY['threshold'], 1)}", "0% of 10 images", pct(ev("resnet50", "answered_share"), 1)),
    ]
    return pd.DataFrame(rows, columns=["measure", "study (2018)", "this run"]).set_index("measure").rename_axis(None)


def _fmt_gap(value: float | None) -> str:
    return NOT_RUN if value is None or value != value else f"{value:.4f}"


def evaluation_table(evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """Test-set scores per model: GAP at the threshold and answering all, top-1, top-5, coverage, precision."""
    import pandas as pd

    rows = {}
    for e in evaluations.values():
        s = e.scores
        rows[e.label] = {
            "GAP (threshold)": _fmt_gap(s["gap"]),
            "GAP (answer all)": _fmt_gap(s["gap_all"]),
            "top-1": pct(s["top1"]),
            "top-5": pct(s["top5"]),
            "answered": pct(s["answered_share"], 1),
            "precision of answers": _precision(s),
            "test images": count(s["n_test"]),
            "showing a landmark": count(s["n_landmark_images"]),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def timing_table(evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """Measured load time, latency and throughput beside the study's seconds per image."""
    from . import evaluate

    table = evaluate.timing_table({e.name: e.timing for e in evaluations.values()})
    table.index = [MODELS.get(n, n) for n in table.index]
    table = table.round({"load_seconds": 2, "latency_median_ms": 2, "latency_p90_ms": 2,
                         "batch_images_per_second": 1, "study_over_measured": 0})
    return table.rename(columns={
        "load_seconds": "load (s)", "latency_median_ms": "one image, median (ms)",
        "latency_p90_ms": "one image, p90 (ms)", "batch_images_per_second": "batched (images/s)",
        "study_seconds_per_image": "study (s per image)", "study_over_measured": "study / now"})


def variants_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """The refinement variants of notebooks 03 and 04 (name, accuracy keys) as one table."""
    import pandas as pd

    rows = []
    for number in ("03", "04"):
        for v in _get(metrics, number, "variants") or []:
            row = {"notebook": number, **{k: v[k] for k in v if not isinstance(v[k], (list, dict))}}
            rows.append(row)
    table = pd.DataFrame(rows)
    for key in ("val_top1", "val_top5", "train_top1"):
        if key in table:
            table[key] = table[key].map(pct)
    return table.set_index("name") if "name" in table else table


# --------------------------------------------------------------------------- sections (markdown)


def overview_md(source: dict, metrics: dict[str, dict]) -> str:
    """What the run did, which data it used, and which notebooks' results this report holds."""
    ran = [stem for stem in sorted(metrics) if not stem.startswith(REPORT_NOTEBOOK)]
    missing = [n for n in ("01", "02", "03", "04", "05") if not metrics_for(n, metrics)]
    text = source["text"] + f" Results read from: {', '.join(f'`{s}`' for s in ran) or 'none'}."
    if missing:
        text += (f" **Not run:** notebook(s) {', '.join(missing)}; their sections say so "
                 "(run them with `landmarks report --only ...`).")
    return text


def exploration_md(metrics: dict[str, dict]) -> str:
    """Data exploration: catalog size, landmarks, the long tail, single-image landmarks."""
    m = metrics_for("01", metrics)
    if not m:
        return f"*Notebook 01 (exploration) was {NOT_RUN}.*"
    n, k = m.get("n_images"), m.get("n_landmarks")
    top = m.get("top_k") or []
    top_text = ""
    if top:
        first = top[0]
        top_text = (f" The most frequent landmark, `{first['landmark_id']}`, has {count(first['count'])} images; "
                    f"the {len(top)} most frequent hold {count(sum(t['count'] for t in top))} of them.")
    return (
        f"The exploration read `{m.get('catalog', '?')}` ({count(m.get('n_rows_total'))} rows) and kept the first "
        f"{count(n)} images: **{count(k)} landmarks** (the study: {count(STUDY['n_landmarks'])} in 5,000), "
        f"{count(m.get('single_image_landmarks'))} of them with a single image (the study: "
        f"{STUDY['single_image_landmarks']}).{top_text} Half of the images belong to "
        f"{count(m.get('landmarks_covering_50pct'))} landmarks, 90% to {count(m.get('landmarks_covering_90pct'))}. "
        f"Keeping only landmarks with at least {m.get('min_images', '?')} images (the study's proposed improvement) "
        f"leaves {count(m.get('landmarks_kept'))} landmarks and {count(m.get('images_kept'))} images."
    )


def preprocessing_md(metrics: dict[str, dict]) -> str:
    """Preprocessing: the fetch's outcome (ok, failed and why, empty folders), the image size."""
    m = metrics_for("02", metrics)
    if not m:
        return f"*Notebook 02 (fetch) was {NOT_RUN}.*"
    reasons = m.get("failed_by_reason") or {}
    why = "; ".join(f"{r}: {c}" for r, c in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
    test = m.get("test") or {}
    test_text = (f" The test catalog gave {count(test.get('ok'))} images ({count(test.get('failed'))} failed)."
                 if test else "")
    return (
        f"Every image was decoded by content, converted to RGB (GIFs: first frame; transparency on white; "
        f"EXIF rotation applied) and resized to **{m.get('image_size', '?')} px** ({m.get('resize', '?')}). "
        f"Of {count(m.get('n_rows'))} training rows, **{count(m.get('ok'))} were fetched**, "
        f"**{count(m.get('failed'))} failed** (the study: {STUDY['failed']}; reasons: {why}) and "
        f"{count(m.get('skipped'))} were skipped as already present; {count(m.get('empty_folders_removed'))} landmark "
        f"folders were left empty and removed (the study: {STUDY['empty_folders_removed']}). "
        f"Fetching ran at {m.get('images_per_second', 0) or 0:.1f} images/s.{test_text}"
    )


def _model_md(m: dict, label: str) -> str:
    return (
        f"{label} has **{count(m.get('params'))} parameters**, trained for {m.get('epochs', '?')} epochs "
        f"(batch {m.get('batch_size', '?')}, {m.get('optimizer', '?')}) on {count(m.get('n_train'))} images of "
        f"{count(m.get('n_classes'))} landmarks at {m.get('input_size', '?')} px, and reached "
        f"**{pct(m.get('val_top1'))} validation accuracy** (top-5: {pct(m.get('val_top5'))}; chance: "
        f"{pct(m.get('chance'))}; training accuracy {pct(m.get('train_top1'))}) on {count(m.get('n_val'))} "
        f"validation images, at {m.get('seconds_per_epoch') or 0:.1f} s per epoch."
    )


def implementation_md(metrics: dict[str, dict]) -> str:
    """Implementation: the Res-Incep network as trained in this run, beside the study's 2.2M / 5.89%."""
    m = metrics_for("03", metrics)
    if not m:
        return f"*Notebook 03 (Res-Incep) was {NOT_RUN}.*"
    study = (f" The study's network had about 2.2 million parameters (its first try, about "
             f"{count(m.get('first_try_params'))} here, did not fit in memory) and reached "
             f"{pct(STUDY['res_incep_val_top1'])}.")
    return _model_md(m, "Res-Incep") + study


def benchmark_md(metrics: dict[str, dict]) -> str:
    """Benchmark: ResNet-50 as trained in this run, its weights, beside the study's 4.02%."""
    m = metrics_for("04", metrics)
    if not m:
        return f"*Notebook 04 (ResNet-50 benchmark) was {NOT_RUN}.*"
    return (_model_md(m, "ResNet-50") + f" The study's ResNet-50 ({count(STUDY['resnet50_params'])} parameters) "
            f"reached {pct(STUDY['resnet50_val_top1'])}. " + resnet_weights(metrics))


def refinement_md(metrics: dict[str, dict]) -> str:
    """Refinement: the variants tried, best first."""
    variants = [v for n in ("03", "04") for v in (_get(metrics, n, "variants") or [])]
    if not variants:
        return f"*No refinement variants were recorded (notebooks 03/04 {NOT_RUN}).*"
    scored = [v for v in variants if v.get("val_top1") is not None]
    best = max(scored, key=lambda v: v["val_top1"]) if scored else None
    text = f"{len(variants)} variants were trained with the same data and split."
    if best:
        text += f" The best, **{best.get('name', '?')}**, reached {pct(best['val_top1'])} validation accuracy."
    return text


def evaluation_md(evaluations: dict[str, ModelEvaluation], missing: Sequence[str], threshold: float) -> str:
    """Evaluation: what the test set is and each model's GAP, accuracy and coverage at the threshold."""
    parts = []
    for e in evaluations.values():
        s = e.scores
        parts.append(
            f"- **{e.label}**: GAP **{_fmt_gap(s['gap'])}** answering at {pct(threshold, 1)} "
            f"({_fmt_gap(s['gap_all'])} answering every image), top-1 {pct(s['top1'])}, top-5 {pct(s['top5'])}; "
            f"it answered {pct(s['answered_share'], 1)} of the {count(s['n_test'])} test images"
            + (f" and {_precision(s)} of its answers were right." if s["n_answered"] else ".")
        )
    for reason in missing:
        parts.append(f"- *{NOT_RUN}*: {reason}")
    if evaluations:
        n = next(iter(evaluations.values())).scores
        head = (f"The held-out test set has {count(n['n_test'])} images, {count(n['n_landmark_images'])} of them "
                f"showing a landmark (the others must get no answer). Scored once, after training:")
    else:
        head = "The models could not be evaluated on the test set:"
    return head + "\n\n" + "\n".join(parts)


def threshold_md(evaluations: dict[str, ModelEvaluation], threshold: float) -> str:
    """Why a threshold cannot raise GAP, with this run's numbers at the study's threshold."""
    lines = [
        "GAP ranks all answers by confidence and adds the precision at the rank of each correct answer, "
        "divided by the number of images that show a landmark. Raising the threshold removes answers from the "
        "bottom of that ranking: the precision at every rank above does not change, and each removed correct "
        "answer takes its (positive) term with it. **So GAP can only stay or fall as the threshold rises**; the "
        "best GAP answers every image. What a threshold buys is a higher share of right answers among those "
        "shown, which is what a person reading the output wants, paid for with fewer answers."
    ]
    for e in evaluations.values():
        s = e.scores
        lines.append(f"- {e.label}: at {pct(threshold, 1)} it answers {pct(s['answered_share'], 1)} of the images "
                     f"(precision of the answers: {_precision(s)}); GAP {_fmt_gap(s['gap'])} against "
                     f"{_fmt_gap(s['gap_all'])} answering all.")
    return "\n".join(lines)


def _leader(res_incep: float | None, resnet50: float | None) -> str:
    """Which model is ahead on a score: "Res-Incep leads", "ResNet-50 leads" or "the two are level"."""
    a, b = res_incep or 0.0, resnet50 or 0.0
    if abs(a - b) < 1e-12:
        return "the two are level"
    return "Res-Incep leads" if a > b else "ResNet-50 leads"


def justification_md(evaluations: dict[str, ModelEvaluation], metrics: dict[str, dict]) -> str:
    """Justification: Res-Incep against ResNet-50, as the study compared them, on this run's numbers."""
    r, b = evaluations.get("res_incep"), evaluations.get("resnet50")
    m3, m4 = metrics_for("03", metrics), metrics_for("04", metrics)
    lines = [
        f"The study preferred Res-Incep: it answered 6 of 10 test images at 4.5% where ResNet-50 answered none, "
        f"and it had the higher validation accuracy ({pct(STUDY['res_incep_val_top1'])} against "
        f"{pct(STUDY['resnet50_val_top1'])}), though it was slower ({STUDY['res_incep_seconds_per_image']} s against "
        f"{STUDY['resnet50_seconds_per_image']} s per image)."
    ]
    if m3 and m4:
        lines.append(f"In this run {_leader(m3.get('val_top1'), m4.get('val_top1'))} on validation accuracy "
                     f"({pct(m3.get('val_top1'))} against {pct(m4.get('val_top1'))}).")
    if r and b:
        lines.append(f"On the test set {_leader(r.scores['gap_all'], b.scores['gap_all'])} on GAP answering every "
                     f"image ({_fmt_gap(r.scores['gap_all'])} against {_fmt_gap(b.scores['gap_all'])}); at the "
                     f"threshold Res-Incep answers {pct(r.scores['answered_share'], 1)} and ResNet-50 "
                     f"{pct(b.scores['answered_share'], 1)} of the images.")
        lines.append(f"One image takes {r.timing['latency_median_ms']:.1f} ms through Res-Incep and "
                     f"{b.timing['latency_median_ms']:.1f} ms through ResNet-50 (median, image in memory), "
                     f"against the study's {STUDY['res_incep_seconds_per_image']} s and "
                     f"{STUDY['resnet50_seconds_per_image']} s.")
    elif not evaluations:
        lines.append(f"*The test-set comparison was {NOT_RUN}.*")
    lines.append(resnet_weights(metrics))
    return " ".join(lines)


def visualization_md(metrics: dict[str, dict]) -> str:
    """Visualization: what notebook 05 drew."""
    m = metrics_for("05", metrics)
    if not m:
        return f"*Notebook 05 (filters and feature maps) was {NOT_RUN}.*"
    layers = ", ".join(f"`{name}`" for name in m.get("layers") or []) or "none named"
    return (f"Notebook 05 drew {len(m.get('figures') or [])} figures from `{m.get('model_path', '?')}` "
            f"(layers: {layers}).")


def conclusion_md(source: dict, metrics: dict[str, dict], evaluations: dict[str, ModelEvaluation]) -> str:
    """Conclusion: what this run shows, in the study's terms, and its improvements measured."""
    m1, m3 = metrics_for("01", metrics), metrics_for("03", metrics)
    lines = []
    if m3:
        lines.append(f"Res-Incep reached {pct(m3.get('val_top1'))} validation accuracy against chance "
                     f"{pct(m3.get('chance'))} ({pct(STUDY['res_incep_val_top1'])} in the study).")
    r = evaluations.get("res_incep")
    if r:
        lines.append(f"On the held-out test set its GAP is {_fmt_gap(r.scores['gap'])} at the study's threshold "
                     f"and its top-5 accuracy {pct(r.scores['top5'])}.")
    if m1:
        lines.append(f"The long tail the study blamed is measured: {count(m1.get('single_image_landmarks'))} of "
                     f"{count(m1.get('n_landmarks'))} landmarks have a single image.")
    if source["kind"] == "sample":
        lines.append("These numbers come from the embedded synthetic sample: they show that every step runs and "
                     "is measured; `params/study-2018.yaml` repeats the run on the real catalog.")
    return " ".join(lines) or f"*Nothing to conclude: the earlier notebooks were {NOT_RUN}.*"


# --------------------------------------------------------------------------- figures


def threshold_figure(evaluations: dict[str, ModelEvaluation], threshold: float):
    """Answered share, precision of the answers and GAP against the threshold, one panel per model.

    The study's 4.5% is marked with a dashed line, this run's threshold (when different) dotted.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    n = max(1, len(evaluations))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 3.8), squeeze=False, sharey=True)
    for ax, e in zip(axes[0], evaluations.values()):
        c = e.curve
        ax.plot(c["threshold"], c["answered_share"], label="answered share", color="tab:blue")
        ax.plot(c["threshold"], c["precision_answered"], label="precision of answers", color="tab:green")
        ax.plot(c["threshold"], c["gap"], label="GAP", color="tab:red")
        ax.axvline(STUDY["threshold"], color="k", linestyle="--", linewidth=1, label="the study's 4.5%")
        if abs(threshold - STUDY["threshold"]) > 1e-9:
            ax.axvline(threshold, color="0.4", linestyle=":", linewidth=1.5, label=f"this run's {threshold:.1%}")
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("confidence threshold")
        ax.set_title(e.label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share / score")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(evaluations: dict[str, ModelEvaluation]):
    """Confusion matrices (top-1, every image) over the ten most frequent test landmarks, one per model."""
    import matplotlib.pyplot as plt
    import numpy as np

    n = max(1, len(evaluations))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.8), squeeze=False)
    for ax, e in zip(axes[0], evaluations.values()):
        m = e.confusion
        values = m.to_numpy()
        ax.imshow(values, cmap="Blues")
        ax.set_xticks(range(len(m.columns)), [str(c) for c in m.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(len(m.index)), [str(i) for i in m.index], fontsize=7)
        for (i, j), v in np.ndenumerate(values):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > values.max() / 2 else "black")
        ax.set_xlabel("predicted landmark")
        ax.set_ylabel("true landmark")
        ax.set_title(f"{e.label}: top-1 on the test set")
    fig.tight_layout()
    return fig


def pick_examples(evaluations: dict[str, ModelEvaluation], n: int = 10, seed: int = 42) -> pd.DataFrame:
    """``n`` test images (a seeded draw among readable ones) with each model's answer.

    Returns:
        DataFrame(id, path, actual, <model>_landmark, <model>_confidence, <model>_answered ...).
    """
    import numpy as np
    import pandas as pd

    if not evaluations:
        return pd.DataFrame(columns=["id", "path", "actual"])
    first = next(iter(evaluations.values())).predictions
    readable = first[first["confidence"].notna()]
    rng = np.random.default_rng(seed)
    rows = readable.iloc[np.sort(rng.choice(len(readable), size=min(n, len(readable)), replace=False))]
    table = rows[["id", "actual"]].reset_index(drop=True)
    for e in evaluations.values():
        p = e.predictions.set_index("id").loc[table["id"]]
        table[f"{e.name}_landmark"] = p["landmark_id"].to_numpy()
        table[f"{e.name}_confidence"] = p["confidence"].to_numpy()
        table[f"{e.name}_answered"] = p["answered"].to_numpy()
    return table


def answer_text(landmark, confidence: float, answered: bool) -> str:
    """``"7 (12.3%)"`` when answered, ``"none (3.1%)"`` below the threshold."""
    if confidence != confidence:
        return "unreadable"
    return f"{landmark if answered else 'none'} ({100 * confidence:.1f}%)"


def examples_table(examples: pd.DataFrame, evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """The example images as text: id, true landmark, each model's answer (``answer_text``)."""
    import pandas as pd

    table = pd.DataFrame({"id": examples["id"], "true landmark": examples["actual"].replace("", "no landmark")})
    for e in evaluations.values():
        table[e.label] = [answer_text(lid, conf, ok) for lid, conf, ok in zip(
            examples[f"{e.name}_landmark"], examples[f"{e.name}_confidence"], examples[f"{e.name}_answered"])]
    return table.set_index("id")


def examples_figure(examples: pd.DataFrame, evaluations: dict[str, ModelEvaluation], test_dir: str | os.PathLike,
                    input_size: int):
    """The example test images, each captioned with the true landmark and every model's answer."""
    import matplotlib.pyplot as plt

    from . import data, evaluate

    images = evaluate.load_test_images(paths.resolve(test_dir), input_size, progress=False).set_index("id")
    files = images.loc[examples["id"], "path"].tolist()
    pixels = data.load_images(files, input_size, progress=False)
    cols = min(5, max(1, len(examples)))
    rows = max(1, (len(examples) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, (2.6 + 0.2 * len(evaluations)) * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (i, row) in zip(axes.ravel(), examples.iterrows()):
        ax.imshow(pixels[i])
        caption = [f"true: {row['actual'] or 'no landmark'}"]
        caption += [f"{e.label}: {answer_text(row[f'{e.name}_landmark'], row[f'{e.name}_confidence'], row[f'{e.name}_answered'])}"
                    for e in evaluations.values()]
        ax.set_title("\n".join(caption), fontsize=8)
    return fig


def report_metrics(evaluations: dict[str, ModelEvaluation], threshold: float, source: dict,
                   metrics: dict[str, dict], figures: list[str], reports_dir: str | os.PathLike) -> dict:
    """The contents of ``06_report.json``: Res-Incep's test scores at the top level, every model's beside them."""
    main = evaluations.get("res_incep") or next(iter(evaluations.values()), None)
    scores = main.scores if main else {}
    base = paths.resolve(reports_dir)
    return {
        "model": main.name if main else None,
        "gap": scores.get("gap"),
        "gap_all": scores.get("gap_all"),
        "threshold": threshold,
        "answered_share": scores.get("answered_share"),
        "answered_precision": scores.get("answered_precision"),
        "top1": scores.get("top1"),
        "top5": scores.get("top5"),
        "n_test": scores.get("n_test"),
        "models": {e.name: e.scores for e in evaluations.values()},
        "timing": {e.name: {k: e.timing[k] for k in ("load_seconds", "latency_median_ms", "latency_p90_ms",
                                                     "batch_images_per_second")}
                   for e in evaluations.values()},
        "submission_csv": str(main.submission.relative_to(base)) if main else None,
        "submissions": {e.name: str(e.submission.relative_to(base)) for e in evaluations.values()},
        "data": source["kind"],
        "catalog": source["catalog"],
        "resnet50_weights": _get(metrics, "04", "weights"),
        "notebooks": sorted(metrics),
        "figures": figures,
    }
