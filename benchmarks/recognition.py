"""Benchmark: the study's classifier, the modern recipe and retrieval, scored closed- and open-set.

    .venv/bin/python benchmarks/recognition.py --data ../shared/data/real-landmarks --quick
    .venv/bin/python benchmarks/recognition.py --data ../shared/data/indian-monuments-64 --quick
    .venv/bin/python benchmarks/recognition.py --data DIR --holdout-landmarks 5 --seed 42 --epochs 60
    .venv/bin/python benchmarks/recognition.py --data ../shared/data/real-landmarks --input-size 128 --epochs 50 \
        --margin 0.2 --precision mixed_bfloat16   # the recorded three-method run (17-21 minutes per method here)
    .venv/bin/python benchmarks/recognition.py --data ../shared/data/real-landmarks --methods modern,retrieval \
        --input-size 160 --epochs 50 --precision mixed_bfloat16   # the best run (30-31 minutes per method here)
    .venv/bin/python benchmarks/recognition.py --report-only

DIR is a data set in the shared layout (``train.csv`` ``id,url,landmark_id`` with ``url`` a
path relative to DIR, ``test.csv``, ``test_solution.csv``, ``images/``). Nothing is copied:
the training images are seen through a folder of symbolic links,
``<work>/<data set>/train/<landmark_id>/<id>.jpg``, and the test images through
``<work>/<data set>/test/<id>.jpg`` (``--work``, outside the project by default).

``--holdout-landmarks N`` landmarks (a seeded choice, ``data.load_open_split``) are held out
of training entirely; their test images are open-set queries with no right answer. Every
method (``landmarklib.recognition.METHODS``) trains on the same split, backbone (Res-Incep),
input size and epochs; each method's answering threshold is chosen on validation queries;
the holdout ``test_solution.csv`` is scored once per method: closed top-1 (strict top-5 too),
closed GAP, open GAP, answered share and precision at the threshold, with 95% bootstrap
intervals over the test images, paired with the study's method.

Each run is recorded as ``<out folder>/recognition-runs/<run>.json`` (committed beside the report, with
every query's answer, so ``--report-only`` rebuilds the report anywhere); ``--out`` (default
``reports/benchmarks/recognition.md``) lists every recorded run. The last printed line gives
closed top-1 and open GAP per method.

``--quick``: 64 px, 10 epochs per method (about 30 minutes on 2 busy cores), instead of the
full 80 px, 60 epochs (the issue's budget: 40 minutes per method on this machine).
``--loss``, ``--margin``, ``--scale``, ``--embedding-dim`` and ``--k`` default to ``config.BeyondConfig``'s
(ArcFace, margin 0.4). ``--tta`` (``BeyondConfig.modern_tta``, default flip): modern and retrieval also answer each query's
mirror image. ``--precision mixed_bfloat16`` computes in bfloat16 with float32 weights (faster where the CPU has
AVX512-BF16 or AMX: ``benchmarks/cpu_precision.py``); ``--crop-scale`` sets the photo augmentation's
largest crop; ``--run-name`` names the recorded run (runs of the same name replace each other).

Issue 20: ``--backbone`` (``config.ARCHITECTURES``) with ``--weights imagenet|FILE|none`` sets every method's
network; ``--init-from MODEL.keras`` starts its backbone from a model of this project (``nets/transfer.py``: the
head alone ``--head-epochs``, then the backbone at ``--backbone-lr-fraction``, BatchNorm frozen unless
``--train-batchnorm``). ``--mixup``, ``--cutmix`` (the modern classifier only), ``--ema``, ``--randaugment``,
``--stochastic-depth`` change the modern recipe and retrieval, never the study's method. ``--qe-k``, ``--dba-k`` and
``--retrieval-variants`` post-process retrieval (``--retrieval-variants``: also score retrieval+dba, +qe, +dba+qe
from the same model, paired with plain retrieval). ``--paired-with RUN`` compares each method with the same method
of a recorded run on the same split (paired intervals, in the run's details). ``benchmarks/transfer.py`` runs the
leave-one-set-out transfer comparison with these.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from landmarklib import config, evaluate  # neither imports Keras

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "landmarks-recognition"
TARGETS = "modern closed top-1 >= 75% (real-landmarks); retrieval open GAP >= best classifier's + 0.05, paired interval above 0"


def folder_view(data_dir: Path, work: Path) -> tuple[Path, Path, int]:
    """Symbolic-link folders of a shared-layout data set: ``train/<landmark_id>/<id>.jpg`` and ``test/<id>.jpg``.

    Returns:
        ``(train folder, test folder, exact duplicate train rows left out)``.
    """
    import pandas as pd

    base = work / data_dir.name
    made = {}
    duplicates = 0
    for split in ("train", "test"):
        frame = pd.read_csv(data_dir / f"{split}.csv", dtype=str, keep_default_na=False)
        if split == "train":
            duplicates = int(frame.duplicated("id").sum())
            frame = frame.drop_duplicates("id")
        out = base / split
        for row in frame.itertuples(index=False):
            folder = out / row.landmark_id if split == "train" else out
            link = folder / f"{row.id}.jpg"
            if not link.is_symlink():
                folder.mkdir(parents=True, exist_ok=True)
                link.symlink_to((data_dir / row.url).resolve())
        made[split] = out
    return made["train"], made["test"], duplicates


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real-landmarks")
    p.add_argument("--holdout-landmarks", type=int, default=5, help="landmarks held out of training (open set)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true", help="64 px, 10 epochs per method")
    p.add_argument("--epochs", type=int, default=None, help="epochs per method (default 60; --quick 10)")
    p.add_argument("--input-size", type=int, default=None, help="default 80; --quick 64")
    p.add_argument("--filters", default="40,60,75,80", help="Res-Incep stage widths (the study's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--study-learning-rate", type=float, default=0.002, help="SGD (the study's recipe)")
    modern = config.MODERN_RECIPE
    p.add_argument("--modern-learning-rate", type=float, default=modern["learning_rate"], help="AdamW peak")
    p.add_argument("--weight-decay", type=float, default=modern["weight_decay"])
    p.add_argument("--warmup-epochs", type=float, default=modern["warmup_epochs"])
    p.add_argument("--label-smoothing", type=float, default=modern["label_smoothing"])
    beyond = config.BeyondConfig
    p.add_argument("--loss", choices=config.MARGIN_LOSSES, default=beyond.retrieval_loss)
    p.add_argument("--margin", type=float, default=beyond.retrieval_margin)
    p.add_argument("--scale", type=float, default=beyond.retrieval_scale)
    p.add_argument("--embedding-dim", type=int, default=beyond.embedding_dim)
    p.add_argument("--k", type=int, default=beyond.retrieval_k, help="neighbours of the retrieval vote")
    p.add_argument("--qe-k", type=int, default=beyond.retrieval_qe_k, help="retrieval's alpha-QE rows (0: none)")
    p.add_argument("--qe-alpha", type=float, default=beyond.retrieval_qe_alpha, help="alpha of QE's and DBA's weights")
    p.add_argument("--dba-k", type=int, default=beyond.retrieval_dba_k, help="retrieval's DBA neighbours (0: none)")
    p.add_argument(
        "--retrieval-variants",
        action="store_true",
        help="also score retrieval+dba, +qe, +dba+qe (of --dba-k, --qe-k) from the retrieval model; retrieval: plain",
    )
    p.add_argument(
        "--tta",
        choices=evaluate.TTA_MODES,
        default=beyond.modern_tta,
        help="test-time augmentation of the modern recipe and retrieval (the study's method: none)",
    )
    p.add_argument("--methods", default="study,modern,retrieval")
    p.add_argument(
        "--crop-scale", type=float, default=config.ModelConfig.crop_scale, help="photo augmentation's largest cut"
    )
    p.add_argument(
        "--backbone", choices=config.ARCHITECTURES, default="res_incep", help="every method's network (nets/)"
    )
    p.add_argument(
        "--weights",
        default="imagenet",
        help="a keras.applications backbone's start: imagenet (Keras' cache or a download; refused offline), a "
        "weights file, or none (Res-Incep always starts random)",
    )
    p.add_argument(
        "--init-from", default=None, help="MODEL.keras of this project: its backbone starts every method (transfer)"
    )
    train_defaults = config.TrainConfig
    p.add_argument("--head-epochs", type=float, default=train_defaults.head_epochs, help="pretrained: head alone")
    p.add_argument(
        "--backbone-lr-fraction",
        type=float,
        default=train_defaults.backbone_lr_fraction,
        help="pretrained: the backbone's share of the learning rate after the head epochs",
    )
    p.add_argument(
        "--train-batchnorm", action="store_true", help="pretrained: re-estimate BatchNorm (default: kept frozen)"
    )
    p.add_argument("--mixup", type=float, default=0.0, help="modern and retrieval: mixup's Beta alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="modern and retrieval: CutMix's Beta alpha (0: off)")
    p.add_argument("--ema", type=float, default=None, help="modern and retrieval: EMA momentum of the weights")
    p.add_argument("--randaugment", type=int, default=0, help="modern and retrieval: RandAugment operations per image")
    p.add_argument("--randaugment-magnitude", type=float, default=config.ModelConfig.randaugment_magnitude)
    p.add_argument("--stochastic-depth", type=float, default=0.0, help="modern and retrieval: deepest block's drop")
    p.add_argument("--run-name", default=None, help="name of the recorded run (default: from the data and sizes)")
    p.add_argument(
        "--paired-with",
        default=None,
        help="a recorded run's name (same data, split and seed): each method minus that run's same method, paired",
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "mixed_bfloat16"),
        help="Keras policy (devices.set_precision); mixed_bfloat16 pays on CPUs with AVX512-BF16 or AMX",
    )
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="symlink folders, models and recorded runs")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "recognition.md")
    p.add_argument("--note", default="", help="why this configuration (goes into the report)")
    p.add_argument("--report-only", action="store_true", help="rewrite --out from the recorded runs")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (10 if args.quick else 60)
    args.input_size = args.input_size or (64 if args.quick else 80)
    args.filters = [int(v) for v in args.filters.split(",")]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return args


def _pct(v) -> str:
    return "-" if v is None or v != v else f"{100 * v:.1f}%"


def _ci(m: dict, key: str, pct: bool = False) -> str:
    f = _pct if pct else (lambda v: "-" if v is None or v != v else f"{v:.3f}")
    return f"{f(m[key])} [{f(m[key + '_low'])}, {f(m[key + '_high'])}]"


def predictions_of(run: dict, method: str):
    """A recorded run's answers of ``method`` as ``openset.Predictions``."""
    import numpy as np

    from landmarklib import openset

    p = run["predictions"][method]
    return openset.Predictions(
        landmark=np.asarray(p["landmark"], np.int64),
        confidence=np.asarray(p["confidence"], np.float64),
        top5=np.asarray(p["top5"], np.int64),
        threshold=float(p["threshold"]),
    )


def paired_runs(base: dict, other: dict, method: str, n_boot: int, other_method: str | None = None) -> dict:
    """``other``'s ``other_method`` (default ``method``) minus ``base``'s ``method``: closed top-1 and open GAP
    with 95% intervals paired over the same bootstrap resamples of the test images (``openset.bootstrap``).

    Returns:
        metric -> ``base``, ``other``, ``diff``, ``diff_low``, ``diff_high``.
    """
    from landmarklib import openset

    if base["query_ids"] != other["query_ids"] or base["actual"] != other["actual"] or base["known"] != other["known"]:
        raise SystemExit(f"{base['run_name']} and {other['run_name']} did not answer the same queries on one split")
    methods = {"base": predictions_of(base, method), "other": predictions_of(other, other_method or method)}
    boot = openset.bootstrap(methods, base["actual"], base["known"], n_boot=n_boot, reference="base")
    rows = {m: boot[boot["method"] == m].set_index("metric") for m in methods}
    return {
        metric: {
            "base": float(rows["base"].loc[metric, "value"]),
            "other": float(rows["other"].loc[metric, "value"]),
            **{k: float(rows["other"].loc[metric, k]) for k in ("diff", "diff_low", "diff_high")},
        }
        for metric in ("closed_top1", "open_gap")
    }


def write_report(runs: list[dict], out: Path) -> str:
    """The markdown report of every recorded run; returns the summary table."""
    head = [
        "| run | data | method | recipe | closed top-1 | closed top-5 | closed GAP | open GAP | open GAP - reference "
        "| answered | precision | threshold | train min |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for run in runs:
        for m in run["methods"]:
            missing = m.get("open_gap_diff") is None or m["open_gap_diff"] != m["open_gap_diff"]  # NaN: the reference
            diff = (
                "-"
                if missing
                else f"{m['open_gap_diff']:+.3f} [{m['open_gap_diff_low']:+.3f}, {m['open_gap_diff_high']:+.3f}]"
            )
            rows.append(
                f"| {run['run_name']} | {run['data_name']} | {m['method']} | {m['recipe']} | "
                f"{_ci(m, 'closed_top1', True)} | {_pct(m['closed_top5'])} | {m['closed_gap']:.3f} | "
                f"{_ci(m, 'open_gap')} | {diff} | {_pct(m['answered_share'])} | "
                f"{_pct(m['answered_precision'])} | {m['threshold']:.3f} | {m['train_minutes']:.1f} |"
            )
    table = "\n".join(head + rows)
    lines = [
        "# Benchmark: the study's classifier, the modern recipe and retrieval, closed- and open-set",
        "",
        "`benchmarks/recognition.py` trains every method of `landmarklib.recognition` on one open split of a data "
        "set in the shared layout (some landmarks held out of training entirely; their test images are queries with "
        "no right answer) and scores each once on the holdout `test_solution.csv`. Closed scores use the test images "
        "of the known landmarks; open GAP ranks every test image's answer by its confidence (a confident answer to a "
        "held-out landmark pushes every answer below it down). Thresholds are chosen per method on validation queries "
        "(right minus wrong answers), not on the test set. Intervals: 95% bootstrap over the test images, paired "
        'between methods (same resamples); "open GAP - reference" is each method minus the run\'s first method '
        "(paired).",
        "",
        f"Targets (issue 11): {TARGETS}.",
        "",
        "## All runs",
        "",
        table,
        "",
        "## Runs in detail",
        "",
    ]
    for run in runs:
        lines += [
            f"### Run `{run['run_name']}` (finished {run['date']})",
            "",
            f"- Command: `{run['command']}`",
            *([f"- Note: {run['note'].strip()}"] if run.get("note", "").strip() else []),
            f"- Data: {run['data']} ({run['n_landmarks']} landmarks); held out of training: "
            f"{run['held_out']} ({run['n_held_out_train']} training-folder images, used only to choose thresholds).",
            f"- Split of train.csv: {run['n_train']} train / {run['n_val']} validation images of {run['n_known']} known "
            f"landmarks (val_fraction {run['val_fraction']}, seed {run['seed']}); test: {run['n_queries']} images, "
            f"{run['n_closed']} of known landmarks, {run['n_open']} with no right answer.",
            f"- Configuration: {run['config']}.",
            f"- Machine: {run['machine']}; load average at start {run['load_at_start']}. Total wall time "
            f"{run['total_seconds'] / 60:.1f} min.",
            "",
        ]
        for m in run["methods"]:
            lines.append(
                f"- **{m['method']}** ({m['recipe']}): validation top-1 {_pct(m['val_top1'])} (best epoch "
                f"{m['best_epoch']} of {m['epochs']}); closed top-1 {_ci(m, 'closed_top1', True)}, top-5 "
                f"{_ci(m, 'closed_top5', True)}, GAP {_ci(m, 'closed_gap')}; open GAP {_ci(m, 'open_gap')}; "
                f"at threshold {m['threshold']:.3f}: answered {_ci(m, 'answered_share', True)}, precision "
                f"{_ci(m, 'answered_precision', True)}; {m['train_minutes']:.1f} min."
                + (
                    f" Validation top-1 by epoch: {', '.join(str(round(100 * v)) for v in m['val_by_epoch'])} (%)."
                    if m.get("val_by_epoch")
                    else ""
                )
            )
        for name, d in (run.get("variants_vs_retrieval") or {}).items():
            lines.append(
                f"- {name} - retrieval (paired, retrieval's model, not trained again): closed top-1 "
                f"{100 * d['closed_top1_diff']:+.1f} points [{100 * d['closed_top1_diff_low']:+.1f}, "
                f"{100 * d['closed_top1_diff_high']:+.1f}], open GAP {d['open_gap_diff']:+.3f} "
                f"[{d['open_gap_diff_low']:+.3f}, {d['open_gap_diff_high']:+.3f}]."
            )
        for name, d in (run.get("paired_with") or {}).get("methods", {}).items():
            t, g = d["closed_top1"], d["open_gap"]
            lines.append(
                f"- {name} - {name} of `{run['paired_with']['run']}` (paired): closed top-1 "
                f"{100 * t['diff']:+.1f} points [{100 * t['diff_low']:+.1f}, {100 * t['diff_high']:+.1f}], open GAP "
                f"{g['diff']:+.3f} [{g['diff_low']:+.3f}, {g['diff_high']:+.3f}]."
            )
        lines += ["", *targets(run), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return table


def targets(run: dict) -> list[str]:
    """The issue's two targets, checked on a run's numbers (as markdown lines)."""
    by = {m["method"]: m for m in run["methods"]}
    lines = []
    if "modern" in by:
        top1 = by["modern"]["closed_top1"]
        lines.append(
            f"- Target 1 (modern recipe, closed top-1 >= 75%): {_pct(top1)} - "
            + ("met." if top1 >= 0.75 else "**not met** in this run.")
        )
    versus = run.get("retrieval_vs_best_classifier")
    if versus and "retrieval" in by:
        best = by[versus["best_classifier"]]
        d, lo, hi = versus["open_gap_diff"], versus["open_gap_diff_low"], versus["open_gap_diff_high"]
        d1 = versus["closed_top1_diff"]
        met = d >= 0.05 and lo > 0 and d1 >= -0.01
        lines.append(
            f"- Target 2 (retrieval open GAP >= best classifier's + 0.05, paired interval above 0, closed "
            f"top-1 no worse than 1 point below): best classifier by open GAP is {versus['best_classifier']} "
            f"({best['open_gap']:.3f}); retrieval - it = {d:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired), closed "
            f"top-1 {100 * d1:+.1f} points - " + ("met." if met else "**not met** in this run.")
        )
    elif "retrieval" in by:
        lines.append(
            "- Target 2: this run recorded the paired differences against the study's method only (see the "
            "table); the paired comparison with the best classifier was added to the benchmark after it."
        )
    return lines


def last_line(run: dict) -> str:
    parts = [f"{m['method']} {100 * m['closed_top1']:.1f}% / {m['open_gap']:.3f}" for m in run["methods"]]
    return f"{run['data_name']} closed top-1 / open GAP: " + "; ".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work.resolve()
    results = args.out.parent / "recognition-runs"
    if args.report_only:
        runs = sorted((json.loads(p.read_text()) for p in results.glob("*.json")), key=lambda r: r["date"])
        if not runs:
            raise SystemExit(f"{results}: no recorded run")
        print(write_report(runs, args.out))
        print(last_line(runs[-1]))
        return 0
    data_dir = args.data.resolve()
    for name in ("train.csv", "test.csv", "test_solution.csv"):
        if not (data_dir / name).is_file():
            raise SystemExit(f"{data_dir / name}: not found (pass --data DIR in the shared layout)")
    from landmarklib import data, devices, recognition

    devices.set_precision(args.precision)
    started = time.perf_counter()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    train_dir, test_dir, duplicates = folder_view(data_dir, work)
    open_split = data.load_open_split(
        train_dir, args.holdout_landmarks, min_images=2, val_fraction=args.val_fraction, seed=args.seed
    )
    split = open_split.closed
    print(
        f"{data_dir.name}: {len(split.train)} train, {len(split.val)} validation images of "
        f"{len(split.landmark_ids)} known landmarks; held out {open_split.held_out}"
    )
    # the network, batch and seed of every method (blocks 3/3/2/2, dense 128, dropout 0.5, SGD momentum 0.9:
    # config's defaults), and the methods' settings (recognition.method_runs)
    run = config.RunConfig.from_params(
        {
            "input_size": args.input_size,
            "filters": args.filters,
            "crop_scale": args.crop_scale,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "deterministic": True,
            "model": args.backbone,
            "weights": None if args.weights.lower() == "none" else args.weights,
            "init_from": args.init_from,
            "freeze_batchnorm": not args.train_batchnorm,
            "head_epochs": args.head_epochs,
            "backbone_lr_fraction": args.backbone_lr_fraction,
            # the modern recipe's and retrieval's only (recognition.method_runs: the study's method trains as it did)
            "mixup_alpha": args.mixup,
            "cutmix_alpha": args.cutmix,
            "ema_momentum": args.ema,
            "randaugment_ops": args.randaugment,
            "randaugment_magnitude": args.randaugment_magnitude,
            "stochastic_depth": args.stochastic_depth,
        }
    )
    beyond = config.BeyondConfig(
        holdout_landmarks=args.holdout_landmarks,
        beyond_epochs=args.epochs,
        study_learning_rate=args.study_learning_rate,
        study_augment=True,
        modern_learning_rate=args.modern_learning_rate,
        modern_weight_decay=args.weight_decay,
        modern_warmup_epochs=args.warmup_epochs,
        modern_label_smoothing=args.label_smoothing,
        retrieval_loss=args.loss,
        retrieval_margin=args.margin,
        retrieval_scale=args.scale,
        embedding_dim=args.embedding_dim,
        retrieval_k=args.k,
        retrieval_qe_k=args.qe_k,
        retrieval_qe_alpha=args.qe_alpha,
        retrieval_dba_k=args.dba_k,
        retrieval_variants=args.retrieval_variants,
        modern_tta=args.tta,
        n_bootstrap=args.n_boot,
    )
    queries = recognition.test_queries(test_dir, data_dir / "test_solution.csv", args.input_size)
    mode = "quick" if args.quick else "full" if (args.epochs, args.input_size) == (60, 80) else "custom"
    network = "" if args.backbone == "res_incep" else f"-{args.backbone}"
    start = f"-init-{Path(args.init_from).stem}" if args.init_from else ""
    run_name = args.run_name or (
        f"{data_dir.name}{network}{start}-{mode}-{args.input_size}px-{args.epochs}ep-holdout{args.holdout_landmarks}"
        f"-seed{args.seed}"
    )
    outcome = recognition.run_methods(open_split, run, beyond, queries, work / "models" / run_name, args.methods)
    methods = []
    for row in recognition.method_rows(outcome):
        history = outcome.runs[row["method"]].result.history
        methods.append({**row, "val_by_epoch": [float(v) for v in history["val_accuracy"]]})
    s = outcome.scores[args.methods[0]]
    run = {
        "run_name": run_name,
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "command": shlex.join([".venv/bin/python", "benchmarks/recognition.py", *(argv or sys.argv[1:])]),
        "note": " ".join(
            filter(
                None,
                [
                    args.note,
                    "QUICK RUN (--quick): shorter and smaller than the issue's full runs." if args.quick else "",
                ],
            )
        ),
        "data": str(data_dir.relative_to(ROOT.parent)) if data_dir.is_relative_to(ROOT.parent) else str(data_dir),
        "data_name": data_dir.name,
        "n_landmarks": len(split.landmark_ids) + len(open_split.held_out),
        "held_out": open_split.held_out,
        "n_held_out_train": len(open_split.held_out_rows),
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_known": len(split.landmark_ids),
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "duplicate_rows": duplicates,
        "n_queries": s["n_queries"],
        "n_closed": s["n_closed"],
        "n_open": s["n_open"],
        "config": (
            (
                f"Res-Incep filters {args.filters}, blocks [3, 3, 2, 2]"
                if args.backbone == "res_incep"
                else f"{args.backbone} (weights {args.weights})"
            )
            + (
                f", backbone from {args.init_from} (head alone {args.head_epochs:g} ep, then the backbone at "
                f"{args.backbone_lr_fraction:g}x, BatchNorm {'trained' if args.train_batchnorm else 'frozen'})"
                if args.init_from
                else ""
            )
            + f", {args.input_size} px, {args.epochs} epochs "
            f"per method, batch {args.batch_size}; embedding {args.embedding_dim}, {args.loss} margin "
            f"{args.margin} scale {args.scale}, k {args.k}; photo crops cut at most {args.crop_scale:g} of a side; "
            f"test-time augmentation of modern and retrieval: {args.tta}; "
            f"{args.n_boot} bootstrap resamples; precision {args.precision}; "
            f"{recognition.environment_line()}"
        ),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, {platform.system()}",
        "load_at_start": load,
        "total_seconds": time.perf_counter() - started,
        "methods": methods,
        "retrieval_vs_best_classifier": outcome.retrieval_vs_best_classifier,
        "variants_vs_retrieval": outcome.variants_vs_retrieval,
        "predictions": {
            name: {
                "landmark": p.landmark.tolist(),
                "confidence": p.confidence.tolist(),
                "threshold": p.threshold,
                "top5": p.top5.tolist(),
            }
            for name, p in outcome.predictions.items()
        },
        "known": [int(v) for v in outcome.known],
        "query_ids": queries["id"].astype(str).tolist(),
        "actual": outcome.actual.tolist(),
    }
    if args.paired_with:
        base = json.loads((results / f"{args.paired_with}.json").read_text())
        shared = [m for m in run["predictions"] if m in base["predictions"]]
        run["paired_with"] = {
            "run": args.paired_with,
            "methods": {m: paired_runs(base, run, m, args.n_boot) for m in shared},
        }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{run_name}.json").write_text(json.dumps(run, indent=2, default=float) + "\n")
    runs = sorted((json.loads(p.read_text()) for p in results.glob("*.json")), key=lambda r: r["date"])
    print(write_report(runs, args.out))
    print(f"wrote {args.out}")
    print(last_line(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
