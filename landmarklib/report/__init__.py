"""``landmarks report``: run the numbered notebooks with papermill, render offline HTML, write the report.

    runner    parameters (YAML + ``--set``), kernel and device checks, embedded sample, papermill execution,
              failures named by cell, the summary table (``run_report``)
    html      offline nbconvert pages per notebook, ``report.html`` (no code), ``index.html``
    content   notebook 06's content: tables, section markdown (the study's numbers: study.py); no Keras
    evaluation  notebook 06's test-set evaluation of the saved models (Keras when it runs, not on import)

The report's figures are in ``landmarklib.visualize.evaluation``. The names below are the public
API; notebook 06 calls them as ``report.<name>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import paths
from .content import (
    MODELS,
    NO_SOLUTION,
    NOT_RUN,
    ModelEvaluation,
    answer_text,
    benchmark_md,
    conclusion_md,
    count,
    data_caveat,
    data_source,
    data_source_text,
    evaluation_md,
    evaluation_table,
    examples_table,
    exploration_md,
    figure_list,
    gap_text,
    health_md,
    implementation_md,
    justification_md,
    metrics_for,
    overview_md,
    pct,
    pick_examples,
    preprocessing_md,
    refinement_md,
    report_metrics,
    resnet_weights,
    show_figures,
    study_comparison,
    threshold_md,
    timing_table,
    variants_table,
    visualization_md,
)
from .evaluation import curve_thresholds, evaluate_model, evaluate_models, solution_path
from .html import build_index, format_value, html_exporter, render_html
from .runner import (
    KERNEL,
    NotebookRun,
    ReportError,
    check_device,
    check_kernel,
    declared_parameters,
    ensure_sample,
    execute_notebook,
    find_notebooks,
    load_params,
    notebook_parameters,
    parse_only,
    parse_overrides,
    run_report,
    summary_table,
)

__all__ = [
    "KERNEL",
    "MODELS",
    "NO_SOLUTION",
    "NOT_RUN",
    "ModelEvaluation",
    "NotebookRun",
    "ReportError",
    "add_cli",
    "answer_text",
    "benchmark_md",
    "build_index",
    "check_device",
    "check_kernel",
    "conclusion_md",
    "count",
    "curve_thresholds",
    "data_caveat",
    "data_source",
    "data_source_text",
    "declared_parameters",
    "ensure_sample",
    "evaluate_model",
    "evaluate_models",
    "evaluation_md",
    "evaluation_table",
    "examples_table",
    "execute_notebook",
    "exploration_md",
    "figure_list",
    "find_notebooks",
    "format_value",
    "gap_text",
    "health_md",
    "html_exporter",
    "implementation_md",
    "justification_md",
    "load_params",
    "metrics_for",
    "notebook_parameters",
    "overview_md",
    "parse_only",
    "parse_overrides",
    "pct",
    "pick_examples",
    "preprocessing_md",
    "refinement_md",
    "render_html",
    "report_metrics",
    "resnet_weights",
    "run_report",
    "show_figures",
    "solution_path",
    "study_comparison",
    "summary_table",
    "threshold_md",
    "timing_table",
    "variants_table",
    "visualization_md",
]


def add_cli(subparsers) -> None:
    """Register ``landmarks report``."""
    p = subparsers.add_parser(
        "report",
        help="run the numbered notebooks with papermill and render the HTML report",
        description="Run notebooks/NN_*.ipynb in order from one parameters file; executed copies go to "
        "<out>/notebooks/, HTML to <out>/html/ (index.html, report.html).",
    )
    p.add_argument("--params", default=None, help="YAML parameters file (default: params/default.yaml of the project)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")
    p.add_argument(
        "--out",
        default=None,
        help="reports folder, relative to the project root (default: reports_dir of the parameters)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter (value parsed as YAML); repeatable",
    )
    p.add_argument("--kernel", default=KERNEL, help=f"Jupyter kernel to execute with (default: {KERNEL})")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    params_file = Path(args.params) if args.params else paths.project_root() / "params" / "default.yaml"
    try:
        runs = run_report(
            params_file,
            out=args.out,
            only=parse_only(args.only),
            overrides=parse_overrides(args.overrides),
            kernel=args.kernel,
            progress=not args.no_progress,
        )
    except ReportError as exc:
        print(f"landmarks report: error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(r.status in ("failed", "stopped") for r in runs) else 0
