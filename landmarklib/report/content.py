"""The report's content (notebook 06): every number comes from a metrics file or is measured here.

    pct, count                 how numbers are written (the study's numbers: ``landmarklib.study``)
    metrics_for, data_source   what the earlier notebooks recorded; which data the run used
    ModelEvaluation            a saved model on the held-out test set (``report.evaluation.evaluate_models``)
    *_table                    the tables: this run beside the study, test scores, timing, variants
    *_md                       the markdown of each section, in the study's order
    pick_examples, report_metrics   the ten example images; the contents of 06_report.json

The report's figures are in ``landmarklib.visualize.evaluation``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import evaluate, files, paths, study
from ..metrics import Report

# --------------------------------------------------------------------------- number formats

MODELS = {"res_incep": "Res-Incep", "resnet50": "ResNet-50"}
"""Saved model name (``<models_dir>/<name>.keras``) -> label; the first is the report's main model."""
NOT_RUN = "not run"


def _missing(value: Any) -> bool:
    """``None`` or NaN: a number that was not measured."""
    return value is None or (isinstance(value, float) and value != value)


def pct(value: float | None, digits: int = 2, missing: str = NOT_RUN) -> str:
    """``0.0589`` -> ``"5.89%"``; ``None``/NaN -> ``missing``."""
    return missing if _missing(value) else f"{100 * value:.{digits}f}%"


def count(value: float | int | None) -> str:
    """``2286`` -> ``"2,286"``; ``None``/NaN -> ``"not run"``."""
    return NOT_RUN if _missing(value) else f"{int(round(value)):,}"


def gap_text(value: float | None) -> str:
    """A GAP with four decimals; ``None``/NaN -> ``"not run"``."""
    return NOT_RUN if _missing(value) else f"{value:.4f}"


def _precision(scores: dict) -> str:
    """Precision of the answers; undefined (no answers) is said so."""
    return pct(scores["answered_precision"], 1, missing="no answers")


# --------------------------------------------------------------------------- what the earlier notebooks recorded


def metrics_for(number: str, metrics: dict[str, dict]) -> dict:
    """The metrics file of notebook ``number`` (``"03"`` -> ``metrics["03_res_incep"]``), or ``{}``."""
    return next((data for stem, data in metrics.items() if stem.startswith(f"{number}_")), {})


def _get(metrics: dict[str, dict], number: str, key: str):
    return metrics_for(number, metrics).get(key)


STUDY_DATA_KIND = "kaggle-2018"
"""The ``data_source.kind`` of the study's own data: the Kaggle 2018 catalog (notebook 01 records the kind)."""


def data_source_text(ds: dict | None) -> str:
    """One line naming a recorded data source: name, kind, rows, landmarks, digest, path; ``""`` when none."""
    if not ds:
        return ""
    sha = str(ds.get("sha256") or "")
    return (
        f"**{ds.get('name') or '?'}** ({ds.get('kind') or '?'}): {count(ds.get('rows'))} rows, "
        f"{count(ds.get('landmarks'))} landmarks, catalog `{ds.get('path') or '?'}`"
        + (f", sha256 `{sha[:12]}…`" if sha else "")
    )


def data_caveat(kind: str | None) -> str:
    """The caveat beside the study's numbers when this run's data is not the study's 2018 catalog."""
    if kind == STUDY_DATA_KIND:
        return ""
    what = {
        "sample": "the embedded synthetic sample",
        "gldv2": "the Google Landmarks v2 catalog",
        "folder": "a folder of one's own images",
        "ids": "a catalog of ids whose images came from shards or files (GLDv2, Kaggle 2019-2021)",
    }.get(kind or "", "other data than the study's")
    return (
        f"⚠ The study's numbers come from the Kaggle 2018 catalog; this run used {what}, "
        "so the two columns describe different data and are not comparable."
    )


def data_source(train_csv: str, sample_dir: str | None, metrics: dict[str, dict]) -> dict:
    """Which data the run used, from notebook 01's ``data_source`` record (or its path, for older metrics).

    Returns:
        dict: kind (the record's ``kind``: ``"sample"``, ``"kaggle-2018"``, ``"gldv2"``, ``"folder"``,
        ``"ids"``, ``"other"``; without a record ``"sample"`` or ``"real"``, decided from the path), catalog,
        record (notebook 01's ``data_source``, or ``None``), text (markdown), caveat (beside the
        study's column; ``""`` for the 2018 catalog).
    """
    record = _get(metrics, "01", "data_source")
    catalog = (record or {}).get("path") or _get(metrics, "01", "catalog") or train_csv
    if record:
        kind = record.get("kind") or "other"
        text = f"This run used {data_source_text(record)}."
        if kind == "sample":
            text += " Its numbers test the pipeline, not the study's accuracy."
        return {"kind": kind, "catalog": str(catalog), "record": record, "text": text, "caveat": data_caveat(kind)}
    csv = paths.resolve(catalog)
    sample = paths.resolve(sample_dir) if sample_dir else None
    if sample is not None and csv.resolve().is_relative_to(sample.resolve()):
        text = (
            f"This run used the **embedded synthetic sample** (`{sample_dir}`, drawn by "
            "`landmarklib.sample`: invented landmarks, a long tail of rare ones, broken files on "
            "purpose), not the Kaggle photos; its numbers test the pipeline, not the study's accuracy."
        )
        return {
            "kind": "sample",
            "catalog": str(catalog),
            "record": None,
            "text": text,
            "caveat": data_caveat("sample"),
        }
    text = f"This run used the real catalog `{catalog}` (notebook 01 recorded no data source: which one is not known)."
    return {"kind": "real", "catalog": str(catalog), "record": None, "text": text, "caveat": data_caveat(None)}


def health_md(health: str | None, note: str | None, label: str = "This run") -> str:
    """A warning block for a run that diverged or collapsed (``train.diagnose``); ``""`` when it is ok.

    Such a run is no result: its accuracy says what a broken model scores, not what the method can do.
    """
    if not health or health == "ok":
        return ""
    note = (note or "").rstrip(".")
    return (
        f"> ## ⚠ {label} {health}\n>\n> {note[:1].upper() + note[1:]}. Its numbers are shown for the "
        f"record only: a {health} run is **no result**. Lower the learning rate, or train longer with "
        f"more images per landmark."
    )


def resnet_weights(metrics: dict[str, dict]) -> str:
    """One sentence: did the ResNet-50 benchmark start from ImageNet weights (the study's did)?"""
    weights = _get(metrics, "04", "weights")
    if weights is None:
        return f"The ResNet-50 benchmark (notebook 04) was {NOT_RUN}."
    note = _get(metrics, "04", "weights_note") or ""
    if weights == "imagenet":
        return f"ResNet-50 started from **ImageNet weights**, as in the study. {note}".strip()
    return f"ResNet-50 started from **{weights} weights**, not ImageNet as in the study. {note}".strip()


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
    from IPython.display import Image, Markdown, display  # in a notebook only: the command line never shows figures

    for rel, caption in figure_list(entry):
        path = paths.resolve(reports_dir) / rel
        if not path.is_file():
            display(Markdown(f"*Figure `{rel}` is missing.*"))
            continue
        display(Image(filename=str(path), embed=True))
        if caption:
            display(Markdown(f"*{caption}*"))


# --------------------------------------------------------------------------- evaluation on the test set


@dataclass
class ModelEvaluation:
    """One model on the test set; ``solution`` is ``None`` when there is no solution file (nothing scored)."""

    name: str
    label: str
    model_path: Path
    predictions: Any  # DataFrame(id, landmark_id, confidence, answered, top_ids, error, actual, correct)
    scores: dict
    curve: Any  # DataFrame(threshold, answered, answered_share, precision_answered, gap)
    confusion: Any  # DataFrame, rows true landmark, columns predicted; None when not scored
    timing: dict
    submission: Path
    solution: Path | None = None

    @property
    def scored(self) -> bool:
        """Whether the predictions were scored against a solution file."""
        return self.solution is not None


NO_SOLUTION = "no solution file"
"""What a score reads when the test set has no solution file (the Kaggle 2018 test set has none public)."""


# --------------------------------------------------------------------------- tables


def _val_top1(metrics: dict[str, dict], number: str) -> str:
    """A notebook's validation accuracy, or what its run was when it is no result (diverged, collapsed)."""
    m = metrics_for(number, metrics)
    health = m.get("health")
    if health and health != "ok":
        return f"{health}: no result ({pct(m.get('val_top1'))})"
    return pct(m.get("val_top1"))


def study_comparison(
    metrics: dict[str, dict], evaluations: dict[str, ModelEvaluation], source: dict | None = None
) -> pd.DataFrame:
    """The study's published numbers beside this run's (strings, "not run" where a step was not run).

    With a ``source`` (``data_source``) whose data is not the study's 2018 catalog, the column
    headers say so: the two columns describe different data.
    """

    def ev(name: str, key: str):
        e = evaluations.get(name)
        return None if e is None else e.scores.get(key)

    def scored(name: str, key: str, fmt) -> str:
        e = evaluations.get(name)
        return NO_SOLUTION if e is not None and not e.scored else fmt(ev(name, key))

    def seconds(name: str) -> str:
        e = evaluations.get(name)
        if e is None:
            return NOT_RUN
        return f"{e.timing['latency_median_ms'] / 1000:.4f}"

    rows = [
        ("training rows used (first N of train.csv)", count(study.N_IMAGES), count(_get(metrics, "01", "n_images"))),
        ("unique landmarks among them", count(study.N_LANDMARKS), count(_get(metrics, "01", "n_landmarks"))),
        (
            "single-image landmarks",
            count(study.SINGLE_IMAGE_LANDMARKS),
            count(_get(metrics, "01", "single_image_landmarks")),
        ),
        ("failed downloads", count(study.FAILED), count(_get(metrics, "02", "failed"))),
        (
            "empty landmark folders removed",
            count(study.EMPTY_FOLDERS_REMOVED),
            count(_get(metrics, "02", "empty_folders_removed")),
        ),
        ("image size (px)", f"{study.IMAGE_SIZE}", count(_get(metrics, "02", "image_size"))),
        ("model input size (px)", f"{study.IMAGE_SIZE}", count(_get(metrics, "03", "input_size"))),
        ("Res-Incep parameters", f"~{study.RES_INCEP_PARAMS / 1e6:.1f}M", count(_get(metrics, "03", "params"))),
        ("ResNet-50 parameters", count(study.RESNET50_PARAMS), count(_get(metrics, "04", "params"))),
        ("Res-Incep validation accuracy", pct(study.RES_INCEP_VAL_TOP1), _val_top1(metrics, "03")),
        ("ResNet-50 validation accuracy", pct(study.RESNET50_VAL_TOP1), _val_top1(metrics, "04")),
        ("Res-Incep seconds per image", f"{study.RES_INCEP_SECONDS_PER_IMAGE}", seconds("res_incep")),
        ("ResNet-50 seconds per image", f"{study.RESNET50_SECONDS_PER_IMAGE}", seconds("resnet50")),
        ("Res-Incep test GAP", "not measured", scored("res_incep", "gap", gap_text)),
        ("ResNet-50 test GAP", "not measured", scored("resnet50", "gap", gap_text)),
        ("Res-Incep test top-5 accuracy", "not measured", scored("res_incep", "top5", pct)),
        ("ResNet-50 test top-5 accuracy", "not measured", scored("resnet50", "top5", pct)),
        *(
            (
                f"{label} answered at {pct(study.THRESHOLD, 1)}",
                f"{pct(study.ANSWERED_SHARE[name], 0)} of {study.EXAMPLE_IMAGES} images",
                pct(ev(name, "answered_share"), 1),
            )
            for name, label in MODELS.items()
        ),
    ]
    columns = ["measure", "study (2018)", "this run"]
    if source and source.get("caveat"):
        columns[1:] = ["study (2018 Kaggle catalog)", f"this run ({source.get('kind')} data: not comparable)"]
    return pd.DataFrame(rows, columns=columns).set_index("measure").rename_axis(None)


def evaluation_table(evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """Test-set scores per model: GAP at the threshold and answering all, top-1, top-5, coverage, precision."""
    rows = {}
    for e in evaluations.values():
        s = e.scores
        if not e.scored:
            rows[e.label] = {
                "GAP (threshold)": NO_SOLUTION,
                "GAP (answer all)": NO_SOLUTION,
                "top-1": NO_SOLUTION,
                "top-5": NO_SOLUTION,
                "answered": pct(s["answered_share"], 1),
                "precision of answers": NO_SOLUTION,
                "test images": count(s["n_test"]),
                "showing a landmark": NO_SOLUTION,
            }
            continue
        rows[e.label] = {
            "GAP (threshold)": gap_text(s["gap"]),
            "GAP (answer all)": gap_text(s["gap_all"]),
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
    table = evaluate.timing_table({e.name: e.timing for e in evaluations.values()})
    table.index = [MODELS.get(n, n) for n in table.index]
    table = table.round(
        {
            "load_seconds": 2,
            "latency_median_ms": 2,
            "latency_p90_ms": 2,
            "batch_images_per_second": 1,
            "study_over_measured": 0,
        }
    )
    return table.rename(
        columns={
            "load_seconds": "load (s)",
            "latency_median_ms": "one image, median (ms)",
            "latency_p90_ms": "one image, p90 (ms)",
            "batch_images_per_second": "batched (images/s)",
            "study_seconds_per_image": "study (s per image)",
            "study_over_measured": "study / now",
        }
    )


def variants_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """The refinement variants of notebooks 03 and 04 (name, accuracy keys) as one table."""
    rows = []
    for number in ("03", "04"):
        for v in _get(metrics, number, "variants") or []:
            rows.append({"notebook": number, **{k: x for k, x in v.items() if not isinstance(x, (list, dict))}})
    table = pd.DataFrame(rows)
    for key in ("val_top1", "val_top5", "train_top1"):
        if key in table:
            table[key] = table[key].map(pct)
    return table.set_index("name") if "name" in table else table


# --------------------------------------------------------------------------- sections (markdown)


def overview_md(source: dict, metrics: dict[str, dict]) -> str:
    """What the run did, which data it used, and which notebooks' results this report holds."""
    ran = sorted(metrics)
    missing = [n for n in ("01", "02", "03", "04", "05") if not metrics_for(n, metrics)]
    text = source["text"] + f" Results read from: {', '.join(f'`{s}`' for s in ran) or 'none'}."
    if missing:
        text += (
            f" **Not run:** notebook(s) {', '.join(missing)}; their sections say so "
            "(run them with `landmarks report --only ...`)."
        )
    return text


def exploration_md(metrics: dict[str, dict]) -> str:
    """Data exploration: catalog size, landmarks, the long tail, single-image landmarks."""
    m = metrics_for("01", metrics)
    if not m:
        return f"*Notebook 01 (exploration) was {NOT_RUN}.*"
    n, k = m["n_images"], m["n_landmarks"]
    top = m["top_k"]
    top_text = ""
    if top:
        first = top[0]
        top_text = (
            f" The most frequent landmark, `{first['landmark_id']}`, has {count(first['count'])} images; "
            f"the {len(top)} most frequent hold {count(sum(t['count'] for t in top))} of them."
        )
    return (
        f"The exploration read `{m['catalog']}` ({count(m['n_rows_total'])} rows) and kept the first "
        f"{count(n)} images: **{count(k)} landmarks** (the study: {count(study.N_LANDMARKS)} in {count(study.N_IMAGES)}), "
        f"{count(m['single_image_landmarks'])} of them with a single image (the study: "
        f"{study.SINGLE_IMAGE_LANDMARKS}).{top_text} Half of the images belong to "
        f"{count(m['landmarks_covering_50pct'])} landmarks, 90% to {count(m['landmarks_covering_90pct'])}. "
        f"Keeping only landmarks with at least {m['min_images']} images (the study's proposed improvement) "
        f"leaves {count(m['landmarks_kept'])} landmarks and {count(m['images_kept'])} images."
    )


def preprocessing_md(metrics: dict[str, dict]) -> str:
    """Preprocessing: the fetch's outcome (ok, failed and why, empty folders), the image size."""
    m = metrics_for("02", metrics)
    if not m:
        return f"*Notebook 02 (fetch) was {NOT_RUN}.*"
    reasons = m["failed_by_reason"]
    why = "; ".join(f"{r}: {c}" for r, c in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
    test = m["test"]
    test_text = f" The test catalog gave {count(test['ok'])} images ({count(test['failed'])} failed)."
    return (
        f"Every image was decoded by content, converted to RGB (GIFs: first frame; transparency on white; "
        f"EXIF rotation applied) and resized to **{m['image_size']} px** ({m['resize']}). "
        f"Of {count(m['n_rows'])} training rows, **{count(m['ok'])} were fetched**, "
        f"**{count(m['failed'])} failed** (the study: {study.FAILED}; reasons: {why}) and "
        f"{count(m['skipped'])} were skipped as already present; {count(m['empty_folders_removed'])} landmark "
        f"folders were left empty and removed (the study: {study.EMPTY_FOLDERS_REMOVED}). "
        f"Fetching ran at {m['images_per_second']:.1f} images/s.{test_text}"
    )


def _model_md(m: dict, label: str) -> str:
    warning = health_md(m.get("health"), m.get("health_note"), f"The {label} run")
    return (warning + "\n\n" if warning else "") + (
        f"{label} has **{count(m['params'])} parameters**, trained for {m['epochs']} epochs "
        f"(batch {m['batch_size']}, {m['optimizer']}) on {count(m['n_train'])} images of "
        f"{count(m['n_classes'])} landmarks at {m['input_size']} px, and reached "
        f"**{pct(m['val_top1'])} validation accuracy** (top-5: {pct(m['val_top5'])}; chance: "
        f"{pct(m['chance'])}; training accuracy {pct(m['train_top1'])}) on {count(m['n_val'])} "
        f"validation images, at {m['seconds_per_epoch']:.1f} s per epoch."
        + (f" It trained on {m['ran_on']}." if m.get("ran_on") else "")  # devices.record()
    )


RESNET50_DEPARTURES = (
    "**Departures from the study, labelled:** the study divided every pixel by 255 before both networks; "
    "ResNet-50's ImageNet weights were trained on Caffe-style input (BGR, minus the ImageNet mean, 0..255), "
    "which this rebuild feeds instead (inside the model), so that the pretrained features see what they were "
    'trained on. The study\'s "far less training necessary" suggests that it trained only the new top; here '
    "every layer of the backbone is trained (fine-tuned) as well."
)
"""Where notebook 04 knowingly departs from the study's text (its Data Preprocessing and Implementation)."""


def _departures(m: dict) -> str:
    """Settings of a run that depart from what the study said, as a sentence (``""`` when none)."""
    notes = []
    if str(m.get("optimizer", "")).lower() == "sgd" and m.get("momentum"):
        notes.append(f"SGD with momentum {m['momentum']:g} (the study used Keras' plain SGD, momentum 0)")
    if m.get("augment_mode") == "replace" or (m.get("augment") is True and m.get("augment_mode") is None):
        notes.append("augmentation in place of the originals (the study added augmented copies: `augment: add`)")
    return f" Departures from the study: {'; '.join(notes)}." if notes else ""


def implementation_md(metrics: dict[str, dict]) -> str:
    """Implementation: the Res-Incep network as trained in this run, beside the study's 2.2M / 5.89%."""
    m = metrics_for("03", metrics)
    if not m:
        return f"*Notebook 03 (Res-Incep) was {NOT_RUN}.*"
    first_try = study.FIRST_TRY_PARAMS
    rebuilt, rebuilt_first = m.get("study_config_params"), m.get("first_try_params")
    published = (
        f" The study's network had about {study.RES_INCEP_PARAMS / 1e6:.1f} million parameters"
        + (f" (this rebuild of it: {count(rebuilt)})" if rebuilt else "")
        + f"; its first try, filters 60-120-250-600, had about {first_try / 1e6:.0f} million in the study"
        + (f" and {count(rebuilt_first)} in this rebuild" if rebuilt_first else "")
        + f", and did not fit in memory. The study reached {pct(study.RES_INCEP_VAL_TOP1)}."
    )
    return _model_md(m, "Res-Incep") + published + _departures(m)


def benchmark_md(metrics: dict[str, dict]) -> str:
    """Benchmark: ResNet-50 as trained in this run, its weights, beside the study's 4.02%."""
    m = metrics_for("04", metrics)
    if not m:
        return f"*Notebook 04 (ResNet-50 benchmark) was {NOT_RUN}.*"
    return (
        _model_md(m, "ResNet-50") + f" The study's ResNet-50 ({count(study.RESNET50_PARAMS)} parameters) "
        f"reached {pct(study.RESNET50_VAL_TOP1)}. " + resnet_weights(metrics) + "\n\n" + RESNET50_DEPARTURES
    )


def refinement_md(metrics: dict[str, dict]) -> str:
    """Refinement: how many variants were tried, and the best."""
    variants = [v for n in ("03", "04") for v in (_get(metrics, n, "variants") or [])]
    if not variants and (metrics_for("03", metrics) or metrics_for("04", metrics)):
        return "*No refinement variants were trained in this run (`variants` and `benchmark_variants` are empty).*"
    if not variants:
        return f"*No refinement variants were recorded (notebooks 03/04 {NOT_RUN}).*"
    scored = [v for v in variants if v.get("val_top1") is not None and v.get("health", "ok") == "ok"]
    best = max(scored, key=lambda v: v["val_top1"]) if scored else None
    text = f"{len(variants)} variants were trained with the same data and split."
    broken = [f"{v.get('name', '?')} ({v['health']})" for v in variants if v.get("health", "ok") != "ok"]
    if broken:
        text += f" No result from: {', '.join(broken)}."
    if best:
        text += f" The best, **{best['name']}**, reached {pct(best['val_top1'])} validation accuracy."
    return text


def evaluation_md(evaluations: dict[str, ModelEvaluation], missing: Sequence[str], threshold: float) -> str:
    """Evaluation: what the test set is and each model's GAP, accuracy and coverage at the threshold."""
    parts = []
    unscored = [e for e in evaluations.values() if not e.scored]
    for e in unscored:
        s = e.scores
        median = s.get("confidence_median")
        parts.append(
            f"- **{e.label}** answered {pct(s['answered_share'], 1)} of the {count(s['n_test'])} test images at "
            f"{pct(threshold, 1)} ({count(s['n_answered'])} answers"
            + (f"; median confidence of its top answer {pct(median, 1)}" if median is not None else "")
            + "). Whether they are right is not known: there is no solution file."
        )
    for e in (e for e in evaluations.values() if e.scored):
        s = e.scores
        parts.append(
            f"- **{e.label}**: GAP **{gap_text(s['gap'])}** answering at {pct(threshold, 1)} "
            f"({gap_text(s['gap_all'])} answering every image), top-1 {pct(s['top1'])}, top-5 {pct(s['top5'])}; "
            f"it answered {pct(s['answered_share'], 1)} of the {count(s['n_test'])} test images"
            + (f" and {_precision(s)} of its answers were right." if s["n_answered"] else ".")
        )
    for reason in missing:
        parts.append(f"- *{NOT_RUN}*: {reason}")
    if unscored:
        n = unscored[0].scores
        head = (
            f"The test set has {count(n['n_test'])} images ({count(n.get('n_readable'))} readable) and **no "
            f"solution file** (the Kaggle 2018 test set has no public answers), so GAP, accuracy and the "
            f"precision of the answers cannot be scored. What needs no answers is measured: every readable image "
            f"is predicted, the threshold applied, the answers written to a Kaggle submission:"
        )
    elif evaluations:
        n = next(iter(evaluations.values())).scores
        head = (
            f"The held-out test set has {count(n['n_test'])} images, {count(n['n_landmark_images'])} of them "
            f"showing a landmark (the others must get no answer). Scored once, after training:"
        )
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
        if not e.scored:
            lines.append(
                f"- {e.label}: at {pct(threshold, 1)} it answers {pct(s['answered_share'], 1)} of the images "
                f"(precision and GAP: {NO_SOLUTION})."
            )
            continue
        lines.append(
            f"- {e.label}: at {pct(threshold, 1)} it answers {pct(s['answered_share'], 1)} of the images "
            f"(precision of the answers: {_precision(s)}); GAP {gap_text(s['gap'])} against "
            f"{gap_text(s['gap_all'])} answering all."
        )
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
        f"The study preferred Res-Incep: it answered {study.EXAMPLE_IMAGES * study.RES_INCEP_ANSWERED_SHARE:.0f} of {study.EXAMPLE_IMAGES} test images "
        f"at {pct(study.THRESHOLD, 1)} where ResNet-50 answered none, "
        f"and it had the higher validation accuracy ({pct(study.RES_INCEP_VAL_TOP1)} against "
        f"{pct(study.RESNET50_VAL_TOP1)}), though it was slower ({study.RES_INCEP_SECONDS_PER_IMAGE} s against "
        f"{study.RESNET50_SECONDS_PER_IMAGE} s per image)."
    ]
    if m3 and m4:
        lines.append(
            f"In this run {_leader(m3['val_top1'], m4['val_top1'])} on validation accuracy "
            f"({pct(m3['val_top1'])} against {pct(m4['val_top1'])})."
        )
    if r and b:
        if r.scored and b.scored:
            lines.append(
                f"On the test set {_leader(r.scores['gap_all'], b.scores['gap_all'])} on GAP answering "
                f"every image ({gap_text(r.scores['gap_all'])} against {gap_text(b.scores['gap_all'])}); at "
                f"the threshold Res-Incep answers {pct(r.scores['answered_share'], 1)} and ResNet-50 "
                f"{pct(b.scores['answered_share'], 1)} of the images."
            )
        else:
            lines.append(
                f"On the test set ({NO_SOLUTION}: nothing scored) Res-Incep answers "
                f"{pct(r.scores['answered_share'], 1)} and ResNet-50 {pct(b.scores['answered_share'], 1)} "
                f"of the images at the threshold."
            )
        lines.append(
            f"One image takes {r.timing['latency_median_ms']:.1f} ms through Res-Incep and "
            f"{b.timing['latency_median_ms']:.1f} ms through ResNet-50 (median, image in memory), "
            f"against the study's {study.RES_INCEP_SECONDS_PER_IMAGE} s and "
            f"{study.RESNET50_SECONDS_PER_IMAGE} s."
        )
    elif not evaluations:
        lines.append(f"*The test-set comparison was {NOT_RUN}.*")
    lines.append(resnet_weights(metrics))
    return " ".join(lines)


def visualization_md(metrics: dict[str, dict]) -> str:
    """Visualization: what notebook 05 drew."""
    m = metrics_for("05", metrics)
    if not m:
        return f"*Notebook 05 (filters and feature maps) was {NOT_RUN}.*"
    layers = ", ".join(f"`{name}`" for name in m["layers"]) or "none named"
    return f"Notebook 05 drew {len(m['figures'])} figures from `{m['model_path']}` (layers: {layers})."


def conclusion_md(source: dict, metrics: dict[str, dict], evaluations: dict[str, ModelEvaluation]) -> str:
    """Conclusion: what this run shows, in the study's terms, and its improvements measured."""
    m1, m3 = metrics_for("01", metrics), metrics_for("03", metrics)
    lines = []
    if m3:
        lines.append(
            f"Res-Incep reached {pct(m3['val_top1'])} validation accuracy against chance "
            f"{pct(m3['chance'])} ({pct(study.RES_INCEP_VAL_TOP1)} in the study)."
        )
    r = evaluations.get("res_incep")
    if r and not r.scored:
        lines.append(
            f"On the test set it answers {pct(r.scores['answered_share'], 1)} of the images at the study's "
            f"threshold; there is no solution file to score them."
        )
    elif r:
        lines.append(
            f"On the held-out test set its GAP is {gap_text(r.scores['gap'])} at the study's threshold "
            f"and its top-5 accuracy {pct(r.scores['top5'])}."
        )
    if m1:
        lines.append(
            f"The long tail the study blamed is measured: {count(m1['single_image_landmarks'])} of "
            f"{count(m1['n_landmarks'])} landmarks have a single image."
        )
    if source["kind"] == "sample":
        lines.append(
            "These numbers come from the embedded synthetic sample: they show that every step runs and "
            "is measured; `params/study-2018.yaml` repeats the run on the real catalog."
        )
    return " ".join(lines) or f"*Nothing to conclude: the earlier notebooks were {NOT_RUN}.*"


# --------------------------------------------------------------------------- ten example images


def pick_examples(evaluations: dict[str, ModelEvaluation], n: int = 10, seed: int = 42) -> pd.DataFrame:
    """``n`` test images (a seeded draw among readable ones) with each model's answer.

    Returns:
        DataFrame(id, actual, <model>_landmark, <model>_confidence, <model>_answered ...).
    """
    if not evaluations:
        return pd.DataFrame(columns=["id", "actual"])
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
    if _missing(confidence):
        return "unreadable"
    return f"{landmark if answered else 'none'} ({100 * confidence:.1f}%)"


def examples_table(examples: pd.DataFrame, evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """The example images as text: id, true landmark, each model's answer (``answer_text``)."""
    actual = examples["actual"].astype(object)
    actual = actual.where(actual.notna(), f"unknown ({NO_SOLUTION})").replace("", "no landmark")
    table = pd.DataFrame({"id": examples["id"], "true landmark": actual})
    for e in evaluations.values():
        table[e.label] = [
            answer_text(lid, conf, ok)
            for lid, conf, ok in zip(
                examples[f"{e.name}_landmark"], examples[f"{e.name}_confidence"], examples[f"{e.name}_answered"]
            )
        ]
    return table.set_index("id")


# --------------------------------------------------------------------------- 06_report.json


def report_metrics(
    evaluations: dict[str, ModelEvaluation],
    threshold: float,
    source: dict,
    metrics: dict[str, dict],
    figures: list[str],
    reports_dir: str | os.PathLike,
) -> Report:
    """The contents of ``06_report.json`` (``metrics.Report``): Res-Incep's test scores at the top level, every model's beside them."""
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
        "scored": bool(main.scored) if main else None,
        "solution_csv": files.display_path(main.solution) if main and main.solution else None,
        "models": {e.name: e.scores for e in evaluations.values()},
        "timing": {
            e.name: {
                k: e.timing[k]
                for k in ("load_seconds", "latency_median_ms", "latency_p90_ms", "batch_images_per_second")
            }
            for e in evaluations.values()
        },
        "submission_csv": str(main.submission.relative_to(base)) if main else None,
        "submissions": {e.name: str(e.submission.relative_to(base)) for e in evaluations.values()},
        "data": source["kind"],
        "catalog": source["catalog"],
        "data_source": source.get("record"),
        "resnet50_weights": _get(metrics, "04", "weights"),
        "notebooks": sorted(metrics),
        "figures": figures,
    }


# --------------------------------------------------------------------------- beyond the study (notebook 07)


def beyond_md(metrics: dict[str, dict]) -> str:
    """The "Beyond the study" section: the modern recipe and retrieval beside the study's method, open-set."""
    m = metrics_for("07", metrics)
    if not m:
        return (
            "*This reports folder holds no results of notebook 07 (the modern recipe and retrieval, scored "
            "open-set): `landmarks report --only 07,06` adds them.*"
        )
    methods = m.get("methods") or {}

    def ci(row: dict, key: str, as_pct: bool = False) -> str:
        f = pct if as_pct else gap_text
        return f"{f(row.get(key))} [{f(row.get(key + '_low'))}, {f(row.get(key + '_high'))}]"

    lines = [
        f"Notebook 07 trained three methods on the same Res-Incep, data and {m.get('epochs')} epochs, with "
        f"{len(m.get('held_out') or [])} landmarks ({', '.join(map(str, m.get('held_out') or []))}) held out of "
        f"training entirely: of its {count(m.get('n_queries'))} test images, {count(m.get('n_open'))} have no right "
        f"answer. Intervals: 95% bootstrap over the test images ({count(m.get('n_bootstrap'))} resamples), paired "
        "between methods.",
        "",
        "| method | recipe | closed top-1 | closed top-5 | closed GAP | open GAP | open GAP minus study's | "
        "answered | precision |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in methods.items():
        diff = "-"
        if row.get("open_gap_diff") is not None:
            diff = f"{row['open_gap_diff']:+.3f} [{row['open_gap_diff_low']:+.3f}, {row['open_gap_diff_high']:+.3f}]"
        lines.append(
            f"| {name} | {row.get('recipe', '')} | {ci(row, 'closed_top1', True)} | "
            f"{pct(row.get('closed_top5'))} | {gap_text(row.get('closed_gap'))} | {ci(row, 'open_gap')} | "
            f"{diff} | {pct(row.get('answered_share'))} | {pct(row.get('answered_precision'), missing='none answered')} |"
        )
    lines += ["", f"Retrieval index: {m.get('index', '?')}; embeddings pictured by {m.get('projection', '?')}."]
    return "\n".join(lines)
