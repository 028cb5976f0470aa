"""Every recognition method on one open split: train, answer the queries, score (notebook 07, benchmarks).

Methods (``METHODS``), all on the same backbone, data, split and epochs, each a variant of one
``config.RunConfig`` (``method_runs``: ``RunConfig.replace``, as notebook 03's variants):

    study      the study's classifier and recipe (SGD at a constant learning rate, cross-entropy,
               ``BeyondConfig.study_augment``); confidence = the softmax probability
    modern     the same classifier with the modern recipe (``config.MODERN_RECIPE``: AdamW with weight
               decay, warmup + cosine, label smoothing, photo augmentation); answers with the
               run's test-time augmentation (``BeyondConfig.modern_tta``: flips by default)
    retrieval  the backbone with ``retrieval``'s embedding head, trained with the modern recipe and
               a margin loss; answers by the kNN vote over the index of the known landmarks'
               training-folder images (queries and index with the same test-time augmentation);
               confidence = the vote's similarity score

``run_methods`` trains each (``train.train``), chooses each method's threshold on validation
queries (the closed validation images plus the held-out landmarks' training-folder images,
never the test set: ``openset.choose_threshold``), predicts the test queries and scores them
with ``openset`` (paired bootstrap intervals, ``study`` as the reference): an ``Outcome``. Retrieval answers the
validation queries from an index of the training rows only (``MethodRun.val_index``): a validation
image in the index would find itself at similarity 1.

Retrieval's post-processing (``retrieval.dba``, ``retrieval.expand_queries``; ``BeyondConfig.retrieval_dba_k``,
``retrieval_qe_k``, ``retrieval_qe_alpha``): the index, and the validation index alike, is augmented once (DBA),
and every query, validation or test, is expanded before its vote (alpha-QE); off by default. With
``BeyondConfig.retrieval_variants`` (``retrieval_answers``), ``retrieval`` answers without them and
``run_methods`` also scores the variants ``retrieval+dba``, ``retrieval+qe`` and ``retrieval+dba+qe`` (those
whose ``k`` is above 0) from the same trained model and the same query embeddings: each its own threshold
(chosen on the validation queries the same way), predictions and bootstrap rows, and its paired differences
with ``retrieval`` (``Outcome.variants_vs_retrieval``). A variant is not trained: its ``result`` (history)
and ``seconds`` are the retrieval run's, its recipe says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from . import catalog, config, data, evaluate, openset, paths, scoring
from .nets import inference, models, recipes, retrieval, train
from .predict import core as predict_core

METHODS = ("study", "modern", "retrieval")
MODERN_ONLY = ("mixup_alpha", "cutmix_alpha", "ema_momentum", "randaugment_ops", "stochastic_depth")
"""The run's settings that only the modern recipe and retrieval take (``method_runs``)."""
VARIANT_METRICS = ("closed_top1", "open_gap")
"""The scores of ``Outcome.variants_vs_retrieval``'s paired differences."""


@dataclass
class MethodRun:
    """One trained method.

    Attributes:
        name: ``study``, ``modern`` or ``retrieval``.
        result: the ``train.TrainResult``.
        recipe: the recipe, in words.
        index: the retrieval index (known landmarks' train + validation images), else None.
        k: neighbours of the vote (retrieval).
        seconds: wall time of training (and indexing).
        threshold: the answering threshold (chosen on validation queries).
        embedder: the image -> embedding model (retrieval).
        tta: test-time augmentation (``evaluate.TTA_MODES``).
        val_index: the index of the training rows only, for the validation queries (retrieval).
        dba_k: the neighbours of the database-side augmentation ``index`` and ``val_index`` were made with
            (retrieval; 0: none).
        qe_k: the index rows each query is expanded with before its vote (retrieval; 0: none).
        alpha: the exponent of both's weights.
        extra: a variant's ``variant_of`` (the method whose model and embeddings it reuses: its ``result`` and
            ``seconds`` are that run's) and ``postprocess_seconds`` (the time its DBA took).
    """

    name: str
    result: train.TrainResult
    recipe: str
    index: retrieval.EmbeddingIndex | None = None
    k: int = retrieval.DEFAULT_K
    seconds: float = 0.0
    threshold: float = 0.0
    embedder: object = None
    tta: str = evaluate.DEFAULT_TTA
    val_index: retrieval.EmbeddingIndex | None = None
    dba_k: int = 0
    qe_k: int = 0
    alpha: float = retrieval.DEFAULT_ALPHA
    extra: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """``run_methods``' result: every method trained, answered and scored (method name -> its part).

    Attributes:
        runs: the trained methods (``MethodRun``: model, threshold, index).
        predictions: the ``openset.Predictions`` on the test queries.
        extra: ``answer``'s extra (retrieval: ``embeddings``, ``neighbours``, ``similarities``).
        scores: ``openset.score``'s scores.
        bootstrap: ``openset.bootstrap``'s table (the first method the reference of the differences).
        known: the landmark ids trained on.
        actual: each query's landmark id (-1: no landmark).
        retrieval_vs_best_classifier: retrieval minus the classifier of the best open-set GAP, paired (or None).
        unreadable: test id -> why its image could not be decoded (not answered).
        variants_vs_retrieval: each retrieval variant (``retrieval_answers``) minus ``retrieval``, paired, on
            the resamples of ``bootstrap``: ``closed_top1_diff``, ``open_gap_diff`` with ``_low``, ``_high``.
    """

    runs: dict[str, MethodRun] = field(default_factory=dict)
    predictions: dict[str, openset.Predictions] = field(default_factory=dict)
    extra: dict[str, dict] = field(default_factory=dict)
    scores: dict[str, dict] = field(default_factory=dict)
    bootstrap: pd.DataFrame | None = None
    known: list[int] = field(default_factory=list)
    actual: np.ndarray | None = None
    retrieval_vs_best_classifier: dict | None = None
    unreadable: dict[str, str] = field(default_factory=dict)
    variants_vs_retrieval: dict[str, dict] = field(default_factory=dict)


def method_runs(run: config.RunConfig, beyond: config.BeyondConfig) -> dict[str, config.RunConfig]:
    """Each method's run, a variant of ``run`` (its network, split, batch and seed): the study's recipe with
    ``beyond``'s epochs, study learning rate and augmentation (on ``run``'s dropout); modern, ``config.MODERN_RECIPE``
    with ``beyond``'s ``modern_*`` values; retrieval, the modern one with ``beyond``'s margin loss.

    Every method keeps ``run``'s network and start (``model``, ``weights``, ``init_from``) and its fine-tuning schedule
    (``head_epochs``, ``backbone_lr_fraction``); ``run``'s regularisers (``MODERN_ONLY``: mixup, CutMix, EMA,
    RandAugment, stochastic depth) are the modern recipe's and retrieval's, and the study's method trains without."""
    schedule = {name: getattr(run.train, name) for name in ("head_epochs", "backbone_lr_fraction")}
    regularisers = {name: run.settings()[name] for name in MODERN_ONLY}
    study = run.replace(
        recipe="study",
        dropout=run.model.dropout,
        epochs=beyond.beyond_epochs,
        learning_rate=beyond.study_learning_rate,
        augment=beyond.study_augment,
        **schedule,
        **{name: config.RunConfig().settings()[name] for name in MODERN_ONLY},  # the defaults: off
    )
    modern = study.replace(
        recipe="modern",
        learning_rate=beyond.modern_learning_rate,
        weight_decay=beyond.modern_weight_decay,
        warmup_epochs=beyond.modern_warmup_epochs,
        label_smoothing=beyond.modern_label_smoothing,
        **regularisers,
    )
    margin = {"loss": beyond.retrieval_loss, "margin": beyond.retrieval_margin, "scale": beyond.retrieval_scale}
    # mixup and CutMix mix two landmarks in one image; a margin loss needs one (recipes.make_loss refuses them)
    unmixed = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0}
    return {"study": study, "modern": modern, "retrieval": modern.replace(**margin, **unmixed)}


def retrieval_answers(beyond: config.BeyondConfig) -> dict[str, tuple[int, int]]:
    """The retrieval answers ``run_methods`` scores: name -> ``(dba_k, qe_k)``.

    ``{"retrieval": (retrieval_dba_k, retrieval_qe_k)}``; with ``retrieval_variants``, ``retrieval`` without
    post-processing and each variant whose ``k`` is above 0: ``retrieval+dba``, ``retrieval+qe``,
    ``retrieval+dba+qe``.

    Raises:
        ValueError: ``retrieval_variants`` with both ``k`` 0 (every variant would be ``retrieval``).
    """
    dba_k, qe_k = beyond.retrieval_dba_k, beyond.retrieval_qe_k
    if not beyond.retrieval_variants:
        return {"retrieval": (dba_k, qe_k)}
    if not (dba_k or qe_k):
        raise ValueError("retrieval_variants needs retrieval_dba_k or retrieval_qe_k above 0")
    answers = {"retrieval": (0, 0)}
    if dba_k:
        answers["retrieval+dba"] = (dba_k, 0)
    if qe_k:
        answers["retrieval+qe"] = (0, qe_k)
    if dba_k and qe_k:
        answers["retrieval+dba+qe"] = (dba_k, qe_k)
    return answers


def postprocess_words(dba_k: int, qe_k: int, alpha: float) -> str:
    """Retrieval's post-processing in words, for recipes (empty: none)."""
    parts = ([f"DBA k={dba_k}"] if dba_k else []) + ([f"alpha-QE k={qe_k}"] if qe_k else [])
    return f", {' and '.join(parts)} (alpha {alpha:g})" if parts else ""


def method_tta(name: str, beyond: config.BeyondConfig) -> str:
    """A method's test-time augmentation: the study's method answers as the study did, the others ``modern_tta``."""
    return "none" if name == "study" else beyond.modern_tta


def train_method(
    name: str, split: data.Split, run: config.RunConfig, beyond: config.BeyondConfig, out_dir, progress: bool = True
) -> MethodRun:
    """Build and train one method (``method_runs(run, beyond)[name]``) on ``split`` (and index it, for retrieval:
    the saved index is the embeddings themselves, recording the post-processing of ``retrieval_answers``'s
    ``retrieval``; the run's ``index`` and ``val_index`` are made with its DBA); its files go to ``out_dir``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: expected one of {METHODS}")
    method = method_runs(run, beyond)[name]
    start = time.perf_counter()
    train.set_seed(method.train.seed, method.train.deterministic)
    n_classes = len(split.landmark_ids)
    train_config = method.train.replace(models_dir=str(out_dir), early_stopping_patience=None)
    tta = method_tta(name, beyond)
    recipe = recipes.describe(train_config, method.model) + (f", {tta} test-time augmentation" if tta != "none" else "")
    dba_k, qe_k = retrieval_answers(beyond)["retrieval"] if name == "retrieval" else (0, 0)
    alpha = beyond.retrieval_qe_alpha
    recipe += postprocess_words(dba_k, qe_k, alpha)
    if name == "retrieval":
        model = retrieval.embedding_model(method.model, n_classes, embedding_dim=beyond.embedding_dim)
    else:
        model = models.build(method.model, n_classes)
    if progress:
        print(f"== {name}: {model.count_params():,} parameters; {recipe}", flush=True)
    result = train.train(model, split, train_config, name=name, progress=progress)
    index = embedder = val_index = None
    if name == "retrieval":
        # one image -> embedding model per method (retrieval.embed makes it once per model too)
        embedder = retrieval.embedding_of(result.model)
        size, batch = method.model.input_size, method.train.batch_size
        embedded = [
            retrieval.embed(embedder, frame=rows, input_size=size, batch_size=batch, tta=tta)
            for rows in (split.train, split.val)
        ]
        val_index = retrieval.build_index(embedder, split.train, split.landmark_ids, tta=tta, embeddings=embedded[0])
        known = pd.concat([split.train, split.val], ignore_index=True)
        index = retrieval.build_index(embedder, known, split.landmark_ids, tta=tta, embeddings=np.concatenate(embedded))
        index.postprocess = {"dba_k": dba_k, "qe_k": qe_k, "alpha": alpha}  # `landmarks predict` answers alike
        index.save(retrieval.index_path(result.model_path))
        # the indexes voted with: each augmented among its own rows (the validation index: training rows only)
        val_index, index = retrieval.dba(val_index, dba_k, alpha), retrieval.dba(index, dba_k, alpha)
    return MethodRun(
        name=name,
        result=result,
        index=index,
        k=beyond.retrieval_k,
        embedder=embedder,
        recipe=recipe,
        seconds=time.perf_counter() - start,
        tta=tta,
        val_index=val_index,
        dba_k=dba_k,
        qe_k=qe_k,
        alpha=alpha,
    )


def retrieval_variant(base: MethodRun, name: str, dba_k: int, qe_k: int, alpha: float | None = None) -> MethodRun:
    """``base`` (a trained retrieval method without post-processing) answering with DBA and alpha-QE: the same
    model, embedder and embeddings (``result`` and ``seconds`` are ``base``'s: nothing is trained again), its
    ``index`` and ``val_index`` augmented with ``dba_k`` neighbours, ``qe_k`` query expansion; threshold 0 until
    one is chosen."""
    if base.index is None or base.dba_k or base.qe_k:
        raise ValueError(f"{base.name}: a variant is made from a retrieval method without post-processing")
    alpha = base.alpha if alpha is None else float(alpha)
    start = time.perf_counter()
    index, val_index = (retrieval.dba(i, dba_k, alpha) if i is not None else None for i in (base.index, base.val_index))
    return dataclasses.replace(
        base,
        name=name,
        recipe=f"{base.recipe}{postprocess_words(dba_k, qe_k, alpha)}; {base.name}'s model, not trained again",
        index=index,
        val_index=val_index,
        threshold=0.0,
        dba_k=dba_k,
        qe_k=qe_k,
        alpha=alpha,
        extra={"variant_of": base.name, "postprocess_seconds": time.perf_counter() - start},
    )


def answer(
    run: MethodRun,
    frame: pd.DataFrame,
    batch_size: int = 64,
    x: np.ndarray | None = None,
    index: retrieval.EmbeddingIndex | None = None,
    embeddings: np.ndarray | None = None,
) -> tuple[openset.Predictions, dict]:
    """A method's predictions for rows with ``path`` (unreadable files come back black, with a warning),
    with the method's test-time augmentation (``run.tta``).

    Args:
        run: the trained method.
        frame: the query rows.
        batch_size: images per forward pass.
        x: the rows' images already decoded at the model's input size (decoded here otherwise).
        index: retrieval: the index to vote with (default ``run.index``).
        embeddings: retrieval: the rows' embeddings already (``extra["embeddings"]`` of an answer of the same
            model and test-time augmentation: neither decoded nor embedded again).

    Returns:
        ``(predictions, extra)``; for retrieval, ``extra`` holds ``embeddings`` (as embedded, before any
        query expansion), ``neighbours`` (index rows) and ``similarities``. Retrieval votes with the run's
        query expansion (``run.qe_k``, ``run.alpha``).
    """
    size = int(run.result.settings["input_size"])
    unreadable = None
    index = index if index is not None else run.index
    if x is None and (index is None or embeddings is None):
        errors: dict[str, str] = {}
        x = data.load_images(frame["path"].tolist(), size, errors=errors, progress=False)
        unreadable = frame["path"].isin(list(errors)).to_numpy()
    extra: dict = {}
    if index is not None:
        emb = embeddings
        if emb is None:
            emb = retrieval.embed(run.embedder or run.result.model, x, batch_size=batch_size, tta=run.tta)
        vote = retrieval.knn_vote(index, emb, k=run.k, qe_k=run.qe_k, qe_alpha=run.alpha)
        scores, conf = vote.scores, vote.confidence
        extra = {"embeddings": emb, "neighbours": vote.neighbours, "similarities": vote.similarities}
    else:
        scores = inference.predict_probabilities(run.result.model, x, batch_size, tta=run.tta)
        conf = scores.max(axis=1) if len(scores) else np.zeros(0)
    pred = openset.from_scores(scores, conf, run.result.landmark_ids, run.threshold)
    return (unanswered(pred, unreadable) if unreadable is not None else pred), extra


def unanswered(pred: openset.Predictions, rows: np.ndarray) -> openset.Predictions:
    """``pred`` with no answer for ``rows`` (a boolean mask): images that could not be decoded are
    not answered (their decoded pixels are black, not theirs)."""
    if not rows.any():
        return pred
    landmark, confidence, top5 = pred.landmark.copy(), pred.confidence.copy(), pred.top5.copy()
    landmark[rows], confidence[rows], top5[rows] = -1, np.nan, -1
    return openset.Predictions(landmark, confidence, top5, pred.threshold, pred.extra)


def validation_queries(open_split: data.OpenSplit) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows thresholds are chosen on (closed validation + held-out training-folder images) and their truth."""
    frame = pd.concat(
        [open_split.closed.val[["path", "id", "landmark_id"]], open_split.held_out_rows[["path", "id", "landmark_id"]]],
        ignore_index=True,
    )
    return frame, frame["landmark_id"].to_numpy(np.int64)


def test_queries(test_dir, solution, input_size: int) -> pd.DataFrame:
    """The fetched test images with their true landmark (``actual``; None: no landmark), readable ones only."""
    tests = predict_core.load_test_images(test_dir, input_size, progress=False)
    truth = solution if isinstance(solution, pd.DataFrame) else catalog.read_solution(solution)
    truth = truth[["id", "landmark_id"]].astype(str).rename(columns={"landmark_id": "actual"})
    frame = tests.drop(columns=["landmark_id"]).astype({"id": str}).merge(truth, on="id", how="inner")
    frame = frame[frame["path"].notna()].reset_index(drop=True)
    frame["actual"] = pd.to_numeric(frame["actual"].replace("", None), errors="coerce").astype("Int64")
    return frame


class _NoRetracingNotes(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" notes while notebook 07 trains its three
    methods, each a fresh model in one process. Other TensorFlow messages pass.

    The cause is in TensorFlow and Keras, not in our inputs: TensorFlow counts the traces of every
    ``tf.function`` made from one Python function together (its frequent-tracing detector is keyed by
    the code object), and Keras makes a new ``train_function`` and ``test_function`` for each compiled
    model, both from ``TensorFlowTrainer._make_function.<locals>.multi_step_on_iterator``. Three models
    are six traces of that code; with few steps per epoch (tiny runs) five fall within its ten-call
    window and it logs the note, though no function was traced twice (``tests/unit/test_tracing.py`` records
    every trace; TensorFlow calls this expected, tensorflow/tensorflow#42441). Our own retracing (Keras'
    ``predict`` on the embedder, again for a last partial batch and for arrays after batches) is gone:
    ``retrieval.embed`` uses ``inference.inference_function``, traced once per model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _no_retracing_notes():
    """``_NoRetracingNotes`` on TensorFlow's logger while the block runs."""
    quiet = _NoRetracingNotes()
    logging.getLogger("tensorflow").addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger("tensorflow").removeFilter(quiet)


def run_methods(
    open_split: data.OpenSplit,
    run: config.RunConfig,
    beyond: config.BeyondConfig,
    queries: pd.DataFrame,
    out_dir,
    methods=METHODS,
    progress: bool = True,
) -> Outcome:
    """Train, threshold, answer and score every method.

    Args:
        open_split: ``data.load_open_split``'s result.
        run: the network, the batch and the seed every method shares (``method_runs``).
        beyond: the methods' settings (``beyond_epochs``, the recipes, ``n_bootstrap`` resamples...).
        queries: the test queries (``test_queries``: ``path``, ``id``, ``actual``).
        out_dir: where the models go (``<out_dir>/<method>.keras`` ...).
        methods: which methods to run.
        progress: epoch bars and one line per method.
    """
    split = open_split.closed
    val_frame, val_truth = validation_queries(open_split)
    actual = queries["actual"].astype("float64").fillna(-1).astype(np.int64).to_numpy()
    runs, preds, extras, scores = {}, {}, {}, {}
    size, batch_size, n_boot, seed = run.model.input_size, run.train.batch_size, beyond.n_bootstrap, run.train.seed
    # every method's input is `size`: the queries are decoded once
    val_errors: dict[str, str] = {}
    query_errors: dict[str, str] = {}  # images that cannot be decoded: not answered, each with its reason
    val_x = data.load_images(val_frame["path"].tolist(), size, errors=val_errors, progress=False)
    query_x = data.load_images(queries["path"].tolist(), size, errors=query_errors, progress=False)
    val_bad = val_frame["path"].isin(list(val_errors)).to_numpy()
    query_bad = queries["path"].isin(list(query_errors)).to_numpy()
    # before any training: retrieval_variants with nothing to vary fails here
    answers = retrieval_answers(beyond) if "retrieval" in methods else {}
    variants = [n for n in answers if n != "retrieval"]

    def choose_threshold(method: MethodRun, val_pred: openset.Predictions) -> None:
        val_pred = unanswered(val_pred, val_bad)
        method.threshold = openset.choose_threshold(val_pred.confidence, val_pred.landmark == val_truth)

    def keep(method: MethodRun, pred: openset.Predictions, extra: dict) -> None:
        name = method.name
        runs[name], preds[name], extras[name] = method, unanswered(pred, query_bad), extra
        scores[name] = openset.score(preds[name], actual, split.landmark_ids, queries["id"].to_numpy())
        if progress:
            s = scores[name]
            base = method.extra.get("variant_of")
            took = f"{base}'s model" if base else f"{method.seconds / 60:.1f} min"
            print(
                f"   {name}: closed top-1 {s['closed_top1']:.3f}, open GAP {s['open_gap']:.3f} "
                f"(threshold {method.threshold:.3f}; {took})",
                flush=True,
            )

    with _no_retracing_notes():
        for name in methods:
            method = train_method(name, split, run, beyond, out_dir, progress)
            val_pred, val_extra = answer(method, val_frame, batch_size, x=val_x, index=method.val_index)
            choose_threshold(method, val_pred)
            # the model answers at this threshold wherever it goes (`landmarks predict` reads it)
            scoring.save_threshold(method.result.model_path, method.threshold, f"{len(val_frame)} validation queries")
            pred, extra = answer(method, queries, batch_size, x=query_x)
            keep(method, pred, extra)
            if name != "retrieval":
                continue
            # the variants: the same model and embeddings, each its own threshold (not saved: the model's is
            # retrieval's, which its saved index records)
            for variant_name in variants:
                variant = retrieval_variant(method, variant_name, *answers[variant_name])
                val_pred, _ = answer(
                    variant, val_frame, batch_size, index=variant.val_index, embeddings=val_extra["embeddings"]
                )
                choose_threshold(variant, val_pred)
                keep(variant, *answer(variant, queries, batch_size, embeddings=extra["embeddings"]))
    boot = openset.bootstrap(
        preds,
        actual,
        split.landmark_ids,
        queries["id"].to_numpy(),
        n_boot=n_boot,
        seed=seed,
        reference=methods[0],
    )
    # retrieval against the best classifier by open-set GAP, on the same resamples (the target)
    classifiers = [n for n in methods if n != "retrieval"]
    versus = None
    if "retrieval" in preds and classifiers:
        best = max(classifiers, key=lambda n: scores[n]["open_gap"])
        pair = openset.bootstrap(
            {best: preds[best], "retrieval": preds["retrieval"]},
            actual,
            split.landmark_ids,
            queries["id"].to_numpy(),
            n_boot=n_boot,
            seed=seed,
            reference=best,
        )
        versus = {
            "best_classifier": best,
            **{
                f"{r['metric']}_{k}": r[k]
                for r in pair[pair["method"] == "retrieval"].to_dict("records")
                for k in ("diff", "diff_low", "diff_high")
            },
        }
    # each variant against retrieval, on the same resamples (the reference above is the first method)
    versus_retrieval = {}
    if variants:
        pair = openset.bootstrap(
            {"retrieval": preds["retrieval"], **{v: preds[v] for v in variants}},
            actual,
            split.landmark_ids,
            queries["id"].to_numpy(),
            n_boot=n_boot,
            seed=seed,
            reference="retrieval",
        )
        versus_retrieval = {
            v: {
                f"{r['metric']}_{k}": r[k]
                for r in pair[(pair["method"] == v) & pair["metric"].isin(VARIANT_METRICS)].to_dict("records")
                for k in ("diff", "diff_low", "diff_high")
            }
            for v in variants
        }
    return Outcome(
        runs=runs,
        predictions=preds,
        extra=extras,
        scores=scores,
        bootstrap=boot,
        known=list(split.landmark_ids),
        actual=actual,
        retrieval_vs_best_classifier=versus,
        unreadable={i: query_errors[p] for i, p in zip(queries["id"], queries["path"]) if p in query_errors},
        variants_vs_retrieval=versus_retrieval,
    )


def metrics_table(outcome: Outcome) -> pd.DataFrame:
    """One row per method: recipe, training numbers, threshold and every score with its interval."""
    return pd.DataFrame(method_rows(outcome))


def method_rows(outcome: Outcome) -> list[dict]:
    """``metrics_table``'s rows as dicts; the paired differences (``<metric>_diff``, ``_diff_low``,
    ``_diff_high``: method minus the reference) only in the other methods' rows. A retrieval variant's row
    has ``variant_of`` (and its base's training numbers: it was not trained)."""
    boot = outcome.bootstrap.set_index(["method", "metric"])
    rows = []
    for name, run in outcome.runs.items():
        row = {
            "method": name,
            "recipe": run.recipe,
            "val_top1": run.result.val_top1,
            "epochs": run.result.epochs_run,
            "best_epoch": run.result.best_epoch,
            "train_minutes": run.seconds / 60,
            "threshold": run.threshold,
            **({"variant_of": run.extra["variant_of"]} if "variant_of" in getattr(run, "extra", {}) else {}),
        }
        for m in openset.METRICS:
            r = boot.loc[(name, m)]
            row.update({m: r["value"], f"{m}_low": r["low"], f"{m}_high": r["high"]})
            if not pd.isna(r["diff"]):
                row.update({f"{m}_diff": r["diff"], f"{m}_diff_low": r["diff_low"], f"{m}_diff_high": r["diff_high"]})
        rows.append(row)
    return rows


def write_submissions(
    outcome: Outcome, queries: pd.DataFrame, reports_dir, prefix: str = "07_", test_ids=None
) -> dict[str, str]:
    """Each method's Kaggle submission (``id,landmarks``, empty below its threshold), via ``predict.core.write_submission``.

    Args:
        outcome: ``run_methods``' result.
        queries: the queries it answered.
        reports_dir: where ``submissions/`` goes.
        prefix: of the file names.
        test_ids: every id of the test set (the solution's), in order: each gets exactly one row, and an
            image that was not fetched or not decoded an empty answer, as Kaggle expects. None: the queries'.

    Returns:
        method -> the file written, ``<reports_dir>/submissions/<prefix><method>.csv``, relative to ``reports_dir``.
    """
    base = paths.resolve(reports_dir)
    ids = pd.Index(queries["id"].astype(str))
    every = ids if test_ids is None else pd.Index(pd.Series(test_ids).astype(str))
    if every.has_duplicates or not ids.isin(every).all():
        raise ValueError("test_ids must hold every query's id exactly once")
    written = {}
    for name, pred in outcome.predictions.items():
        table = pd.DataFrame(
            {
                "landmark_id": pd.array(np.where(pred.landmark >= 0, pred.landmark, 0), dtype="Int64"),
                "confidence": np.where(pred.landmark >= 0, pred.confidence, np.nan),
            },
            index=ids,
        )
        table = table.reindex(every).rename_axis("id").reset_index()  # not fetched: no answer
        path = predict_core.write_submission(table, base / "submissions" / f"{prefix}{name}.csv", pred.threshold)
        written[name] = str(path.relative_to(base))
    return written


def project_2d(embeddings: np.ndarray, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """2-D coordinates of embeddings for a picture: t-SNE when scikit-learn is installed, else PCA.

    Returns:
        ``(coordinates (N, 2), "t-SNE" | "PCA")``.
    """
    x = np.asarray(embeddings, np.float64)
    if method in ("auto", "tsne") and len(x) > 5:
        try:
            from sklearn.manifold import TSNE  # optional: without scikit-learn, PCA
        except ImportError:
            if method == "tsne":
                raise
        else:
            perplexity = float(min(30, max(2, (len(x) - 1) / 3)))
            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x), "t-SNE"
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PCA"


def gallery_rows(
    outcome: Outcome, queries: pd.DataFrame, n_right: int = 2, n_wrong: int = 2, k: int = 5, seed: int = 0
) -> list[dict]:
    """Retrieval queries to show with their nearest index images: some answered right, some wrong.

    Returns:
        dicts with ``query_path``, ``actual`` (None: no known landmark), ``predicted``, ``confidence``,
        ``right``, and ``neighbours``: (path, landmark_id, similarity) of the ``k`` nearest.
    """
    run = outcome.runs.get("retrieval")
    if run is None or run.index is None:
        return []
    pred, extra, actual = outcome.predictions["retrieval"], outcome.extra["retrieval"], outcome.actual
    right = np.flatnonzero(pred.landmark == actual)
    wrong = np.flatnonzero(pred.landmark != actual)
    rng = np.random.default_rng(seed)
    picks = [*rng.permutation(right)[:n_right], *rng.permutation(wrong)[:n_wrong]]
    ids = np.asarray(run.index.landmark_ids)
    known = set(outcome.known)
    rows = []
    for i in picks:
        nb = extra["neighbours"][i][:k]
        rows.append(
            {
                "query_path": queries["path"].iloc[i],
                "actual": int(actual[i]) if actual[i] in known else None,
                "true_landmark": int(actual[i]) if actual[i] >= 0 else None,
                "predicted": int(pred.landmark[i]),
                "confidence": float(pred.confidence[i]),
                "right": bool(pred.landmark[i] == actual[i]),
                "neighbours": [
                    (str(run.index.paths[j]), int(ids[run.index.labels[j]]), float(s))
                    for j, s in zip(nb, extra["similarities"][i][:k])
                ],
            }
        )
    return rows


def environment_line() -> str:
    """Backend and core count, for reports."""
    return f"Keras backend {keras.backend.backend()}, {os.cpu_count()} CPU cores"
