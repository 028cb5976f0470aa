"""End to end: `landmarks report` runs all seven notebooks on a tiny embedded sample, into a temporary folder.

The real command (the installed ``landmarks`` script, in a subprocess) with the default parameters
file and a ``--set`` for every path and every size, so that nothing lands in the checkout and the run
stays short: 5 landmarks, 60 training and 10 test images of 32 px, one epoch of tiny models. The run
happens once per test session (``end_to_end`` in conftest.py); test_browser opens its pages too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import E2E_METRICS, read_metrics
from conftest import NOTEBOOKS as NB_PATHS

NOTEBOOKS = [p.stem for p in NB_PATHS]
METRICS = E2E_METRICS


@pytest.fixture(scope="module")
def run(end_to_end):
    return end_to_end


def metrics(base: Path, name: str) -> dict:
    return read_metrics(base, name)


@pytest.mark.slow
def test_every_notebook_runs_and_every_page_is_written(run):
    base, proc = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" not in proc.stderr  # every --set name is declared by a notebook
    assert "Unable to parse" not in proc.stderr and "unknown parameter" not in proc.stderr  # nor papermill's noise
    rows = {
        line.split()[0]: line.split()[-1]
        for line in proc.stdout.splitlines()
        if line.split()[:1] in [[n] for n in NOTEBOOKS]
    }
    assert rows == {n: "ok" for n in NOTEBOOKS}
    html = base / "reports" / "html"
    assert sorted(p.name for p in html.glob("*.html")) == sorted(
        [f"{n}.html" for n in NOTEBOOKS] + ["index.html", "report.html"]
    )
    assert sorted(p.stem for p in (base / "reports" / "metrics").glob("*.json")) == METRICS
    index = (html / "index.html").read_text()
    assert all(f'href="{n}.html"' in index for n in NOTEBOOKS) and "run e2e" in index


@pytest.mark.slow
def test_key_numbers_follow_from_the_tiny_sample(run):
    base, _ = run
    sample = json.loads((base / "sample" / "sample.json").read_text())
    broken = {split: sum(b["split"] == split for b in sample["broken"]) for split in ("train", "test")}
    m1, m2 = metrics(base, "01_explore"), metrics(base, "02_fetch")
    assert m1["n_images"] == 60 and m1["n_landmarks"] == 5
    assert m2["n_rows"] == 60 and m2["ok"] == 60 - broken["train"] and m2["failed"] == broken["train"]
    assert m2["test"]["ok"] == 10 - broken["test"]
    for name in ("03_res_incep", "04_resnet50"):
        m = metrics(base, name)
        assert m["input_size"] == 32 and m["epochs"] == 1 and 0 <= m["val_top1"] <= 1, name
        assert (base / "models" / Path(m["model_path"]).name).is_file(), name
    m6 = metrics(base, "06_report")
    assert 0 <= m6["gap"] <= 1 and 0 <= m6["top1"] <= m6["top5"] <= 1 and m6["n_test"] == 10
    assert set(m6["models"]) == {"res_incep", "resnet50"} and m6["data"] == "sample"
    assert m6["notebooks"] == [m for m in METRICS if m != "06_report"]  # 06 runs last: it reads 07's too
    assert (base / "reports" / m6["submission_csv"]).is_file()
    for name in METRICS:
        for fig in metrics(base, name).get("figures") or []:
            assert (base / "reports" / (fig["path"] if isinstance(fig, dict) else fig)).is_file(), (name, fig)


@pytest.mark.slow
def test_report_page_holds_every_section_with_this_runs_numbers(run):
    base, _ = run
    page = (base / "reports" / "html" / "report.html").read_text()
    body = page[page.index("<main>") :]
    assert "not run" not in body and "Traceback" not in body
    m6 = metrics(base, "06_report")
    assert f"{m6['gap']:.4f}" in body and "embedded synthetic sample" in body
    # every figure of every notebook, embedded: 01-05 shown again by 06, and 06's own
    assert body.count('src="data:image/png;base64,') == sum(len(metrics(base, m)["figures"]) for m in METRICS)


# Framework log lines and Python warnings: none in any rendered page (stderr progress bars are fine).
NOISE = (
    "retracing",
    "WARNING:tensorflow",
    "WARNING:absl",
    "UserWarning",
    "DeprecationWarning",
    "FutureWarning",
    "RuntimeWarning",
    "I0000 ",
    "W0000 ",
    "E0000 ",
    "oneDNN custom operations",
    "cpu_feature_guard",
)


@pytest.mark.slow
def test_no_framework_log_lines_or_python_warnings_in_the_rendered_pages(run):
    base, _ = run
    found = {}
    for page in sorted((base / "reports" / "html").glob("*.html")):
        text = page.read_text()
        hits = [word for word in NOISE if word in text]
        if hits:
            found[page.name] = hits
    assert not found
