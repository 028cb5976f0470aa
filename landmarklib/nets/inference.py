"""Running a trained network: traced inference, exact log-probabilities, test-time flips, image files in
chunks (both prediction engines), timing."""

from __future__ import annotations

import math
import os
import statistics
import time
import weakref
from collections.abc import Sequence

import keras
import numpy as np
from tqdm import tqdm

from .. import data, paths
from ..evaluate import DEFAULT_TTA, check_tta, top_k_ids
from ..predict.core import load_test_images
from . import models

_INFERENCE = weakref.WeakKeyDictionary()  # model -> its traced inference function


def inference_function(model):
    """``x -> (probabilities, features)`` for ``model`` in inference mode, traced once for any batch size.

    Keras' ``predict``/``predict_on_batch`` trace a new graph for each new batch shape (the
    last, partial batch; one image for timing) and per loaded model; a few such calls in a
    row made TensorFlow log "triggered tf.function retracing" into the report. On TensorFlow
    this is one ``tf.function`` with an unknown batch dimension, traced once per model; on
    other backends, ``predict_on_batch``.

    ``features`` is the input of the final softmax ``Dense`` layer (named ``predictions``),
    from which ``log_probabilities`` computes exact log-probabilities; ``None`` when the model
    does not end in one.
    """
    cached = _INFERENCE.get(model)
    if cached is not None:
        return cached
    head = model.layers[-1]
    ends_in_softmax = isinstance(head, keras.layers.Dense) and getattr(head.activation, "__name__", "") == "softmax"
    outputs = [model.outputs[0], head.input] if ends_in_softmax else [model.outputs[0]]
    both = keras.Model(model.inputs, outputs, name=f"{model.name}_inference")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the backend in use: only TensorFlow has this path

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        traced = tf.function(lambda x: both(x, training=False), input_signature=[spec], reduce_retracing=True)

        def run(x):
            out = traced(tf.convert_to_tensor(x, tf.float32))
            return [np.asarray(t) for t in (out if isinstance(out, (list, tuple)) else [out])]  # one output: a tensor

        traces = traced.experimental_get_tracing_count
    else:
        traces = None

        def run(x):
            out = both.predict_on_batch(np.asarray(x, dtype=np.float32))
            return [np.asarray(t) for t in (out if isinstance(out, (list, tuple)) else [out])]

    def fn(x):
        out = run(x)
        return out[0], (out[1] if ends_in_softmax else None)

    fn.head = head if ends_in_softmax else None
    fn.tracing_count = traces  # TensorFlow: how many graphs were traced (one, whatever the batch sizes)
    _INFERENCE[model] = fn
    return fn


def log_probabilities(model, probs: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    """Exact log-probabilities (float64), as the training loss sees them.

    Keras' cross-entropy on a softmax output uses the logits behind it, so a true class of
    probability 1e-13 costs 29.9; ``-log`` of the float32 probability, clipped at 1e-7 (Keras'
    epsilon), would cost at most 16.1 (the cause of issue 8's 6.89 against 10.11). With the
    softmax layer's input, the logits are recomputed here in float64; without it (a model not
    ending in a softmax ``Dense``), the clipped ``log`` of the probabilities is the best there is.
    """
    fn = inference_function(model)
    if features is None or fn.head is None:
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0))
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in fn.head.get_weights())
    logits = np.asarray(features, dtype=np.float64) @ kernel + bias
    top = logits.max(axis=1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


def tta_views(x: np.ndarray, tta: str = DEFAULT_TTA) -> list[np.ndarray]:
    """The views of a batch ``x`` (N, H, W, C) that test-time augmentation ``tta`` averages over."""
    return [x, x[:, :, ::-1]] if check_tta(tta) == "flip" else [x]


def predict_probabilities(model, x, batch_size: int = 64, with_log: bool = False, tta: str = DEFAULT_TTA):
    """Class probabilities for images ``x`` (N, S, S, 3) in 0..255 (or batches of them), shape (N, C).

    Args:
        model: a model mapping 0..255 RGB images to class probabilities.
        x: an array of images, or an iterable of ``x`` or ``(x, y)`` batches (``pipeline.batches``).
        batch_size: images per forward pass (for an array).
        with_log: also return exact log-probabilities (``log_probabilities``).
        tta: ``evaluate.TTA_MODES``: ``"flip"`` returns the mean over each image and its mirror image
            (the log-probabilities are then the log of that mean).

    Returns:
        probabilities (float32, as the model gives them), and with ``with_log`` the
        log-probabilities (float64) as a second value.
    """
    check_tta(tta)  # a wrong mode fails before any work
    fn = inference_function(model)
    n_classes = int(model.output_shape[-1])
    if isinstance(x, np.ndarray):
        x = np.asarray(x, dtype=np.float32)
        chunks = (x[i : i + max(1, batch_size)] for i in range(0, len(x), max(1, batch_size)))
    else:
        chunks = (b[0] if isinstance(b, tuple) else b for b in (x[i] for i in range(len(x))))
    probs, logs = [], []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        views = [fn(np.ascontiguousarray(view)) for view in tta_views(chunk, tta)]
        probs.append(np.mean([p for p, _ in views], axis=0).astype(np.float32))
        if with_log:
            view_logs = [log_probabilities(model, p, features) for p, features in views]
            logs.append(np.logaddexp.reduce(view_logs, axis=0) - math.log(len(views)))
    probs = np.concatenate(probs) if probs else np.zeros((0, n_classes), dtype=np.float32)
    if not with_log:
        return probs
    return probs, (np.concatenate(logs) if logs else np.zeros((0, n_classes)))


def predict_chunks(
    model,
    landmark_ids,
    files: Sequence[str],
    size: int,
    batch_size: int = 64,
    top_k: int = 5,
    progress: bool = False,
    tta: str = DEFAULT_TTA,
):
    """Predict image files in chunks of ``8 * batch_size`` (the batches both engines run), with
    test-time augmentation ``tta`` (``evaluate.TTA_MODES``).

    Returns:
        (class index per file, -1 when the file cannot be decoded; confidence
        (NaN when unreadable); ``top_k`` most probable landmark ids, space-separated;
        the decode error or "").
    """
    n = len(files)
    best = np.full(n, -1, dtype=np.int64)
    conf = np.full(n, np.nan)
    tops = np.full(n, "", dtype=object)
    errors = np.full(n, "", dtype=object)
    chunk = max(1, batch_size) * 8
    with tqdm(total=n, desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, n, chunk):
            rows = np.arange(start, min(n, start + chunk))
            part = list(files[start : start + chunk])
            bad: dict[str, str] = {}
            x = data.load_images(part, size, errors=bad, progress=False)
            probs = predict_probabilities(model, x, batch_size, tta=tta)
            good = np.array([f not in bad for f in part], dtype=bool)
            best[rows[good]] = probs[good].argmax(axis=1)
            conf[rows[good]] = probs[good].max(axis=1)
            tops[rows[good]] = [" ".join(map(str, r)) for r in top_k_ids(probs[good], landmark_ids, top_k)]
            errors[rows[~good]] = [bad[f] for f, ok in zip(part, good) if not ok]
            bar.update(len(rows))
    return best, conf, tops, errors


def time_model(
    model_path: str | os.PathLike,
    images,
    n_latency: int = 50,
    warmup: int = 5,
    batch_size: int = 64,
    n_batches: int = 4,
) -> dict:
    """Measure a saved model: load time, single-image latency, batched throughput.

    Single-image latency is ``inference_function(model)`` on one image already in
    memory: the model's graph traced once for any batch size, what a service answering
    one request at a time calls (``predict_on_batch`` would trace again per batch shape).
    It is the median and 90th percentile of ``n_latency`` calls after ``warmup`` calls
    (the first traces/compiles). The result comes
    back as a NumPy array, so asynchronous backends are timed to completion.
    ``predict_one_median_ms`` is the same image through ``model.predict``, which
    builds a data pipeline per call (shown to make that overhead visible; an eager
    ``model(x)`` call is slower still and is not what one should deploy).
    Throughput is ``predict_probabilities`` over ``n_batches`` batches of ``batch_size``.
    Image decoding is timed on its own (``decode_median_ms``) when files are given.

    Args:
        model_path: a ``.keras`` file (with its label map).
        images: uint8/float array (N, S, S, 3) in 0..255, or a folder/CSV accepted by ``load_test_images``.
        n_latency: timed single-image calls.
        warmup: untimed calls first.
        batch_size: images per batch for the throughput run.
        n_batches: batches in the throughput run (images are repeated when fewer).

    Returns:
        dict: load_seconds, latency_median_ms, latency_p90_ms, predict_one_median_ms,
        batch_images_per_second, batch_size, decode_median_ms (None for arrays),
        latency_method, backend.
    """
    t0 = time.perf_counter()
    model, _ = models.load(paths.resolve(model_path))
    load_seconds = time.perf_counter() - t0
    size = int(model.input_shape[1])

    decode_ms = None
    if isinstance(images, np.ndarray):
        x = images.astype(np.float32)
    else:
        files = load_test_images(images, size, progress=False)["path"].dropna().tolist()
        if not files:
            raise ValueError(f"{images}: no readable image to time")
        files = files[: max(n_latency, batch_size)]
        decode = []
        for f in files[: max(1, n_latency)]:
            t = time.perf_counter()
            data.load_images([f], size, progress=False)
            decode.append((time.perf_counter() - t) * 1000)
        decode_ms = statistics.median(decode)
        x = data.load_images(files, size, progress=False).astype(np.float32)
    if len(x) == 0:
        raise ValueError("no images to time")

    def timed_ms(fn, i: int) -> float:
        one = x[i % len(x) : i % len(x) + 1]
        t = time.perf_counter()
        fn(one)
        return (time.perf_counter() - t) * 1000

    infer = inference_function(model)
    for i in range(max(1, warmup)):
        timed_ms(infer, i)
    latencies = np.array([timed_ms(infer, i) for i in range(max(1, n_latency))])
    predict_one = [timed_ms(lambda one: model.predict(one, verbose=0), i) for i in range(max(2, min(10, n_latency)))]

    n_total = batch_size * max(1, n_batches)
    xb = np.resize(x, (n_total, *x.shape[1:])).astype(np.float32)
    predict_probabilities(model, xb[:batch_size], batch_size=batch_size)
    t = time.perf_counter()
    predict_probabilities(model, xb, batch_size=batch_size)
    batch_seconds = time.perf_counter() - t

    return {
        "load_seconds": load_seconds,
        "latency_median_ms": float(np.median(latencies)),
        "latency_p90_ms": float(np.percentile(latencies, 90)),
        "predict_one_median_ms": float(statistics.median(predict_one[1:])),
        "batch_images_per_second": n_total / batch_seconds,
        "batch_size": batch_size,
        "decode_median_ms": decode_ms,
        "latency_method": "one traced inference call (inference_function), one image in memory",
        "backend": keras.backend.backend(),
    }
