"""The notebook runner behind `landmarks report`: tiny notebooks written here, executed by papermill."""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from landmarklib import report


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a markdown title, a `parameters` cell, then code cells (``"md:"`` prefix: markdown)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "landmarks", "display_name": "Python (landmarks)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {path.stem}"))
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for src in cells:
        if src.startswith("md:"):
            nb.cells.append(nbformat.v4.new_markdown_cell(src[3:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(src))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# Each notebook records what it received and where it ran in its metrics file.
RECORD = """
import os, json
from landmarklib import metrics
metrics.save({name!r}, dict(received={{k: globals()[k] for k in {names!r}}}, cwd=os.getcwd(),
             root=os.environ.get("LANDMARKS_ROOT"), n_images=1234, figures=FIGS), reports_dir)
"""

FIGURE = """
import matplotlib
import matplotlib.pyplot as plt
from landmarklib.visualize import save_figure
fig, ax = plt.subplots(figsize=(3, 2))
ax.bar(["a", "b"], [3, 5], color="tab:blue")
FIGS = [save_figure(fig, {name!r}, reports_dir)]
plt.show()
"""

REPORT_CELLS = (
    "from IPython.display import Markdown, display\n"
    "display(Markdown('## Results\\n\\nThe run found **1,234** images.'))",
    "import sys\nprint('noise for stderr', file=sys.stderr)",
)


class ResourceLinks(HTMLParser):
    """Every URL the page would load: src of any tag, href of <link>, url(...)/@import in <style>."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.images: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag == "object" and attrs.get("data"):
            self.urls.append(attrs["data"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)
            self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", data)


def links_of(page: Path) -> ResourceLinks:
    parser = ResourceLinks()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def external(urls: list[str]) -> list[str]:
    return [u for u in urls if re.match(r"\s*(https?:)?//", u, re.I)]


# --------------------------------------------------------------------------- units (no kernel)


def test_parse_overrides_reads_values_as_yaml():
    assert report.parse_overrides(["epochs=3", "threshold=0.1", "name=abc", "flag=true", "sizes=[1, 2]", "x="]) == {
        "epochs": 3,
        "threshold": 0.1,
        "name": "abc",
        "flag": True,
        "sizes": [1, 2],
        "x": None,
    }
    with pytest.raises(report.ReportError, match="KEY=VALUE"):
        report.parse_overrides(["no-equals-sign"])


def test_load_params_applies_overrides_and_names_bad_files(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("a: 1\nb: text\n")
    assert report.load_params(f, {"b": "other", "c": 2.5}) == {"a": 1, "b": "other", "c": 2.5}
    with pytest.raises(report.ReportError, match="not found"):
        report.load_params(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(report.ReportError, match="mapping"):
        report.load_params(tmp_path / "list.yaml")


def test_notebook_parameters_keeps_only_declared_names(tmp_path):
    nb = write_notebook(tmp_path / "01_x.ipynb", 'reports_dir = "reports"\nalpha = 1\nword = "w"', "pass")
    assert report.declared_parameters(nb) == ["reports_dir", "alpha", "word"]
    assert report.notebook_parameters(nb, {"alpha": 5, "beta": 2, "reports_dir": "out"}) == {
        "reports_dir": "out",
        "alpha": 5,
    }
    # values papermill's own parser skips (a list of dicts holding "="), annotations, no parameters cell
    nb = write_notebook(
        tmp_path / "02_x.ipynb", 'variants = [{"name": "min=5", "on": True}]\nsize: int = 3\nsize = 4', "pass"
    )
    assert report.declared_parameters(nb) == ["variants", "size"]
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(bare, tmp_path / "03_x.ipynb")
    assert report.declared_parameters(tmp_path / "03_x.ipynb") == []
    broken = write_notebook(tmp_path / "04_x.ipynb", "x = (", "pass")
    with pytest.raises(report.ReportError, match="04_x.ipynb: the parameters cell is not valid Python"):
        report.declared_parameters(broken)


def test_find_notebooks_sorts_and_selects(tmp_path):
    for name in ["02_b", "01_a", "10_c"]:
        write_notebook(tmp_path / f"{name}.ipynb", "x = 1")
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert [p.stem for p in report.find_notebooks(tmp_path)] == ["01_a", "02_b", "10_c"]
    assert [p.stem for p in report.find_notebooks(tmp_path, ["10", "1"])] == ["01_a", "10_c"]
    assert report.parse_only("01, 02,") == ["01", "02"]
    assert report.parse_only("") is None
    with pytest.raises(report.ReportError, match="--only 05: no such notebook"):
        report.find_notebooks(tmp_path, ["05"])
    with pytest.raises(report.ReportError, match="no numbered notebooks"):
        report.find_notebooks(tmp_path / "empty")


def test_missing_kernel_tells_how_to_install(tmp_path, capsys, monkeypatch):
    report.check_kernel("landmarks")  # registered by `make install`
    monkeypatch.setattr(report.runner, "KERNEL", "no-such-kernel-xyz")
    with pytest.raises(report.ReportError) as info:
        report.check_kernel("no-such-kernel-xyz")
    message = str(info.value)
    assert "make install" in message and "ipykernel install --sys-prefix --name no-such-kernel-xyz" in message
    assert "\n" not in message

    write_notebook(tmp_path / "notebooks" / "01_a.ipynb", "x = 1")
    (tmp_path / "p.yaml").write_text("x: 2\n")
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    rc = _cli(["--params", str(tmp_path / "p.yaml"), "--kernel", "no-such-kernel-xyz"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().startswith('landmarks report: error: Jupyter kernel "no-such-kernel-xyz" not found')
    assert not (tmp_path / "reports").exists()


def test_ensure_sample_builds_only_a_missing_sample(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("landmarklib.sample")
    fake.make_sample = lambda out_dir, **kw: calls.append((Path(out_dir), kw)) or {"train": 1}
    monkeypatch.setitem(sys.modules, "landmarklib.sample", fake)
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    params = {
        "sample_dir": "data/raw/sample",
        "train_csv": "data/raw/sample/train.csv",
        "sample_landmarks": 3,
        "sample_train": 12,
        "sample_test": 4,
        "sample_seed": 7,
    }
    assert report.ensure_sample(params) == {"train": 1}
    assert calls == [(tmp_path / "data/raw/sample", dict(n_landmarks=3, n_train=12, n_test=4, seed=7))]

    assert report.ensure_sample({**params, "train_csv": "elsewhere/train.csv"}) is None  # not the sample
    assert report.ensure_sample({"train_csv": "data/raw/sample/train.csv"}) is None  # no sample_dir
    (tmp_path / "data/raw/sample").mkdir(parents=True)
    (tmp_path / "data/raw/sample/train.csv").write_text("id,url,landmark_id\n")
    assert report.ensure_sample(params) is None  # already there
    assert len(calls) == 1


def test_ensure_sample_builds_a_real_tiny_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    params = {
        "sample_dir": "s",
        "train_csv": "s/train.csv",
        "sample_landmarks": 2,
        "sample_train": 6,
        "sample_test": 2,
        "sample_seed": 1,
    }
    summary = report.ensure_sample(params)
    assert summary is not None and (tmp_path / "s" / "train.csv").is_file()
    assert (tmp_path / "s" / "test_solution.csv").is_file()
    assert report.ensure_sample(params) is None


def test_format_value_and_summary_table():
    assert report.format_value("val_top1", 0.0589) == "5.89%"
    assert report.format_value("params", 25636712) == "25,636,712"
    assert report.format_value("gap", 0.12345) == "0.1235"
    assert report.format_value("figures", ["a", "b"]) == "2"
    assert report.format_value("x", None) == "-"
    runs = [
        report.NotebookRun("01_a", Path("a"), Path("b"), Path("c"), status="ok", seconds=1.5),
        report.NotebookRun("02_longer_name", Path("a"), Path("b"), Path("c"), status="failed", seconds=2.0),
    ]
    table = report.summary_table(runs).splitlines()
    assert table[0].split() == ["notebook", "seconds", "status"]
    assert table[2].split() == ["01_a", "1.5", "ok"]
    assert table[3].split() == ["02_longer_name", "2.0", "failed"]
    assert table[-1].split() == ["total", "3.5"]


def test_index_shows_notebook_07s_methods_with_their_intervals(tmp_path):
    from landmarklib import metrics

    def row(method: str, top1: float, gap: float, **more) -> dict:
        scores = {"closed_top1": top1, "open_gap": gap, "closed_top5": 0.9, "closed_gap": gap + 0.1}
        intervals = {
            f"{k}_{end}": v + (0.05 if end == "high" else -0.05) for k, v in scores.items() for end in ("low", "high")
        }
        return {"method": method, "recipe": "r", **scores, **intervals, **more}

    beyond = metrics.Beyond(
        held_out=[7],
        n_queries=12,
        n_closed=9,
        n_open=3,
        epochs=2,
        n_bootstrap=50,
        methods={
            "study": row("study", 0.4, 0.3125),
            "modern": row("modern", 0.55, 0.42, open_gap_diff=0.1),
            "retrieval": {**row("retrieval", 0.5, 0.25), "open_gap_low": None},  # an undefined bound
        },
        figures=[],
    )
    metrics.save("07_beyond", beyond, tmp_path)  # the record holds its schema
    with pytest.raises(metrics.MetricsError, match="07_beyond: missing key 'methods'"):
        metrics.save("07_beyond", {k: v for k, v in beyond.items() if k != "methods"}, tmp_path / "other")
    notebooks = [tmp_path / "06_write_report.ipynb", tmp_path / "07_beyond_the_study.ipynb"]
    index = report.build_index(tmp_path, notebooks, [], {"run_name": "b"}).read_text()
    row07 = next(r for r in index.split("<tr>") if "07_beyond_the_study" in r)
    lines = row07.split("<td>")[-1].split("<br>")
    assert lines[0] == (
        "study: closed top-1 <b>40.0%</b> <small>[35.0%, 45.0%]</small>, "
        "open GAP <b>0.3125</b> <small>[0.2625, 0.3625]</small>"
    )
    assert lines[1].startswith(
        "modern: closed top-1 <b>55.0%</b> <small>[50.0%, 60.0%]</small>, open GAP <b>0.4200</b>"
    )
    assert lines[2].startswith("retrieval: closed top-1 <b>50.0%</b>")
    assert "open GAP <b>0.2500</b> <small>[-, 0.3000]</small></td></tr>" in lines[2]
    row06 = next(r for r in index.split("<tr>") if "06_write_report" in r)
    assert "open GAP" not in row06  # 07's numbers only in 07's row


# --------------------------------------------------------------------------- runs (papermill, real kernel)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="landmarks")
    report.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv, "--no-progress"])
    return args.func(args)


@pytest.fixture(scope="module")
def dummy_run(tmp_path_factory):
    """A project with three notebooks (01, 02, 06), run once through the CLI with --set and --out."""
    root = tmp_path_factory.mktemp("project")
    nbs = root / "notebooks"
    write_notebook(
        nbs / "01_first.ipynb",
        'reports_dir = "reports"\nalpha = 1\nword = "w"',
        FIGURE.format(name="01_bars"),
        RECORD.format(name="01_first", names=["alpha", "word"]),
        "md:The bars show the two counts.",
    )
    write_notebook(
        nbs / "02_second.ipynb",
        'reports_dir = "reports"\nbeta = 2.0\nvariants = [{"name": "min=5"}]',
        "FIGS = []",
        RECORD.format(name="02_second", names=["beta", "variants"]),
    )
    write_notebook(
        nbs / "06_write_report.ipynb",
        'reports_dir = "reports"',
        *REPORT_CELLS,
        FIGURE.format(name="06_bars"),
        RECORD.format(name="06_dummy", names=[]),
    )  # not 06_report: its schema holds
    params = root / "params.yaml"
    params.write_text(
        "run_name: tiny\nreports_dir: reports\nalpha: 5\nword: from-file\nbeta: 3.5\nsample_seed: 9\n"
        "variants: [{name: a=b}]\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("LANDMARKS_ROOT", str(root))
    try:
        rc = _cli(["--params", str(params), "--out", "out", "--set", "word=override", "--set", "beta=[1, 2]"])
    finally:
        mp.undo()
    return root, rc


@pytest.mark.slow
def test_run_passes_each_notebook_only_its_declared_parameters(dummy_run):
    root, rc = dummy_run
    assert rc == 0
    out = root / "out"
    m01 = json.loads((out / "metrics" / "01_first.json").read_text())
    m02 = json.loads((out / "metrics" / "02_second.json").read_text())
    assert m01["received"] == {"alpha": 5, "word": "override"}
    assert m02["received"] == {"beta": [1, 2], "variants": [{"name": "a=b"}]}
    assert m01["cwd"] == str(root) and m01["root"] == str(root)
    injected = [
        c
        for c in nbformat.read(out / "notebooks" / "01_first.ipynb", 4).cells
        if "injected-parameters" in c.metadata.get("tags", [])
    ]
    assert len(injected) == 1
    assert "sample_seed" not in injected[0].source and "beta" not in injected[0].source
    assert 'reports_dir = "out"' in injected[0].source


@pytest.mark.slow
def test_run_renders_offline_html_with_embedded_figures(dummy_run):
    root, _ = dummy_run
    html_dir = root / "out" / "html"
    assert sorted(p.name for p in html_dir.glob("*.html")) == [
        "01_first.html",
        "02_second.html",
        "06_write_report.html",
        "index.html",
        "report.html",
    ]
    for page in html_dir.glob("*.html"):
        links = links_of(page)
        assert external(links.urls) == [], page.name
    nb_page = links_of(html_dir / "01_first.html")
    assert len(nb_page.images) == 1 and nb_page.images[0].startswith("data:image/png;base64,")
    assert "save_figure" in (html_dir / "01_first.html").read_text()  # code shown in notebook pages

    reader = (html_dir / "report.html").read_text()
    assert links_of(html_dir / "report.html").images[0].startswith("data:image/png;base64,")
    assert "The run found <strong>1,234</strong> images." in reader
    assert "save_figure" not in reader and "display(Markdown" not in reader  # no code
    assert "noise for stderr" not in reader  # no stderr
    assert 'class="jp-InputPrompt' not in reader and 'class="jp-OutputPrompt' not in reader


@pytest.mark.slow
def test_index_links_pages_with_key_numbers_and_parameters(dummy_run):
    root, _ = dummy_run
    index = (root / "out" / "html" / "index.html").read_text()
    for page in ["report.html", "01_first.html", "02_second.html", "06_write_report.html"]:
        assert f'href="{page}"' in index
    assert "images: <b>1,234</b>" in index  # 01's n_images
    assert "<code>sample_seed</code></td><td>9</td>" in index  # read by the runner only
    assert "<code>beta</code></td><td>[1, 2]</td>" in index  # --set wins
    assert "<code>word</code></td><td>&#x27;override&#x27;</td>" in index
    assert "run tiny" in index


@pytest.mark.slow
def test_only_runs_the_chosen_notebooks_and_keeps_earlier_pages(dummy_run, capsys):
    root, _ = dummy_run
    m01 = root / "out" / "metrics" / "01_first.json"
    before = m01.stat().st_mtime_ns
    runs = report.run_report(root / "params.yaml", out="out", only=["02"], root=root, progress=False)
    assert [(r.name, r.status) for r in runs] == [("02_second", "ok")]
    assert m01.stat().st_mtime_ns == before
    index = (root / "out" / "html" / "index.html").read_text()
    assert "earlier run" in index and 'href="01_first.html"' in index
    assert "02_second" in capsys.readouterr().out


@pytest.mark.slow
def test_failure_names_notebook_cell_and_error(tmp_path, capsys, monkeypatch):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_ok.ipynb", 'reports_dir = "reports"', "x = 41")
    write_notebook(
        nbs / "02_broken.ipynb",
        'reports_dir = "reports"\nlimit = 3',
        "values = list(range(limit))",
        "md:A note.",
        "\n# check the count\nif len(values) < 10:\n    raise ValueError(f'only {len(values)} values')",
    )
    write_notebook(nbs / "03_after.ipynb", 'reports_dir = "reports"', "y = 1")
    (tmp_path / "p.yaml").write_text("limit: 4\n")
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))

    rc = _cli(["--params", str(tmp_path / "p.yaml")])
    captured = capsys.readouterr()
    assert rc == 1
    line = next(x for x in captured.err.splitlines() if x.startswith("FAILED"))
    assert line == ("FAILED 02_broken: cell 4 (In [4]: '# check the count'): ValueError: only 4 values")
    assert "Traceback" not in captured.err + captured.out
    rows = {x.split()[0]: x.split(None, 2)[2] for x in captured.out.splitlines() if x.startswith(("01_", "02_", "03_"))}
    assert rows == {"01_ok": "ok", "02_broken": "failed", "03_after": "not run"}
    executed = tmp_path / "reports" / "notebooks" / "02_broken.ipynb"
    assert executed.exists() and not (tmp_path / "reports" / "notebooks" / "03_after.ipynb").exists()
    page = (tmp_path / "reports" / "html" / "02_broken.html").read_text()
    assert "An Exception was encountered" in page and "only 4 values" in page
    index = (tmp_path / "reports" / "html" / "index.html").read_text()
    assert 'class="failed">failed' in index and "only 4 values" in index


@pytest.mark.slow
def test_a_gpu_asked_for_and_missing_stops_the_run_before_any_notebook(tmp_path, capsys, monkeypatch):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_first.ipynb", 'reports_dir = "reports"', "x = 1")
    write_notebook(nbs / "03_train.ipynb", 'reports_dir = "reports"\ndevice = "auto"\nallow_cpu = False', "y = 2")
    (tmp_path / "p.yaml").write_text("device: gpu\n")
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    for name, value in {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}.items():
        monkeypatch.setenv(name, value)  # no GPU, whatever this machine has

    assert _cli(["--params", str(tmp_path / "p.yaml")]) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("landmarks report: error: device: gpu was asked for, but the "), err
    assert "sees no GPU" in err[0] and "allow_cpu: true" in err[0]
    assert not (tmp_path / "reports").exists()  # not even notebook 01 ran

    # allow_cpu: the run goes on, with the warning and the device's line once at the start
    assert _cli(["--params", str(tmp_path / "p.yaml"), "--set", "allow_cpu=true", "--only", "03"]) == 0
    captured = capsys.readouterr()
    assert "warning: device: gpu was asked for" in captured.err and "running on the CPU" in captured.err
    device_lines = [line for line in captured.out.splitlines() if line.startswith("device: ")]
    assert len(device_lines) == 1 and ", cpu, float32" in device_lines[0], captured.out
    assert captured.out.index("device: ") < captured.out.index("[1/1] 03_train")

    # a selection without a training notebook skips the check (no deep-learning import at all)
    assert report.check_device({"device": "gpu"}, [nbs / "01_first.ipynb"]) is None
