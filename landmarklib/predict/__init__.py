"""Predict test images with a saved model: ``predict`` and ``landmarks predict``, one module per engine as in fetch:

    core.py         no Keras: the test images (a CSV is fetched first), the predictions table, the submission
    local.py        the local engine: this process loads the model and predicts in chunks of ``8 * batch_size``
    dask_engine.py  the Dask engine: partitions as tasks, each worker loading the model once (same numbers)

Importing this package imports no Keras (``landmarks predict --help`` stays light): an engine, and with
it Keras, is imported when it runs. ``--method retrieval`` is ``nets.retrieval.predict``'s kNN vote
(``--qe-k``, ``--dba-k``, ``--qe-alpha``: its query expansion and index augmentation, by default the index's own).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from .. import files, paths, scoring
from ..cluster import NotShared, SchedulerUnreachable
from ..evaluate import DEFAULT_THRESHOLD, DEFAULT_TTA, TTA_MODES, check_tta
from .core import load_test_images, prediction_frame, submission_path, write_submission

__all__ = [
    "ENGINES",
    "add_cli",
    "load_test_images",
    "predict",
    "prediction_frame",
    "submission_path",
    "write_submission",
]

ENGINES = ("local", "dask")


def predict(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    tta: str = DEFAULT_TTA,
    engine: str = "local",
    **dask_options,
) -> pd.DataFrame:
    """Predict the landmark of every test image with a saved model.

    Args:
        model_path: a ``.keras`` file with its ``.labels.json`` beside it.
        images: a fetched test folder, a folder of images, or a test CSV (see ``load_test_images``).
        threshold: a prediction is *answered* when its confidence is at or above it.
        batch_size: images per forward pass.
        top_k: how many landmark ids ``top_ids`` lists.
        fetch_dir: where a CSV's images are fetched (see ``load_test_images``).
        progress: show progress bars.
        tta: test-time augmentation (``evaluate.TTA_MODES``; ``"flip"``: the mean over each image and its mirror image).
        engine: ``local`` (``local.predict_local``) or ``dask`` (``dask_engine.predict_dask``).
        dask_options: with ``engine="dask"``: ``scheduler``, ``n_workers``, ``partition_images``.

    Returns:
        DataFrame(id, landmark_id (Int64), confidence, answered, top_ids, error) in
        test-id order; ``top_ids`` is the ``top_k`` most probable landmark ids,
        space-separated. An image that failed to fetch or decode keeps its row with
        no landmark_id, NaN confidence and the reason in ``error``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'local' or 'dask', not {engine!r}")
    check_tta(tta)  # a wrong mode fails before any work
    if engine == "dask":
        from .dask_engine import predict_dask  # Dask, and on its workers Keras: imported when this engine runs

        return predict_dask(model_path, images, threshold, batch_size, top_k, fetch_dir, progress, tta, **dask_options)
    if dask_options:
        raise TypeError(f"{', '.join(sorted(dask_options))}: options of engine='dask'")
    from .local import predict_local  # Keras: imported only when a model runs

    return predict_local(model_path, images, threshold, batch_size, top_k, fetch_dir, progress, tta)


def add_cli(subparsers) -> None:
    """Register ``landmarks predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict the landmark of test images with a saved model; write predictions and a Kaggle submission",
        description=(
            "Predict every test image with MODEL. Writes OUT (id,landmark_id,confidence,answered,top_ids,error) "
            "and OUT_STEM_submission.csv beside it (Kaggle format id,landmarks; empty below the threshold). "
            "A CSV given to --images is fetched first into OUT_STEM_images/ at the model's input size."
        ),
    )
    p.add_argument("--model", required=True, help="saved model (.keras) with its .labels.json beside it")
    p.add_argument(
        "--method",
        choices=("classifier", "retrieval"),
        default="classifier",
        help="classifier: the softmax's best landmark and probability; retrieval: a kNN vote over "
        "the model's embedding index (landmarklib.nets.retrieval; confidence = similarity score)",
    )
    p.add_argument(
        "--index", default=None, help="retrieval: the embedding index (default: MODEL_STEM.index.npz beside the model)"
    )
    p.add_argument("--k", type=int, default=5, help="retrieval: neighbours per query (default 5)")
    own = "default: the index's own, the settings its model's threshold was chosen with; else"
    p.add_argument(
        "--qe-k",
        type=int,
        default=None,
        help=f"retrieval: alpha query expansion, each query re-searched with its QE_K nearest index images ({own} 0)",
    )
    p.add_argument(
        "--dba-k",
        type=int,
        default=None,
        help=f"retrieval: database-side augmentation of the index with DBA_K neighbours per image ({own} 0)",
    )
    p.add_argument(
        "--qe-alpha",
        type=float,
        default=None,
        help=f"retrieval: the exponent of the similarity weights of --qe-k and --dba-k ({own} 3)",
    )
    p.add_argument("--images", required=True, help="fetched test folder, folder of images, or test CSV (id,url)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="answer only at or above this confidence (default: the model's own, chosen on validation "
        f"queries and kept beside it as <name>.threshold.json; without one, the study's {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument(
        "--tta",
        choices=TTA_MODES,
        default=None,
        help=f"test-time augmentation: none or flip (each image and its mirror image); default: the "
        f"retrieval index's own, else {DEFAULT_TTA}",
    )
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: this process (default); dask: partitions on a Dask cluster (see --scheduler)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --engine dask: a running scheduler (tcp://host:8786); default: a local cluster",
    )
    p.add_argument(
        "--dask-workers",
        type=int,
        default=None,
        metavar="N",
        help="with --engine dask and no --scheduler: worker processes (default: one per core)",
    )
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    out = paths.resolve(args.out)
    model_path = paths.resolve(args.model)
    if not model_path.is_file():
        print(f"error: model not found: {model_path}", file=sys.stderr)
        return 2
    method = getattr(args, "method", "classifier")
    if args.engine != "dask" and (args.scheduler or args.dask_workers):
        print("error: --scheduler and --dask-workers need --engine dask", file=sys.stderr)
        return 2
    if method == "retrieval" and args.engine == "dask":
        print("error: --method retrieval runs with --engine local only", file=sys.stderr)
        return 2
    postprocess = [getattr(args, k, None) for k in ("qe_k", "dba_k", "qe_alpha")]
    if method != "retrieval" and any(v is not None for v in postprocess):
        print("error: --qe-k, --dba-k and --qe-alpha need --method retrieval", file=sys.stderr)
        return 2
    if any(v is not None and v < 0 for v in postprocess):
        print("error: --qe-k, --dba-k and --qe-alpha must be 0 or more", file=sys.stderr)
        return 2
    try:
        with files.one_writer(out, f"landmarks predict --out {out.name}"):  # one run writes these outputs
            return _predict_and_write(args, out, model_path, method)
    except (SchedulerUnreachable, NotShared, files.FolderBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _predict_and_write(args: argparse.Namespace, out: Path, model_path: Path, method: str) -> int:
    """``landmarks predict`` once its arguments are checked and its output's writer lock is held."""
    try:
        threshold, source = scoring.model_threshold(model_path, args.threshold, DEFAULT_THRESHOLD)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"threshold:   {threshold:g} ({source})")
    fetch_dir = out.with_name(f"{out.stem}_images")
    if method == "retrieval":
        from ..nets import retrieval  # Keras: imported only when a model runs

        index = paths.resolve(args.index) if args.index else retrieval.index_path(model_path)
        if not index.is_file():
            print(f"error: embedding index not found: {index}", file=sys.stderr)
            return 2
        pred = retrieval.predict(
            model_path,
            args.images,
            index,
            threshold,
            args.k,
            args.batch_size,
            fetch_dir=fetch_dir,
            tta=args.tta,
            qe_k=getattr(args, "qe_k", None),
            dba_k=getattr(args, "dba_k", None),
            alpha=getattr(args, "qe_alpha", None),
        )
    else:
        dask = {"scheduler": args.scheduler, "n_workers": args.dask_workers} if args.engine == "dask" else {}
        tta = args.tta or DEFAULT_TTA
        pred = predict(
            model_path,
            args.images,
            threshold,
            args.batch_size,
            fetch_dir=fetch_dir,
            tta=tta,
            engine=args.engine,
            **dask,
        )
    files.write_csv(pred, out)
    sub = write_submission(pred, submission_path(out), threshold)
    n_failed = int(pred["confidence"].isna().sum())
    print(
        f"predictions: {out} ({len(pred)} images, {int(pred['answered'].sum())} answered at >= {threshold:g}"
        + (f", {n_failed} unreadable" if n_failed else "")
        + ")"
    )
    print(f"submission:  {sub}")
    return 0
