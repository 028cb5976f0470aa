"""``landmarks report``'s runner: parameters, the embedded sample, papermill, failures, the summary.

``run_report`` executes ``notebooks/NN_*.ipynb`` in order from one YAML parameters file (each
notebook gets only the names its ``parameters`` cell declares; a name the file leaves out keeps the
notebook's value, which is ``config``'s default), keeps the executed copies in ``<out>/notebooks/``,
and hands them to ``report.html`` for the pages. A name that no notebook declares and the runner does
not read (``config.OTHER_PARAMETERS``), or a bad value, stops the run before any notebook, in one line
that says where it came from (the file or ``--set``).
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, devices, paths
from . import html

KERNEL = "landmarks"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
REPORT_NOTEBOOK = "06"
"""The notebook whose executed copy is also rendered, without code, as ``report.html``."""
# Parameters the runner itself reads (the embedded sample's size) -> make_sample's arguments.
SAMPLE_ARGS = {
    "sample_landmarks": "n_landmarks",
    "sample_train": "n_train",
    "sample_test": "n_test",
    "sample_seed": "seed",
}
STOP_ERRORS = frozenset({"NoData"})
"""Exceptions (by class name) that stop a notebook for a cause upstream (``landmarklib.nodata``):
the notebook is marked "stopped" with the exception's one line, and the run goes on."""


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
    status: str = "not run"  # ok | failed | stopped (no data: ``error`` says why) | not run
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
    """The names a notebook's ``parameters`` cell assigns, in order; ``[]`` without such a cell.

    Read with Python's own parser: ``papermill.inspect_notebook`` leaves out names whose value its
    line parser cannot read (e.g. a list of dicts holding ``"a=b"``), which would then never be passed.
    """
    return list(_assignments(notebook))


def declared_defaults(notebook: str | os.PathLike) -> dict:
    """The values a notebook's ``parameters`` cell assigns (literals only): what it runs with unless passed."""
    defaults = {}
    for name, node in _assignments(notebook).items():
        with contextlib.suppress(ValueError, TypeError, SyntaxError):
            defaults[name] = ast.literal_eval(node)
    return defaults


def _assignments(notebook: str | os.PathLike) -> dict:
    """Name -> the expression (None: none) of each assignment of a notebook's ``parameters`` cell, in order."""
    import nbformat

    cells = nbformat.read(str(notebook), as_version=4).cells
    cell = next((c for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise ReportError(
            f"{notebook}: the parameters cell is not valid Python (line {exc.lineno}: {exc.msg})"
        ) from exc
    values: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        values.update({t.id: node.value for t in targets if isinstance(t, ast.Name) and t.id not in values})
    return values


def notebook_parameters(notebook: str | os.PathLike, params: dict) -> dict:
    """The subset of ``params`` that ``notebook`` declares."""
    return {name: params[name] for name in declared_parameters(notebook) if name in params}


def check_params(params: dict, overrides: dict, params_file, notebooks: Sequence[Path]) -> dict:
    """The run's parameters (``params`` with ``overrides`` on top), checked, or ``ReportError`` in one line
    naming where the bad name or value came from (``params_file`` or ``--set``).

    Every name must be declared by a notebook of ``notebooks`` or read by the runner
    (``config.OTHER_PARAMETERS``); the values must build every stage (``config.check_params``).
    """
    known = {*config.OTHER_PARAMETERS}.union(*(declared_parameters(nb) for nb in notebooks))
    for source, values in ((params_file, params), ("--set", overrides)):
        unknown = sorted(set(values) - known)
        if unknown:
            raise ReportError(f"{source}: {config.unknown_message(unknown[0], sorted(known))}")
    file_only = {k: v for k, v in params.items() if k not in overrides}  # a value --set replaces is not checked
    for source, values in ((params_file, file_only), ("--set", {**params, **overrides})):
        try:
            config.check_params(values)
        except config.ConfigError as err:
            raise ReportError(f"{source}: {err}") from None
    return {**params, **overrides}


# --------------------------------------------------------------------------- notebooks, kernel, sample


def find_notebooks(notebooks_dir: str | os.PathLike, only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``notebooks_dir``, sorted; ``only`` keeps some.

    Args:
        notebooks_dir: the folder holding the notebooks.
        only: numbers (``"01"``, ``"2"``) or name prefixes; ``None`` keeps them all.
    """
    found = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
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
    from ..sample import make_sample

    kwargs = {arg: params[key] for key, arg in SAMPLE_ARGS.items() if params.get(key) is not None}
    print(f"building the embedded sample in {sample_dir} ...", flush=True)
    return make_sample(sample_dir, **kwargs)


def check_device(params: dict, notebooks: Sequence[Path]) -> str | None:
    """The device check of the training notebooks, once before any notebook runs.

    When a notebook of ``notebooks`` declares ``device``, ``python -m landmarklib.devices --require
    DEVICE [--allow-cpu]`` runs with the run's ``device`` and ``allow_cpu`` (``config.DeviceConfig``)
    and its one-line description is printed. In a child process: the runner must not hold the GPU
    (JAX takes most of its memory when first used) that the notebooks' kernels will need.

    Returns:
        The one-line description (``devices.summary``), or None when no notebook trains.

    Raises:
        ReportError: ``device: gpu`` and no GPU visible (unless ``allow_cpu``), or the check failed;
            one line.
    """
    if not any("device" in declared_parameters(nb) for nb in notebooks):
        return None
    hardware = config.DeviceConfig.from_params(params)
    command = [sys.executable, "-m", "landmarklib.devices", "--require", hardware.device]
    done = subprocess.run(
        command + (["--allow-cpu"] if hardware.allow_cpu else []), capture_output=True, text=True, timeout=600
    )
    said = [line.strip() for line in done.stderr.splitlines() if line.startswith(("error: ", "warning: "))]
    if done.returncode != 0:
        last = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = next((line for line in said if line.startswith("error: ")), None)
        raise ReportError(
            why.removeprefix("error: ") if why else f"the device check failed: {last[-1] if last else done.returncode}"
        )
    for line in said:  # allow_cpu's one-line warning
        print(line, file=sys.stderr, flush=True)
    line = devices.summary(json.loads(done.stdout))
    print(f"device: {line}", flush=True)
    return line


# --------------------------------------------------------------------------- one notebook


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


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


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
    # papermill checks the parameters again with its own line parser and warns about what it cannot
    # read ("Unable to parse line", "Passed unknown parameter"); declared_parameters has decided already.
    papermill_log = logging.getLogger("papermill")
    level = papermill_log.level
    papermill_log.setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(run.source),
            str(run.executed),
            parameters=run.parameters,
            kernel_name=kernel,
            cwd=str(root),
            progress_bar=progress,
            # the kernel's own warnings (e.g. plain-TCP transport) are noise here
            extra_arguments=["--log-level=ERROR"],
        )
        run.status = "ok"
    except PapermillExecutionError as exc:
        if exc.ename in STOP_ERRORS:  # nothing to work on: the exception's own line says why
            run.status, run.error = "stopped", _first_line(str(exc.evalue))
            return
        index = _source_cell_index(run.source, exc.source, exc.cell_index)
        run.status = "failed"
        run.error = (
            f"cell {index} (In [{exc.exec_count}]: {_first_line(exc.source)!r}): "
            f"{exc.ename}: {_first_line(str(exc.evalue))}"
        )
    except Exception as exc:  # kernel died, timed out, could not start: name it, keep going to the summary
        run.status = "failed"
        run.error = f"{type(exc).__name__}: {_first_line(str(exc))}"
    finally:
        papermill_log.setLevel(level)
        run.seconds = time.perf_counter() - start


# --------------------------------------------------------------------------- the run


def summary_table(runs: Sequence[NotebookRun]) -> str:
    """A plain-text table: notebook, seconds, status."""
    width = max([len("notebook")] + [len(r.name) for r in runs])
    lines = [f"{'notebook':<{width}}  {'seconds':>8}  status", f"{'-' * width}  {'-' * 8}  ------"]
    lines += [
        f"{r.name:<{width}}  {r.seconds:>8.1f}  {r.status}" + (f": {r.error}" if r.status == "stopped" else "")
        for r in runs
    ]
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
    marked "not run". A notebook that stops for want of data (``landmarklib.nodata.NoData``) is
    marked "stopped" with its one line, and the run goes on. Raises ``ReportError`` before running
    anything when the parameters, the selection or the kernel are wrong, or when ``device: gpu``
    finds no GPU (``check_device``, run once when a selected notebook trains; it prints the device).

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
    notebooks_dir = notebooks_dir or root / "notebooks"
    # Figures inline in the executed notebooks even where MPLBACKEND=Agg is set for headless scripts.
    # TensorFlow's C++ start-up notices (oneDNN, CPU features) go to the kernel's stderr and from there
    # into the pages: errors only, unless the caller chose a level.
    quiet = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with _environment(LANDMARKS_ROOT=str(root), MPLBACKEND=INLINE_BACKEND, **quiet):
        all_notebooks = find_notebooks(notebooks_dir)
        # an unknown name or a wrong value stops here, named with its source, before any notebook runs
        params = check_params(load_params(params_file), overrides or {}, params_file, all_notebooks)
        params["reports_dir"] = str(out if out is not None else params.get("reports_dir") or "reports")
        out_dir = paths.resolve(params["reports_dir"])
        selected = find_notebooks(notebooks_dir, only)
        # the report notebook reads every other notebook's metrics (07's too): it runs last
        selected.sort(key=lambda nb: nb.stem.startswith(f"{REPORT_NOTEBOOK}_"))
        check_kernel(kernel)
        # what the notebooks run with: their declared values where the file and --set name none
        effective = dict(params)
        for nb in all_notebooks:
            effective.update({k: v for k, v in declared_defaults(nb).items() if k not in effective})
        check_device(params, selected)  # a GPU asked for and missing stops the run here, not in notebook 03
        ensure_sample(effective)

        runs = [
            NotebookRun(
                name=nb.stem,
                source=nb,
                executed=out_dir / "notebooks" / nb.name,
                html=out_dir / "html" / f"{nb.stem}.html",
                parameters=notebook_parameters(nb, params),
            )
            for nb in selected
        ]
        for i, run in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {run.name}", flush=True)
            execute_notebook(run, kernel, root, progress=progress)
            if run.executed.exists():
                html.render_html(run.executed, run.html)
                if run.name.startswith(f"{REPORT_NOTEBOOK}_"):
                    html.render_html(run.executed, out_dir / "html" / "report.html", report=True)
            if run.status == "stopped":  # no data for this one: the next notebooks say what they can
                print(f"STOPPED {run.name}: {run.error}", file=sys.stderr, flush=True)
            if run.status == "failed":
                print(
                    f"FAILED {run.name}: {run.error}\n  executed notebook: {run.executed}\n  rendered: {run.html}",
                    file=sys.stderr,
                    flush=True,
                )
                break
        index = html.build_index(out_dir, all_notebooks, runs, effective)
    print(summary_table(runs))
    print(f"index: {index}")
    if (out_dir / "html" / "report.html").exists():
        print(f"report: {out_dir / 'html' / 'report.html'}")
    return runs
