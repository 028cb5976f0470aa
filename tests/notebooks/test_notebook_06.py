"""Notebook 06 (the report) on fabricated metrics, two tiny hand-weighted models and a tiny test folder.

The models see solid-colour images and are built so that every number is known in advance:
"res_incep" names the colour's landmark with ~100% confidence, "resnet50" names it too but with
45% confidence, below this test's threshold of 50%; one grey image shows no landmark and one test
image failed to fetch.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib import report

from conftest import fabricated_metrics, training_metrics, write_metrics

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
THRESHOLD = 0.5
COLOURS = {101: (255, 0, 0), 202: (0, 255, 0), 303: (0, 0, 255)}  # class 0, 1, 2


def tiny_model(path: Path, strength: float) -> None:
    """Mean colour -> softmax(strength * [r, g, b]): the landmark of the dominant colour."""
    import keras

    from landmarklib.data import save_label_map

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=path.stem)
    model.get_layer("predictions").set_weights([np.eye(3, dtype="float32") * strength, np.zeros(3, "float32")])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    save_label_map(path.with_name(f"{path.stem}.labels.json"), list(COLOURS))


def make_project(
    root: Path,
    models: bool = True,
    metrics_of: tuple[str, ...] = ("01", "02", "03", "04", "05"),
    test_folder: bool = True,
) -> Path:
    """A project root with a catalog, a fetched test folder, its solution, models and metrics; returns params.yaml."""
    sample = root / "data" / "raw" / "sample"
    sample.mkdir(parents=True, exist_ok=True)
    (sample / "train.csv").write_text("id,url,landmark_id\na,images/a.jpg,101\n")
    test_dir = root / "data" / "processed" / "t" / "test"
    rows, solution = [], []
    for lid, colour in COLOURS.items():
        for k in range(3):
            rows.append((f"t{lid}{k}", colour, "ok"))
            solution.append((f"t{lid}{k}", lid))
    rows += [("tgrey", (128, 128, 128), "ok"), ("tbroken", None, "failed")]
    solution += [("tgrey", ""), ("tbroken", 202)]
    if test_folder:
        test_dir.mkdir(parents=True, exist_ok=True)
        with open(test_dir / "manifest.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds"])
            for image_id, colour, status in rows:
                if colour is not None:
                    Image.new("RGB", (SIZE, SIZE), colour).save(test_dir / f"{image_id}.jpg", quality=95)
                w.writerow(
                    [
                        image_id,
                        f"images/{image_id}.jpg",
                        "",
                        status,
                        "" if colour else "HTTP 404",
                        1000,
                        SIZE,
                        SIZE,
                        "JPEG",
                        0.01,
                    ]
                )
    with open(sample / "test_solution.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "landmark_id"), *solution])
    if models:
        tiny_model(root / "models" / "t" / "res_incep.keras", strength=12.0)
        tiny_model(root / "models" / "t" / "resnet50.keras", strength=0.5)
    write_metrics(root / "reports", metrics_of, size=SIZE)
    params = root / "params.yaml"
    params.write_text(
        "run_name: tiny\nsample_dir: data/raw/sample\ntrain_csv: data/raw/sample/train.csv\n"
        "test_csv: data/raw/sample/test.csv\ntest_solution_csv: data/raw/sample/test_solution.csv\n"
        f"test_dir: data/processed/t/test\nmodels_dir: models/t\ninput_size: {SIZE}\nthreshold: {THRESHOLD}\n"
        "seed: 3\nreports_dir: reports\n"
    )
    return params


def run_06(root: Path, params: Path) -> list[report.NotebookRun]:
    return report.run_report(params, only=["06"], root=root, notebooks_dir=REPO / "notebooks", progress=False)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, list[tuple[str, str, str]]]:
    """The full fabricated project with notebook 06 run once: (project root, [(notebook, status, error)])."""
    root = tmp_path_factory.mktemp("report06")
    runs = run_06(root, make_project(root))
    return root, [(r.name, r.status, r.error) for r in runs]


# --------------------------------------------------------------------------- the notebook, executed


@pytest.mark.slow
def test_report_scores_both_models_on_the_test_set(full_run):
    root, runs = full_run
    assert runs == [("06_write_report", "ok", "")]
    m = json.loads((root / "reports" / "metrics" / "06_report.json").read_text())
    # res_incep: 9 right answers with ~100% confidence; the grey image (no landmark, 1/3) and the
    # failed image are not answered at 50%; 10 images show a landmark.
    assert m["model"] == "res_incep" and m["threshold"] == THRESHOLD
    assert m["gap"] == pytest.approx(0.9) and m["gap_all"] == pytest.approx(0.9)
    assert m["top1"] == pytest.approx(0.9) and m["top5"] == pytest.approx(0.9)
    assert m["answered_share"] == pytest.approx(9 / 11) and m["answered_precision"] == pytest.approx(1.0)
    # resnet50 is right at 45% confidence: below the threshold it answers nothing, GAP 0.
    r50 = m["models"]["resnet50"]
    assert r50["gap"] == 0 and r50["gap_all"] == pytest.approx(0.9) and r50["answered_share"] == 0
    assert r50["top1"] == pytest.approx(0.9)
    assert set(m["timing"]) == {"res_incep", "resnet50"}
    assert all(t["latency_median_ms"] > 0 and t["batch_images_per_second"] > 0 for t in m["timing"].values())
    assert m["data"] == "sample" and m["resnet50_weights"] == "random"
    assert m["notebooks"] == ["01_explore", "02_fetch", "03_res_incep", "04_resnet50", "05_visualize"]


@pytest.mark.slow
def test_report_writes_submission_and_figures(full_run):
    root, _ = full_run
    reports = root / "reports"
    m = json.loads((reports / "metrics" / "06_report.json").read_text())
    assert m["submission_csv"] == "submissions/res_incep.csv"
    with open(reports / m["submission_csv"]) as f:
        sub = {r["id"]: r["landmarks"] for r in csv.DictReader(f)}
    assert len(sub) == 11 and sub["tgrey"] == "" and sub["tbroken"] == ""
    assert sub["t2021"].split()[0] == "202" and float(sub["t2021"].split()[1]) > 0.99
    with open(reports / m["submissions"]["resnet50"]) as f:
        assert all(r["landmarks"] == "" for r in csv.DictReader(f))
    assert m["figures"] == [
        "figures/06_thresholds.png",
        "figures/06_confidence.png",
        "figures/06_confusion.png",
        "figures/06_examples.png",
    ]
    for fig in m["figures"]:
        with Image.open(reports / fig) as img:
            assert img.width > 300 and img.height > 200


@pytest.mark.slow
def test_report_page_tells_the_story_with_this_runs_numbers(full_run):
    root, _ = full_run
    page = (root / "reports" / "html" / "report.html").read_text()
    sections = [
        "Overview",
        "Problem statement",
        "Metrics",
        "Data exploration",
        "Data preprocessing",
        "Implementation",
        "Benchmark",
        "Refinement",
        "Model evaluation",
        "Justification",
        "Visualization",
        "Conclusion",
    ]
    positions = [page.find(f">{s}<") for s in sections]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    for text in [
        "2,286",
        "5.89%",
        "4.02%",
        "33.14",
        "24.37",
        "25,636,712",  # the study
        "1,463",
        "31.25%",
        "215,432",
        "0.9000",
        "81.8%",  # this run
        "embedded synthetic sample",
        "<strong>random weights</strong>",
        "submissions/res_incep.csv",
        "First-layer filters.",
        "none (45.",
        "HTTP 404: 30",
        "Res-Incep leads on validation accuracy",
        "the two are level on GAP answering every image",
    ]:
        assert text in page, text
    body = page[page.index("<main>") :]
    assert "not run" not in body and "Traceback" not in body and "Error" not in body
    assert "PosixPath" not in body  # no stray return values
    # 5 earlier figures + 4 drawn here, all embedded
    assert page.count('src="data:image/png;base64,') == 9


FRAMEWORK_NOISE = (
    "WARNING",
    "Warning:",
    "warnings.warn",
    "tensorflow/",  # a C++ log line's source path (the backend's name itself is shown: "ran on tensorflow, ...")
    "tf.function",
    "retracing",
    "absl",
    "oneDNN",
    "cpu_feature_guard",
    "E0000",
    "I0000",
    "W0000",
)


@pytest.mark.slow
def test_rendered_pages_hold_no_framework_log_lines_or_python_warnings(full_run):
    root, _ = full_run
    html_dir = root / "reports" / "html"
    for name in ("report.html", "index.html"):
        page = (html_dir / name).read_text()
        body = page[page.find("<body") :]
        noise = [word for word in FRAMEWORK_NOISE if word in body]
        assert not noise, (name, noise)
    # the notebook's own page keeps its stderr (progress bars) but no framework logging either
    page = (html_dir / "06_write_report.html").read_text()
    assert "retracing" not in page and "WARNING:tensorflow" not in page


@pytest.mark.slow
def test_without_a_solution_file_the_report_predicts_thresholds_times_and_submits(tmp_path):
    params = make_project(tmp_path)
    (tmp_path / "data" / "raw" / "sample" / "test_solution.csv").unlink()
    runs = run_06(tmp_path, params)
    assert runs[0].status == "ok", runs[0].error
    reports = tmp_path / "reports"
    m = json.loads((reports / "metrics" / "06_report.json").read_text())
    assert m["scored"] is False and m["solution_csv"] is None
    assert m["gap"] is None and m["top1"] is None and m["top5"] is None and m["answered_precision"] is None
    # res_incep answers the 9 coloured images (~100%), not the grey one (1/3) nor the failed one
    assert m["answered_share"] == pytest.approx(9 / 11) and m["n_test"] == 11
    assert m["models"]["resnet50"]["answered_share"] == 0 and m["models"]["resnet50"]["n_answered"] == 0
    assert all(t["latency_median_ms"] > 0 for t in m["timing"].values())
    with open(reports / m["submission_csv"]) as f:
        sub = {r["id"]: r["landmarks"] for r in csv.DictReader(f)}
    assert len(sub) == 11 and sub["t2021"].split()[0] == "202" and sub["tgrey"] == ""
    assert m["figures"] == ["figures/06_thresholds.png", "figures/06_confidence.png", "figures/06_examples.png"]
    page = (reports / "html" / "report.html").read_text()
    body = page[page.index("<main>") :]
    assert "no solution file" in body and "81.8%" in body and "unknown (no solution file)" in body
    assert "Traceback" not in body and "Error" not in body


@pytest.mark.slow
def test_without_test_images_the_report_says_why_in_one_line(tmp_path):
    params = make_project(tmp_path)
    manifest = tmp_path / "data" / "processed" / "t" / "test" / "manifest.csv"
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "status": "failed", "error": "host unreachable: images.invalid (DNS)"} for r in rows)
    runs = run_06(tmp_path, params)
    assert runs[0].status == "ok", runs[0].error
    page = (tmp_path / "reports" / "html" / "report.html").read_text()
    line = "no images in data/processed/t/test: 11 of 11 rows failed: host unreachable (11)"
    assert line in page
    assert "Traceback" not in page[page.index("<main>") :]


@pytest.mark.slow
def test_report_degrades_when_earlier_notebooks_did_not_run(tmp_path):
    params = make_project(tmp_path, models=False, metrics_of=("01",), test_folder=False)
    runs = run_06(tmp_path, params)
    assert runs[0].status == "ok", runs[0].error
    m = json.loads((tmp_path / "reports" / "metrics" / "06_report.json").read_text())
    assert m["gap"] is None and m["models"] == {} and m["timing"] == {} and m["submission_csv"] is None
    assert m["figures"] == [] and m["notebooks"] == ["01_explore"]
    page = (tmp_path / "reports" / "html" / "report.html").read_text()
    assert "Notebook 03 (Res-Incep) was not run" in page and "fetched test folder" in page
    assert "1,500" in page  # 01's numbers still reported


# --------------------------------------------------------------------------- the report's functions


def test_study_comparison_sets_this_run_beside_the_published_numbers(tmp_path):
    write_metrics(tmp_path)
    from landmarklib import metrics

    table = report.study_comparison(metrics.load_all(tmp_path), {})
    assert table.loc["unique landmarks among them"].tolist() == ["2,286", "30"]
    assert table.loc["single-image landmarks"].tolist() == ["159", "4"]
    assert table.loc["failed downloads"].tolist() == ["33", "37"]
    assert table.loc["empty landmark folders removed"].tolist() == ["12", "2"]
    assert table.loc["Res-Incep parameters"].tolist() == ["~2.2M", "215,432"]
    assert table.loc["ResNet-50 parameters"].tolist() == ["25,636,712", "23,600,000"]
    assert table.loc["Res-Incep validation accuracy"].tolist() == ["5.89%", "31.25%"]
    assert table.loc["ResNet-50 validation accuracy"].tolist() == ["4.02%", "25.00%"]
    assert table.loc["Res-Incep seconds per image"].tolist() == ["33.14", "not run"]
    assert table.loc["ResNet-50 test GAP"].tolist() == ["not measured", "not run"]
    empty = report.study_comparison({}, {})
    assert (empty["this run"] == "not run").all()


def test_sections_say_not_run_for_missing_notebooks():
    assert report.exploration_md({}) == "*Notebook 01 (exploration) was not run.*"
    assert "not run" in report.preprocessing_md({}) and "not run" in report.visualization_md({})
    assert "not run" in report.benchmark_md({}) and "not run" in report.refinement_md({})
    ran_without_variants = report.refinement_md({"03_res_incep": {"variants": []}})
    assert "No refinement variants were trained" in ran_without_variants and "not run" not in ran_without_variants
    assert report.resnet_weights({}) == "The ResNet-50 benchmark (notebook 04) was not run."
    assert report.evaluation_md({}, ["Res-Incep: missing"], 0.045).endswith("- *not run*: Res-Incep: missing")
    assert report.variants_table({}).empty


def test_data_source_and_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    assert report.data_source("data/raw/sample/train.csv", "data/raw/sample", {})["kind"] == "sample"
    real = report.data_source("data/raw/kaggle/train.csv", "data/raw/sample", {})
    assert real["kind"] == "real" and "`data/raw/kaggle/train.csv`" in real["text"]
    # the catalog notebook 01 read wins over the parameter
    assert (
        report.data_source(
            "data/raw/sample/train.csv", "data/raw/sample", {"01_explore": {"catalog": "/elsewhere/train.csv"}}
        )["kind"]
        == "real"
    )
    assert "**ImageNet weights**" in report.resnet_weights({"04_resnet50": {"weights": "imagenet"}})
    assert "not ImageNet" in report.resnet_weights({"04_resnet50": {"weights": "random", "weights_note": "offline"}})


def test_data_source_record_is_shown_with_the_caveat_beside_the_study(tmp_path):
    record = {
        "name": "Indian monuments",
        "kind": "folder",
        "path": "../shared/data/indian-monuments-64/train.csv",
        "rows": 3120,
        "landmarks": 49,
        "sha256": "0123456789abcdef" * 4,
    }
    metrics = {
        "01_explore": {"data_source": record},
        "03_res_incep": training_metrics(val_top1=0.013, health="diverged", health_note="the loss is 23,787"),
    }
    source = report.data_source("data/raw/sample/train.csv", "data/raw/sample", metrics)
    assert source["kind"] == "folder" and source["record"] == record
    assert (
        "**Indian monuments** (folder): 3,120 rows, 49 landmarks" in source["text"] and "0123456789ab" in source["text"]
    )
    assert "not comparable" in source["caveat"]
    table = report.study_comparison(metrics, {}, source)
    assert list(table.columns) == ["study (2018 Kaggle catalog)", "this run (folder data: not comparable)"]
    assert table.loc["Res-Incep validation accuracy"].tolist() == ["5.89%", "diverged: no result (1.30%)"]
    assert "diverged" in report.implementation_md(metrics) and "no result" in report.implementation_md(metrics)
    study = report.data_source("x.csv", None, {"01_explore": {"data_source": {**record, "kind": "kaggle-2018"}}})
    assert study["caveat"] == "" and list(report.study_comparison({}, {}, study).columns) == [
        "study (2018)",
        "this run",
    ]
    # the index page names the data and the caveat
    from landmarklib import metrics as metrics_io
    from landmarklib.report import html

    metrics_io.save("01_explore", {**fabricated_metrics()["01_explore"], "data_source": record}, tmp_path)
    metrics_io.save("03_res_incep", metrics["03_res_incep"], tmp_path)
    notebooks = [Path("01_explore.ipynb"), Path("03_build_res_incep.ipynb")]
    page = html.build_index(tmp_path, notebooks, [], {"run_name": "x"}).read_text()
    assert "<b>Indian monuments</b> (folder): 3,120 rows, 49 landmarks" in page and "not comparable" in page
    assert "diverged: no result" in page and "the loss is 23,787" in page


def test_figure_list_accepts_paths_and_captioned_entries():
    assert report.figure_list({"figures": ["figures/a.png", {"path": "figures/b.png", "caption": "B"}]}) == [
        ("figures/a.png", ""),
        ("figures/b.png", "B"),
    ]
    assert report.figure_list({}) == []


def test_answer_text_and_formats():
    assert report.answer_text(202, 0.5123, True) == "202 (51.2%)"
    assert report.answer_text(202, 0.031, False) == "none (3.1%)"
    assert report.answer_text(None, math.nan, False) == "unreadable"
    assert report.pct(0.0589) == "5.89%" and report.pct(None) == "not run" and report.pct(math.nan) == "not run"
    assert report.count(2286) == "2,286" and report.count(None) == "not run"
    assert report.curve_thresholds(0.045)[:3] == [0.0, 0.005, 0.01] and 0.045 in report.curve_thresholds(0.045)
