"""Each notebook's key numbers, as JSON files the report notebook reads and tests assert on.

Files, written under ``<reports_dir>/metrics/``:

    01_explore.json     catalog exploration (notebook 01)
    02_fetch.json       fetch summary (notebook 02)
    03_res_incep.json   Res-Incep training and validation (notebook 03)
    04_resnet50.json    ResNet-50 benchmark (notebook 04)
    05_visualize.json   what notebook 05 drew
    06_report.json      evaluation on the test set: GAP, thresholds, timing (notebook 06)
    07_beyond.json      beyond the study: three methods scored closed- and open-set (notebook 07)

Every file holds plain JSON (numbers, strings, lists, dicts). A key ``figures``
lists the figure files the notebook wrote, relative to ``reports_dir``.

Each file has one schema below (a ``TypedDict``: the keys every run writes, then the keys
some runs add): the notebook writes it, ``save`` checks it (a missing key or a value of the
wrong type fails with the key's name), and ``report.content`` and the tests read it. A key a
schema does not list may be added (the report ignores it) until it is listed here.
"""

from __future__ import annotations

import json
import math
import os
import typing
from pathlib import Path
from typing import Any, Literal, TypedDict

from . import config, files, paths


class MetricsError(ValueError):
    """A metrics record without a key its schema requires, or with a value of the wrong type (named)."""


Figures = list  # of "figures/<name>.png" (relative to reports_dir) or {"path", "caption"}


class _Explore(TypedDict):
    catalog: str
    n_rows_total: int
    n_landmarks_total: int
    n_images: int
    n_landmarks: int
    top_k: list  # of {"landmark_id", "count"}, most frequent first
    single_image_landmarks: int
    landmarks_covering_50pct: int
    landmarks_covering_90pct: int
    min_images: int
    landmarks_kept: int
    images_kept: int
    figures: Figures


class Explore(_Explore, total=False):
    """``01_explore.json``: the catalog's first rows, its long tail, the ``min_images`` filter."""

    long_tail: dict
    study: dict
    data_source: dict


class _FetchRun(TypedDict):
    n_rows: int
    ok: int
    failed: int
    skipped: int
    failed_by_reason: dict
    seconds: float
    images_per_second: float
    out_dir: str
    empty_folders_removed: int
    images_ok: int
    image_size: int
    resize: str
    catalog: str


class FetchRun(_FetchRun, total=False):
    """One catalog fetched (``fetch.FetchSummary.to_dict`` and the run's settings)."""

    manifest_path: str
    images: str | None  # the images' source (notebook 02's train_images/test_images); None: the urls


class _Fetch(_FetchRun):
    test: FetchRun
    figures: Figures


class Fetch(_Fetch, total=False):
    """``02_fetch.json``: the training catalog's fetch at the top level, the test catalog's under ``test``."""

    manifest_path: str
    images: str | None
    study: dict


class Variant(TypedDict, total=False):
    """One refinement variant of notebook 03 or 04 (a row of ``train.train_variants``' table)."""

    name: str
    changes: dict
    reused: bool
    n_classes: int
    n_train: int
    n_val: int
    chance: float
    majority: float
    val_top1: float
    val_top5: float
    val_loss: float
    train_top1: float
    best_epoch: int
    epochs: int
    epochs_run: int
    params: int
    augment_mode: str | None  # augment.AUGMENT_MODES, or None
    health: str
    health_note: str
    first_epoch_seconds: float
    seconds_per_epoch: float
    images_per_second: float
    model_path: str


class _Training(TypedDict):
    model: config.Architecture
    input_size: int
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "rmsprop", "adamw"]
    learning_rate: float
    momentum: float | None  # SGD only
    seed: int
    params: int
    n_classes: int
    n_train: int
    n_val: int
    chance: float
    majority: float
    val_top1: float
    val_top5: float
    val_loss: float
    train_top1: float
    best_epoch: int
    epochs_run: int
    first_epoch_seconds: float
    seconds_per_epoch: float
    images_per_second: float
    resumed_from: int
    model_path: str
    label_map_path: str
    history_csv: str
    min_images: int
    val_fraction: float
    study_val_top1: float
    study_params: int
    backend: str
    variants: list[Variant]
    figures: Figures


class Training(_Training, total=False):
    """``03_res_incep.json`` and ``04_resnet50.json``: ``train.TrainResult.metrics()``, the run's settings, the study's numbers.

    Notebook 03 adds the Res-Incep shape and the study's configurations rebuilt; notebook 04
    the backbone, the weights actually used (``imagenet``, a file or ``random``, with
    ``weights_note`` saying why) and the side-by-side ``comparison``.
    """

    early_stopping_patience: int | None
    deterministic: bool
    dropped: dict
    filters: list
    blocks: list
    dense_units: int
    dropout: float
    augment: bool
    study_config_params: int
    first_try_params: int
    study_first_try_params: int
    study_num_classes: int
    backbone_params: int
    weights: str
    weights_note: str
    comparison: list


class _Visualize(TypedDict):
    model_path: str
    figures: Figures
    layers: list


class Visualize(_Visualize, total=False):
    """``05_visualize.json``: the figures drawn from the saved Res-Incep and the layers they show."""

    layer_roles: dict
    feature_layers: list
    n_conv_layers: int
    input_size: int
    split: dict
    n_val_used: int
    val_top1_used: float
    n_cam_correct: int
    n_cam_wrong: int
    backend: str


class Report(TypedDict):
    """``06_report.json``: the main model's test scores at the top level, every model's beside them (None: not run)."""

    model: str | None
    gap: float | None
    gap_all: float | None
    threshold: float
    answered_share: float | None
    answered_precision: float | None
    top1: float | None
    top5: float | None
    n_test: int | None
    models: dict
    timing: dict
    submission_csv: str | None
    submissions: dict
    data: str
    catalog: str
    resnet50_weights: str | None
    notebooks: list
    figures: Figures


class _Beyond(TypedDict):
    held_out: list  # of landmark ids held out of training (their test images are open-set queries)
    n_queries: int
    n_closed: int
    n_open: int
    epochs: int
    n_bootstrap: int
    methods: dict  # method name -> its row (``recognition.method_rows``; see ``Beyond``)
    figures: Figures


class Beyond(_Beyond, total=False):
    """``07_beyond.json``: the study's method, the modern recipe and retrieval, scored closed- and open-set.

    Each row of ``methods`` holds ``method``, ``recipe``, and per score of ``openset.METRICS``
    (``closed_top1``, ``closed_top5``, ``closed_gap``, ``open_gap``, ``answered_share``,
    ``answered_precision``) its value with its 95% bootstrap interval (``<score>_low``,
    ``<score>_high``; None where undefined), and in the rows other than the reference
    (``study``) the paired difference ``<score>_diff`` with ``_diff_low`` and ``_diff_high``.
    """

    n_known: int
    n_train: int
    n_val: int
    n_held_out_train: int
    input_size: int
    backend: str
    projection: str
    index: str
    retrieval_k: int
    embedding_dim: int
    retrieval_loss: str
    retrieval_margin: float
    gap_curves: dict
    submissions: dict
    n_test_ids: int  # every test id: each submission has one row per id (not fetched or unreadable: empty)
    unreadable: dict  # test id -> why its image could not be decoded (not answered)


SCHEMAS: dict[str, type] = {
    "01_explore": Explore,
    "02_fetch": Fetch,
    "03_res_incep": Training,
    "04_resnet50": Training,
    "05_visualize": Visualize,
    "06_report": Report,
    "07_beyond": Beyond,
}
"""Metrics file stem -> its schema."""


def variant_rows(table) -> list[dict]:
    """The rows of ``train.train_variants``' table as notebooks 03 and 04 record them (``Variant``'s keys)."""
    keys = list(typing.get_type_hints(Variant))
    return [{k: row[k] for k in keys if k in row} for row in table.to_dict("records")]


def check(schema: type, record: dict, where: str = "metrics") -> None:
    """Raise ``MetricsError`` unless ``record`` has every key ``schema`` requires, each of its type
    (``config.check_value``, the project's one validator).

    Args:
        schema: a ``TypedDict`` of this module.
        record: plain JSON values (after ``save``'s conversion).
        where: how the message names the record (``03_res_incep``).
    """
    try:
        config.check_value(where, record, schema)
    except config.ConfigError as err:
        raise MetricsError(str(err)) from None


def _plain(value: Any) -> Any:
    """numpy/pandas/Path values -> plain JSON values (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    elif hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def save(name: str, data: dict, reports_dir: str | os.PathLike = "reports") -> Path:
    """Write ``data`` to ``<reports_dir>/metrics/<name>.json`` (atomically) and return the path.

    Args:
        name: file stem, e.g. ``"01_explore"``; a stem of ``SCHEMAS`` is checked against its schema.
        data: the numbers; numpy scalars and arrays are converted.
        reports_dir: the reports folder (relative to the project root or absolute).

    Raises:
        MetricsError: ``data`` lacks a key its schema requires, or has a value of the wrong type.
    """
    record = _plain(data)
    if name in SCHEMAS:
        check(SCHEMAS[name], record, name)
    return files.write_json(paths.metrics_dir(reports_dir) / f"{name}.json", record)


def load(name: str, reports_dir: str | os.PathLike = "reports") -> dict:
    """Read ``<reports_dir>/metrics/<name>.json``."""
    return json.loads((paths.metrics_dir(reports_dir) / f"{name}.json").read_text())


def load_all(reports_dir: str | os.PathLike = "reports") -> dict[str, dict]:
    """Every metrics file present, keyed by stem (``"01_explore"`` ...)."""
    d = paths.metrics_dir(reports_dir)
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))}
