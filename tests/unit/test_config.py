"""One source for every setting: the stage dataclasses (and ``config.OTHER_PARAMETERS``), the notebooks'
parameters cells, params/*.yaml and ``landmarks fetch``'s options agree."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from pathlib import Path

import nbformat
import pytest
import yaml

from landmarklib import config, images, metrics, sample, study
from landmarklib.report import runner

from conftest import NOTEBOOKS, REPO

PARAMS_FILES = sorted((REPO / "params").glob("*.yaml"))
"""The commit whose params/*.yaml still repeated every default (issue 19 left only the differences)."""


def _parameters_cell(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged parameters"
    return cells[0]


def _declared(path: Path) -> dict:
    """The parameters a notebook declares, with their values (literals only)."""
    tree = ast.parse(_parameters_cell(path).source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- notebooks and parameters files


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_notebook_is_committed_clean_and_declares_the_config_defaults(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "landmarks"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")  # a title first
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs or execution counts"
    declared = _declared(path)
    assert declared["reports_dir"] == "reports"
    # a default lives in landmarklib/config.py: the notebook repeats it (papermill needs a value), unchanged
    for cls in config.STAGES:
        assert cls.from_params(declared) == cls(), (path.name, cls.__name__)
    # and every name is a stage's parameter or one of the documented others (paths, the runner's, variants)
    assert sorted(set(declared) - set(config.known_parameters()) - set(config.OTHER_PARAMETERS)) == [], path.name


def test_notebooks_agree_on_the_values_that_are_no_stages():
    """A path or variant list several notebooks declare has one default (the runner fills it in for all)."""
    values: dict = {}
    for path in NOTEBOOKS:
        for name, value in _declared(path).items():
            assert values.setdefault(name, value) == value, (path.name, name, value, values[name])
    assert set(runner.SAMPLE_ARGS) <= set(config.OTHER_PARAMETERS)


@pytest.mark.parametrize("path", PARAMS_FILES, ids=[p.stem for p in PARAMS_FILES])
def test_parameters_file_names_only_declared_parameters_with_valid_values(path):
    # `landmarks report`'s own check: each name declared by a notebook or the runner's, every stage builds
    assert runner.check_params(_yaml(path), {}, path, NOTEBOOKS) == _yaml(path)


def _defaults() -> dict:
    """What a run takes for a name its file leaves out: the notebooks' declared values, the sample's size."""
    values = {name: value for path in NOTEBOOKS for name, value in _declared(path).items()}
    signature = inspect.signature(sample.make_sample).parameters
    return {**values, **{key: signature[arg].default for key, arg in runner.SAMPLE_ARGS.items()}}


@pytest.mark.parametrize("path", PARAMS_FILES, ids=[p.stem for p in PARAMS_FILES])
def test_parameters_file_holds_only_what_differs_from_the_defaults(path):
    params, defaults = _yaml(path), _defaults()
    same = sorted(k for k, v in params.items() if k in defaults and defaults[k] == v)
    paths = {"reports_dir", "sample_dir", "train_csv", "test_csv", "test_solution_csv", "train_images", "test_images"}
    paths |= {"train_dir", "test_dir", "models_dir"}
    assert same == (sorted(paths & set(params)) if path.stem == "default" else []), path.name  # default: the paths


def test_default_parameters_are_the_config_defaults():
    params = _yaml(REPO / "params" / "default.yaml")
    assert set(params) <= set(config.OTHER_PARAMETERS) | {"train_dir", "models_dir"}  # the run's name and paths
    for cls in config.STAGES:
        assert cls.from_params(params) == cls(), cls.__name__
    # and every notebook gets, from the default file, the values its parameters cell declares
    for path in NOTEBOOKS:
        declared = _declared(path)
        assert {k: v for k, v in declared.items() if k in params and params[k] != v} == {}, path.name


def test_the_modern_file_runs_the_modern_recipe():
    """params/modern.yaml is notebook 03's run with config.MODERN_RECIPE (its warmup sized to its short run)."""
    run = config.RunConfig.from_params(_yaml(REPO / "params" / "modern.yaml"))
    modern = config.RunConfig().replace(**config.MODERN_RECIPE).settings()
    differ = {k: (run.settings()[k], v) for k in config.MODERN_RECIPE if (v := modern[k]) != run.settings()[k]}
    assert differ.keys() <= {"warmup_epochs"}, differ
    assert run.train.warmup_epochs < run.train.epochs


def test_the_modern_recipe_changes_only_recipe_settings():
    """Every key of MODERN_RECIPE is a ModelConfig or TrainConfig field; the network's shape stays."""
    base, modern = config.RunConfig(), config.RunConfig().replace(**config.MODERN_RECIPE)
    assert (modern.model.filters, modern.model.blocks, modern.model.dense_units) == (
        base.model.filters,
        base.model.blocks,
        base.model.dense_units,
    )
    assert modern.train.optimizer == "adamw" and modern.train.lr_schedule == "warmup_cosine"


def test_the_study_file_repeats_the_studys_settings():
    params = _yaml(REPO / "params" / "study-2018.yaml")
    run = config.RunConfig.from_params(params)
    assert (run.model.input_size, run.model.filters) == (study.IMAGE_SIZE, study.RES_INCEP_FILTERS)
    assert (run.train.epochs, run.train.batch_size, run.train.optimizer) == (
        study.RES_INCEP_EPOCHS,
        study.RES_INCEP_BATCH_SIZE,
        study.RES_INCEP_OPTIMIZER,
    )
    benchmark = config.RunConfig.from_params(params, benchmark=True)
    assert (benchmark.train.epochs, benchmark.train.batch_size, benchmark.train.optimizer) == (
        study.RESNET50_EPOCHS,
        study.RESNET50_BATCH_SIZE,
        study.RESNET50_OPTIMIZER,
    )
    assert config.EvalConfig.from_params(params).threshold == study.THRESHOLD
    assert config.FetchConfig.from_params(params).n_images == study.N_IMAGES


# --------------------------------------------------------------------------- the dataclasses


def test_a_wrong_value_fails_with_one_line_naming_the_parameter():
    cases = [
        (config.TrainConfig, {"learning_rate": "0.01"}, "learning_rate: '0.01' is not float"),
        (config.TrainConfig, {"epochs": 2.5}, "epochs: 2.5 is not int"),
        (config.TrainConfig, {"epochs": 0}, "epochs: must be positive, not 0"),
        (config.TrainConfig, {"deterministic": "yes"}, "deterministic: 'yes' is not bool"),
        (
            config.BenchmarkTrainConfig,
            {"benchmark_optimizer": "adam"},
            "benchmark_optimizer: 'adam' is not one of 'sgd', 'rmsprop'",
        ),
        (config.ModelConfig, {"filters": [4, 4], "blocks": [1, 1, 1]}, "need one entry per stage"),
        (config.SplitConfig, {"val_fraction": 1.0}, "val_fraction: must be in [0, 1)"),
        (config.FetchConfig, {"resize": "squash"}, "resize: 'squash' is not one of 'stretch', 'crop', 'pad'"),
        (config.EvalConfig, {"threshold": 4.5}, "threshold: must be in [0, 1]"),
    ]
    for cls, params, message in cases:
        with pytest.raises(config.ConfigError) as err:
            cls.from_params(params)
        assert message in str(err.value) and "\n" not in str(err.value), (cls.__name__, str(err.value))


def test_values_are_normalised_and_the_configs_are_frozen():
    settings = config.ModelConfig.from_params({"filters": [4, 8], "blocks": [1, 1], "dropout": 0})
    assert settings.filters == (4, 8) and settings.dropout == 0.0 and isinstance(settings.dropout, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.dropout = 0.3
    assert config.ModelConfig.from_params({"weights": None}).weights is None
    assert config.TrainConfig.from_params({"early_stopping_patience": None}).early_stopping_patience is None


def test_notebook_04_reads_its_benchmark_parameters():
    params = {
        "epochs": 30,
        "benchmark_epochs": 2,
        "benchmark_optimizer": "rmsprop",
        "benchmark_weights": None,
        "weights_download_timeout": 0,
    }
    run = config.RunConfig.from_params(params, benchmark=True)
    assert (run.model.model, run.model.weights, run.model.weights_download_timeout) == ("resnet50", None, 0.0)
    assert (run.train.epochs, run.train.optimizer) == (2, "rmsprop")
    assert config.RunConfig.from_params(params).train.epochs == 30


def test_a_variant_changes_the_stage_that_owns_each_setting():
    run = config.RunConfig()
    variant = run.replace(min_images=10, augment=True, learning_rate=0.01, seed=7)
    assert (variant.split.min_images, variant.model.augment, variant.train.learning_rate) == (10, True, 0.01)
    assert variant.split.seed == variant.train.seed == 7  # one seed, shared
    assert variant.train.epochs == run.train.epochs and run.split.min_images == 2  # the run is unchanged
    with pytest.raises(config.ConfigError, match="unknown setting 'augmnet' for a variant .did you mean 'augment'"):
        run.replace(augmnet=True)
    with pytest.raises(config.ConfigError, match="unknown setting 'models_dir'"):
        run.replace(models_dir="elsewhere")
    with pytest.raises(config.ConfigError, match="optimizer: 'adam' is not one of"):
        run.replace(optimizer="adam")


# --------------------------------------------------------------------------- metrics schemas


def test_metrics_records_are_checked_against_their_schema(tmp_path):
    from conftest import fabricated_metrics, training_metrics

    for stem, record in fabricated_metrics().items():
        metrics.check(metrics.SCHEMAS[stem], record, stem)
    with pytest.raises(metrics.MetricsError, match="03_res_incep.optimizer: 'SGD' is not one of 'sgd', 'rmsprop'"):
        metrics.save("03_res_incep", training_metrics(optimizer="SGD"), tmp_path)
    record = training_metrics()
    del record["val_top1"]
    with pytest.raises(metrics.MetricsError, match="03_res_incep: missing key 'val_top1'"):
        metrics.save("03_res_incep", record, tmp_path)
    with pytest.raises(metrics.MetricsError, match=r"variants\[0\].val_top1: 'high' is not float"):
        metrics.save("04_resnet50", training_metrics(variants=[{"name": "a", "val_top1": "high"}]), tmp_path)
    assert not list((tmp_path / "metrics").glob("*"))  # nothing written
    # a file without a schema is written as given
    assert metrics.save("99_scratch", {"anything": 1}, tmp_path).is_file()


def test_landmarks_report_refuses_a_wrong_name_or_value_before_running_anything(tmp_path):
    """One line naming the key and where it came from (the file or --set), with the nearest name for a typo."""
    from landmarklib import report

    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(
        nbformat.v4.new_code_cell("epochs = 6\nlearning_rate = 0.002\nbenchmark_optimizer = 'rmsprop'")
    )
    notebook.cells[0].metadata["tags"] = ["parameters"]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook, tmp_path / "notebooks" / "03_x.ipynb")
    params = tmp_path / "params.yaml"
    params.write_text("run_name: x\nepochs: 3\nbenchmark_optimizer: adam\n")

    def refusal(overrides=None, file_text=None) -> str:
        if file_text is not None:
            params.write_text(file_text)
        with pytest.raises(report.ReportError) as err:
            report.run_report(params, root=tmp_path, overrides=overrides)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert refusal() == f"{params}: benchmark_optimizer: 'adam' is not one of 'sgd', 'rmsprop'"
    assert refusal({"benchmark_optimizer": "sgd", "learning_rate": "abc"}) == "--set: learning_rate: 'abc' is not float"
    assert refusal({"learning_rat": 0.1}) == "--set: unknown setting 'learning_rat' (did you mean 'learning_rate'?)"
    assert refusal(file_text="epoch: 3\n") == f"{params}: unknown setting 'epoch' (did you mean 'epochs'?)"
    # a setting of landmarklib/config.py that no notebook declares would change nothing: refused too
    assert refusal(file_text="backoff: 1.0\n").startswith(f"{params}: unknown setting 'backoff'")
    assert refusal(file_text="learning_rate: 0\n") == f"{params}: learning_rate: must be positive, not 0.0"
    assert not (tmp_path / "reports").exists()


def test_landmarks_fetch_options_are_made_from_fetchconfig():
    """Each option sets the FetchConfig field of its dest; its default, choices and help come from the field."""
    from landmarklib.fetch import cli

    parser = argparse.ArgumentParser()
    cli.add_cli(parser.add_subparsers())
    fetch = parser._subparsers._group_actions[0].choices["fetch"]
    fields = {f.name: f for f in dataclasses.fields(config.FetchConfig)}
    options = {a.dest: a for a in fetch._actions if a.dest in fields}
    assert sorted(set(fields) - set(options)) == ["backoff", "max_bytes"]  # not on the command line
    for name, action in options.items():
        assert action.help.startswith(fields[name].metadata["doc"]), name
        assert action.default == (None if name == "n_images" else fields[name].default), name  # no --limit: all rows
    assert options["resize"].choices == images.RESIZE_MODES
    with pytest.raises(SystemExit):
        parser.parse_args(["fetch", "a.csv", "--out", "o", "--workers", "0"])
