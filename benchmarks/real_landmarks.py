"""Benchmark on real photos: Res-Incep (from scratch) vs ResNet-50 on 28 real landmarks.

The real-landmarks set (``../shared/data/real-landmarks``: 1,312 train and 334 test
photos of 28 landmarks, chance 1/28 = 3.6%) is served over HTTP on 127.0.0.1
(``http.server``, HTTP/1.1 keep-alive); its ``train.csv`` and ``test.csv`` are rewritten with
``http://127.0.0.1:PORT/...`` URLs (under ``--work``) and fetched with
``landmarklib.fetch.fetch_catalog``, so the real HTTP path is exercised. Fetched
images are cached under ``--work``: a rerun fetches nothing.

Then, in one run:

(a) Res-Incep from scratch (``landmarklib.nets.res_incep``, the study's augmentation)
    trained with ``landmarklib.nets.train.train`` on ``train.csv`` split into train and
    validation (the best validation epoch is kept);
(b) ResNet-50 (``landmarklib.resnet50.resnet50_benchmark``), a short run: ImageNet
    weights cannot be downloaded offline, so its backbone is randomly initialized
    unless ``--resnet-weights`` names a weights file;

and each model is scored once on the holdout ``test_solution.csv``: top-1, top-5,
GAP with the study's threshold 0.045 and GAP of every prediction.

Each run's numbers go to ``<work>/results/<run name>.json``; the markdown report
(``--out``) lists every recorded run side by side, then the details of each. The
HTTP server listens on a fixed port (``--port``) so that the URLs, and with them
``fetch_catalog``'s resume, stay the same from run to run.

    .venv/bin/python benchmarks/real_landmarks.py     # 80 px, 30 epochs, SGD 0.002; ResNet-50 48 px, 4 epochs
    .venv/bin/python benchmarks/real_landmarks.py --learning-rate 0.004 --skip-resnet
    .venv/bin/python benchmarks/real_landmarks.py --report-only   # rewrite the report from recorded runs

On 2 busy CPU cores the default run takes about 30 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import math
import os
import platform
import shlex
import sys
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

from common import cpu_model, git_commit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-landmarks"
TARGET_TOP1 = 0.40


# --------------------------------------------------------------------------- data over HTTP


def http_catalog(csv_path: Path, url_of, out_csv: Path) -> int:
    """Copy a catalog CSV with its relative ``url`` paths turned into HTTP URLs.

    Rows that repeat an earlier row exactly are left out (``read_catalog`` refuses
    duplicate ids, and the real-landmarks ``train.csv`` lists one image twice).

    Args:
        csv_path: Kaggle-layout CSV whose ``url`` column holds paths relative to its folder.
        url_of: maps a server path (``/images/x.jpg``) to its absolute URL.
        out_csv: where the rewritten CSV goes.

    Returns:
        The number of exact duplicate rows left out.
    """
    import pandas as pd

    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "url" not in frame.columns:
        raise ValueError(f"{csv_path}: no 'url' column (columns: {', '.join(frame.columns)})")
    duplicates = frame.duplicated()
    if duplicates.any():
        print(
            f"{csv_path}: leaving out {int(duplicates.sum())} exact duplicate row(s): "
            f"{', '.join(frame.loc[duplicates, 'id'])}"
        )
    frame = frame[~duplicates].copy()
    frame["url"] = [u if "://" in u else url_of("/" + urllib.parse.quote(u.lstrip("/"))) for u in frame["url"]]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_csv, index=False)
    return int(duplicates.sum())


class QuietFileHandler(SimpleHTTPRequestHandler):
    """Serves files over HTTP/1.1 (keep-alive), counting requests, without a log line per request."""

    protocol_version = "HTTP/1.1"
    requests: itertools.count  # set per server by ``serve``

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        next(self.requests)
        super().do_GET()

    def log_message(self, format: str, *args) -> None:
        pass


def serve(data_dir: Path, port: int) -> ThreadingHTTPServer:
    """Serve ``data_dir`` on ``127.0.0.1:port`` (any free port when it is taken) in a background thread.

    The same port on every run keeps the rewritten URLs, so ``fetch_catalog`` resumes
    from the images fetched before instead of fetching them again.
    """
    counter = itertools.count(1)
    handler = functools.partial(type("Handler", (QuietFileHandler,), {"requests": counter}), directory=str(data_dir))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as err:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        print(
            f"port {port} unavailable ({err.strerror}); serving on {server.server_address[1]}: "
            "the URLs change, so cached images are fetched again"
        )
    server.requests = counter
    threading.Thread(target=server.serve_forever, args=(0.05,), name="real-landmarks-http", daemon=True).start()
    return server


def fetch_over_http(data_dir: Path, work: Path, size: int, resize: str, port: int) -> dict:
    """Serve ``data_dir`` on 127.0.0.1 and fetch its train and test catalogs into ``work``.

    Returns:
        ``{"train": (folder, summary dict), "test": (folder, summary dict)}``.
    """
    from landmarklib import fetch

    server = serve(data_dir, port)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    fetched = {}
    try:
        for split in ("train", "test"):
            csv_path = work / f"{split}.http.csv"
            duplicates = http_catalog(data_dir / f"{split}.csv", lambda path: base + path, csv_path)
            out_dir = work / f"{split}_{size}px_{resize}"
            summary = fetch.fetch_catalog(csv_path, out_dir, n_images=None, image_size=size, resize=resize)
            print(summary.report())
            fetched[split] = (out_dir, {**summary.to_dict(), "duplicate_rows": duplicates})
    finally:
        server.shutdown()
        server.server_close()
    print(f"HTTP server {base} answered {next(server.requests) - 1} requests")
    return fetched


# --------------------------------------------------------------------------- models


def parse_filters(text: str) -> tuple[int, ...]:
    """``"40,60,75,80"`` -> ``(40, 60, 75, 80)``."""
    try:
        filters = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"filters must be comma-separated integers, not {text!r}") from err
    if len(filters) != 4 or min(filters) < 1:
        raise argparse.ArgumentTypeError(f"need four positive widths (one per stage), not {text!r}")
    return filters


def score_on_test(model_path: Path, test_dir: Path, solution_csv: Path, threshold: float) -> dict:
    """Predict the holdout once with a saved model and score it (``landmarklib.evaluate.score``)."""
    from landmarklib import evaluate, predict

    start = time.perf_counter()
    pred = predict.predict(model_path, test_dir, threshold=threshold, top_k=5)
    seconds = time.perf_counter() - start
    scores = evaluate.score(pred, solution_csv, threshold=threshold)
    scores["predict_seconds"] = seconds
    scores["predict_images_per_second"] = len(pred) / seconds
    scores["prediction_errors"] = int((pred["error"].astype(str) != "").sum())
    return scores


def run_model(kind: str, split, args: argparse.Namespace, models_dir: Path, test_dir: Path) -> dict:
    """Build, train and score one model; returns its configuration and measured numbers.

    Args:
        kind: ``"res_incep"`` or ``"resnet50"``.
        split: ``landmarklib.data.Split`` of the fetched training images.
        args: the command-line options.
        models_dir: where ``train`` writes the model, label map and history.
        test_dir: the fetched holdout images.
    """
    from landmarklib import config
    from landmarklib.nets import res_incep, resnet50, train

    n_classes = len(split.landmark_ids)
    train.set_seed(args.seed)
    if kind == "res_incep":
        size, epochs, optimizer, lr = args.input_size, args.epochs, args.optimizer, args.learning_rate
        model = res_incep.res_incep(
            (size, size, 3),
            n_classes,
            filters=args.filters,
            dense_units=args.dense_units,
            dropout=args.dropout,
            augment=not args.no_augment,
        )
        config = {
            "filters": list(args.filters),
            "blocks": [3, 3, 2, 2],
            "dense_units": args.dense_units,
            "dropout": args.dropout,
            "augmentation": "none"
            if args.no_augment
            else "study's: random flips (horizontal and vertical), rotation 0.1, zoom 0.2",
            "weights": "random (from scratch)",
        }
    else:
        size, epochs, optimizer, lr = args.resnet_input_size, args.resnet_epochs, "rmsprop", args.resnet_learning_rate
        weights = None if args.resnet_weights == "random" else args.resnet_weights
        model = resnet50.resnet50_benchmark((size, size, 3), n_classes, weights=weights)
        note = model.weights_note
        if model.weights_source == "random":
            note = (
                "ImageNet weights are not available offline (no download at run time), so the "
                "ResNet-50 backbone is RANDOMLY INITIALIZED: this is not the study's pretrained benchmark."
            )
        config = {
            "weights": model.weights_source,
            "weights_note": note,
            "augmentation": "none",
            "backbone_params": model.backbone_params,
        }
    print(
        f"\n== {kind}: {model.count_params():,} parameters, {size} px, {epochs} epochs, "
        f"batch {args.batch_size}, {optimizer} lr {lr}"
    )
    start = time.perf_counter()
    settings = config.TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        optimizer=optimizer,
        learning_rate=lr,
        models_dir=str(models_dir),
        seed=args.seed,
    )
    result = train.train(model, split, settings, name=kind)
    train_seconds = time.perf_counter() - start
    test = score_on_test(result.model_path, test_dir, args.data / "test_solution.csv", args.threshold)
    history = result.history
    return {
        **config,
        **result.metrics(),
        "model": kind,
        "train_wall_seconds": train_seconds,
        "val_top1_by_epoch": [round(float(v), 4) for v in history["val_accuracy"]],
        "test": test,
    }


# --------------------------------------------------------------------------- report


def versions() -> str:
    """Python and the libraries the numbers depend on, with the Keras backend."""
    import keras

    found = [f"Python {platform.python_version()}"]
    for dist in ("landmarklib", "keras", "tensorflow-cpu", "tensorflow", "jax", "numpy", "pillow", "pandas"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found) + f"; Keras backend {keras.backend.backend()}"


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def model_rows(run: dict) -> list[str]:
    """Markdown table rows, one per model of a run."""
    rows = []
    for m in run["models"]:
        t = m["test"]
        rows.append(
            f"| {run['run_name']} | {m['model']} | {m['weights'].split(' ')[0]} | {m['input_size']} | "
            f"{m['epochs_run']} (best {m['best_epoch']}) | {_pct(m['val_top1'])} | {_pct(t['top1'])} | "
            f"{_pct(t['top5'])} | {t['gap']:.3f} | {t['gap_all']:.3f} | "
            f"{_num(m['train_wall_seconds'] / 60)} | {_num(m['images_per_second'])} |"
        )
    return rows


TABLE_HEAD = [
    "| run | model | weights | input px | epochs | val top-1 | test top-1 | test top-5 | "
    "GAP@0.045 | GAP (all) | train min | train img/s |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def run_details(run: dict) -> list[str]:
    """The configuration and the measured numbers of one run, as markdown lines."""
    lines = [
        f"### Run `{run['run_name']}` (finished {run['date']})",
        "",
        f"- Command: `{run['command']}`",
        *([f"- Why this configuration: {run['note']}"] if run.get("note") else []),
        f"- Data: {run['data']} served on 127.0.0.1 and fetched with `fetch_catalog` "
        f"(size {run['fetch_size']} px, resize {run['resize']}); train fetch: {run['fetch']['train']}; "
        f"test fetch: {run['fetch']['test']}.",
        f"- Split of train.csv: {run['n_train']} train / {run['n_val']} validation images "
        f"(val_fraction {run['val_fraction']}, seed {run['seed']}), {run['n_classes']} landmarks "
        f"(chance {_pct(1 / run['n_classes'])}); holdout: {run['n_test']} test images, scored once per model.",
        f"- Machine: {run['machine']}; load average at start {run['load_at_start']}.",
        f"- Versions: {run['versions']}; commit {run['commit']}.",
        f"- Total wall time: {_num(run['total_seconds'] / 60)} min.",
        "",
    ]
    for m in run["models"]:
        t = m["test"]
        lines += [
            f"**{m['model']}** - {m['params']:,} parameters; input {m['input_size']} px; batch {m['batch_size']}; "
            f"optimizer {m['optimizer']} (learning rate {m['learning_rate']}"
            + (f", momentum {m['momentum']}" if m.get("momentum") else "")
            + ", constant); "
            f"{m['epochs_run']} epochs, best validation epoch {m['best_epoch']}; weights: {m['weights']}"
            + (
                f"; filters {m['filters']}, blocks {m['blocks']}, dense {m['dense_units']}, dropout {m['dropout']}"
                if m["model"] == "res_incep"
                else ""
            )
            + f"; augmentation: {m['augmentation']}.",
            "",
        ]
        if m.get("weights_note"):
            lines += [f"> {m['weights_note']}", ""]
        lines += [
            f"- Validation (best epoch): top-1 {_pct(m['val_top1'])}, top-5 {_pct(m['val_top5'])}, "
            f"loss {m['val_loss']:.3f}; training top-1 at that epoch (measured while training) {_pct(m['train_top1'])}.",
            f"- Test (holdout, {t['n_test']} images): top-1 {_pct(t['top1'])}, top-5 {_pct(t['top5'])}, "
            f"GAP {t['gap']:.4f} at threshold {t['threshold']} (answered {_pct(t['answered_share'])}, "
            f"precision of answers {_pct(t['answered_precision'])}), GAP of all predictions {t['gap_all']:.4f}.",
            f"- Time: training {_num(m['train_wall_seconds'] / 60)} min in all, {_num(m['seconds_per_epoch'])} s "
            f"per epoch after the first ({_num(m['first_epoch_seconds'])} s, with tracing), "
            f"{_num(m['images_per_second'])} training images/s; prediction {_num(t['predict_images_per_second'])} "
            f"images/s (decode + forward, batch 64).",
            f"- Validation top-1 by epoch: {', '.join(f'{100 * v:.0f}' for v in m['val_top1_by_epoch'])} (%).",
            "",
        ]
    return lines


def comparison(run: dict) -> list[str]:
    """Side-by-side ratios of the two models of one run (when both ran)."""
    by = {m["model"]: m for m in run["models"]}
    if len(by) < 2:
        return []
    r, n = by["res_incep"], by["resnet50"]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    return [
        f"Res-Incep / ResNet-50 in run `{run['run_name']}`: test top-1 {ratio(r['test']['top1'], n['test']['top1'])}x, "
        f"GAP@0.045 {ratio(r['test']['gap'], n['test']['gap'])}x, training images/s "
        f"{ratio(r['images_per_second'], n['images_per_second'])}x (at {r['input_size']} vs {n['input_size']} px), "
        f"parameters {ratio(r['params'], n['params'])}x.",
        "",
    ]


def write_report(runs: list[dict], out: Path) -> str:
    """Write the markdown report of every recorded run; return the table."""
    table = "\n".join(TABLE_HEAD + [row for run in runs for row in model_rows(run)])
    best, n_test = max(
        ((m["test"]["top1"], m["test"]["n_test"]) for run in runs for m in run["models"] if m["model"] == "res_incep"),
        default=(float("nan"), 1),
    )
    margin = 1.96 * math.sqrt(best * (1 - best) / n_test)
    if best - margin >= TARGET_TOP1:
        verdict = "target met"
    elif best >= TARGET_TOP1:
        verdict = "target met, but within sampling noise of it"
    else:
        verdict = "target NOT met"
    lines = [
        "# Benchmark: Res-Incep vs ResNet-50 on real landmark photos",
        "",
        "`benchmarks/real_landmarks.py` serves `../shared/data/real-landmarks` (real photos of 28 "
        "landmarks: 1,312 train, 334 test) over HTTP on 127.0.0.1, fetches `train.csv` and `test.csv` "
        "with `landmarklib.fetch.fetch_catalog`, trains both models on `train.csv` (split for "
        "validation; the best validation epoch is kept), and scores each once on the holdout "
        "`test_solution.csv`. Chance is 1/28 = 3.6%. All numbers below are measured on this "
        "2-core CPU machine, shared with other jobs (see the load average of each run).",
        "",
        f"Target: Res-Incep from scratch at least {TARGET_TOP1:.0%} test top-1. "
        f"Best measured: {_pct(best)} (95% interval +/- {100 * margin:.1f} points on {n_test} test images) - "
        f"{verdict}. Each run scores the holdout once with the epoch of best validation top-1; the "
        "validation split has only ~200 images, so validation and test top-1 can differ by several points. "
        "With a constant learning rate (`train()` has no schedule) accuracy also swings by several points "
        "from epoch to epoch (see each run's validation curve), so one run's test top-1 is a noisy estimate: "
        "compare runs by their validation and test numbers together.",
        "",
        "ResNet-50: ImageNet weights cannot be downloaded here (no network at run time), so its "
        "backbone is randomly initialized and trained for a few epochs only; it benchmarks the "
        "benchmark, not the study's pretrained network.",
        "",
        "## All runs",
        "",
        table,
        "",
        "GAP@0.045: Global Average Precision answering only predictions with confidence >= 0.045 "
        "(the study's threshold); GAP (all): every prediction answered. Every test image shows a "
        "landmark, so the threshold can only lower GAP here.",
        "",
    ]
    for run in runs:
        lines += comparison(run)
    lines += ["## Runs in detail", ""]
    for run in runs:
        lines += run_details(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return table


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real-landmarks folder")
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "data/interim/real-landmarks",
        help="rewritten CSVs, fetched images, models and per-run results",
    )
    p.add_argument("--out", type=Path, default=ROOT / "reports/benchmarks/real_landmarks.md")
    p.add_argument("--run-name", help="name of this run (default: from the Res-Incep settings)")
    p.add_argument("--note", default="", help="why this configuration, for the report")
    p.add_argument("--port", type=int, default=8731, help="port of the HTTP server on 127.0.0.1")
    p.add_argument("--fetch-size", type=int, default=128, help="side of the fetched JPEGs")
    p.add_argument("--resize", default="stretch", choices=("stretch", "crop", "pad"))
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.045, help="the study's answer threshold for GAP")
    g = p.add_argument_group("Res-Incep")
    g.add_argument("--input-size", type=int, default=80)
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--optimizer", default="sgd", choices=("sgd", "rmsprop"))
    g.add_argument(
        "--learning-rate",
        type=float,
        default=0.002,
        help="constant (train() has no schedule); 0.01 collapsed to chance on this set",
    )
    g.add_argument("--filters", type=parse_filters, default=(40, 60, 75, 80), help="widths of the four stages")
    g.add_argument("--dense-units", type=int, default=128)
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--no-augment", action="store_true", help="train without the study's augmentation")
    g = p.add_argument_group("ResNet-50")
    g.add_argument("--skip-resnet", action="store_true")
    g.add_argument("--resnet-input-size", type=int, default=48)
    g.add_argument("--resnet-epochs", type=int, default=4)
    g.add_argument("--resnet-learning-rate", type=float, default=0.001, help="RMSprop, as in the study")
    g.add_argument(
        "--resnet-weights", default="random", help="'random', 'imagenet' (Keras' cache or download) or a weights file"
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rewrite --out from the runs recorded under <work>/results",
    )
    args = p.parse_args(argv)
    if args.fetch_size < max(args.input_size, args.resnet_input_size):
        p.error("--fetch-size must be at least the models' input sizes")
    args.run_name = args.run_name or (
        f"resincep-{args.input_size}px-{args.epochs}ep-{args.optimizer}{args.learning_rate:g}"
        f"-f{'-'.join(map(str, args.filters))}" + ("-noaug" if args.no_augment else "")
    )
    return args


def report_recorded(results_dir: Path, out: Path) -> None:
    """Rewrite ``out`` from every run recorded in ``results_dir`` and print the table."""
    runs = sorted((json.loads(p.read_text()) for p in results_dir.glob("*.json")), key=lambda r: r["date"])
    if not runs:
        raise SystemExit(f"{results_dir}: no recorded run")
    table = write_report(runs, out)
    print("\n" + table + "\n")
    print(f"wrote {out} ({len(runs)} recorded run(s))")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_dir = args.work.resolve() / "results"
    if args.report_only:
        report_recorded(results_dir, args.out)
        return 0
    args.data = args.data.resolve()
    for name in ("train.csv", "test.csv", "test_solution.csv"):
        if not (args.data / name).is_file():
            raise SystemExit(f"{args.data / name}: not found (pass --data DIR, the real-landmarks folder)")
    from landmarklib import data

    started = time.perf_counter()
    load_at_start = " ".join(f"{v:.1f}" for v in os.getloadavg())
    work = args.work.resolve()
    fetched = fetch_over_http(args.data, work, args.fetch_size, args.resize, args.port)
    (train_dir, train_fetch), (test_dir, test_fetch) = fetched["train"], fetched["test"]
    split = data.load_split(train_dir, min_images=2, val_fraction=args.val_fraction, seed=args.seed)
    print(
        f"split: {len(split.train)} train, {len(split.val)} validation, {len(split.landmark_ids)} landmarks; "
        f"dropped {split.dropped}"
    )
    models_dir = work / "models" / args.run_name
    kinds = ["res_incep"] + ([] if args.skip_resnet else ["resnet50"])
    results = [run_model(kind, split, args, models_dir, test_dir) for kind in kinds]

    def fetch_line(summary: dict) -> str:
        return (
            f"{summary['images_ok']} of {summary['n_rows']} ok ({summary['ok']} fetched now, "
            f"{summary['skipped']} cached), {summary['failed']} failed, "
            f"{summary['duplicate_rows']} exact duplicate row(s) of the CSV left out"
        )

    run = {
        "run_name": args.run_name,
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "note": args.note,
        "command": shlex.join([".venv/bin/python", "benchmarks/real_landmarks.py", *(argv or sys.argv[1:])]),
        "data": str(args.data.relative_to(ROOT.parent)) if args.data.is_relative_to(ROOT.parent) else str(args.data),
        "fetch_size": args.fetch_size,
        "resize": args.resize,
        "fetch": {"train": fetch_line(train_fetch), "test": fetch_line(test_fetch)},
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_classes": len(split.landmark_ids),
        "n_test": results[0]["test"]["n_test"],
        "machine": f"{os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()}",
        "load_at_start": load_at_start,
        "versions": versions(),
        "commit": git_commit(),
        "total_seconds": time.perf_counter() - started,
        "models": results,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{args.run_name}.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    print(f"recorded {results_dir / (args.run_name + '.json')}")
    report_recorded(results_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
