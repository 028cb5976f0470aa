"""Retrieval recognition: GeM-pooled, margin-trained embeddings and a k-nearest-neighbour vote.

How the Kaggle landmark challenges after 2018 were won: a network maps an image to an
L2-normalised embedding, trained so that images of one landmark lie at small angles to
each other (an additive angular margin loss); the landmark of a query is voted by its
nearest training images, and the confidence comes from the similarities, so an image of
no known landmark, far from everything, gets a low one.

Model (``embedding_model``): a backbone of ``models.ARCHITECTURES`` (Res-Incep or ResNet-50,
cut before its pooling), ``GeM`` pooling (``gem_pool``), a Dense embedding
(``embedding_dense``, 512 by default) with BatchNormalization (``embedding_bn``),
L2-normalised (``embedding``), and a ``CosineHead`` (``cosines``): the cosine of the
embedding with one learned, normalised centre per landmark. It trains as any classifier
with ``losses.MarginLoss`` (ArcFace: ``s * cos(theta + m)`` for the true class; CosFace:
``s * (cos(theta) - m)``); afterwards only the ``embedding`` output is used.

Index (``EmbeddingIndex``): the training images' embeddings with their class, saved as one
``.npz``. Search is exact inner product (= cosine): NumPy brute force for small indexes,
FAISS (``faiss-cpu``, optional) when the index holds at least ``FAISS_MIN_ROWS`` rows and
FAISS is installed (``backend="auto"``); without it the NumPy path is used.

The vote (``knn_vote``), for a query with neighbours ``i = 1..k`` (similarity ``s_i``, ties
broken by index row, lower first) among ``k_eff = min(k, index size)``:

    class score  S_c = (1 / k_eff) * sum over the neighbours of class c of max(s_i, 0)
    prediction   the class of highest S_c, ties to the lower class index; when every S_c is
                 0 (no neighbour with a positive similarity), the nearest neighbour's class
    confidence   S of the predicted class, in [0, 1]

So the confidence is high only when the neighbours agree and are close. A class with
fewer than ``k`` images can reach at most ``n_c / k``: choose ``k`` no larger than the
smallest class that should be answered confidently. A class of the label map without any
index image (an empty class) scores 0 and is never predicted.

Non-landmark bank (optional): embeddings of images showing no known landmark. The
confidence becomes ``max(0, S - bank_weight * B)``, where ``B`` is the mean of the query's
``k`` highest clipped similarities to the bank: a query that looks like a non-landmark
image loses confidence.

Post-processing (Radenovic, Tolias and Chum 2018, "Fine-tuning CNN image retrieval with no human
annotation", section 5: alpha-weighted forms of Chum et al.'s average query expansion and of
Arandjelovic and Zisserman's database-side augmentation), both off by default (``k = 0``: the
vectors are returned unchanged). With unit vectors ``x``, similarities ``s`` from ``search``
(float64 re-ranked, ties by index row) and the weight

    w(s) = s ** alpha   for s > 0,   0 otherwise (a neighbour at 90 degrees or more adds nothing)

    DBA (``dba``): each index row becomes  x_i' = unit(x_i + sum_j w(s_ij) x_j)  over its ``dba_k``
        most similar other rows j (the row itself weighs 1 and is not one of the ``dba_k``); computed once
        for the whole index from the original rows; the labels are unchanged
    alpha-QE (``expand_queries``): each query becomes  q' = unit(q + sum_i w(s_i) x_i)  over its ``qe_k``
        nearest index rows (of the index it is voted on: DBA's when both are used); ``q'`` is then
        searched again for the vote (``knn_vote(qe_k=...)``)

``unit(v) = v / |v|``; the sums run in float64. A copy of an image lies at similarity 1 and weighs 1
whatever ``alpha``; ``alpha = 0`` is the plain average over the positive neighbours. Both are
deterministic: the neighbours are ``search``'s (ties by row), summed in a fixed order. The
non-landmark bank, if any, is compared with the query as it was embedded, not the expanded one.

Every layer is a Keras layer using ``keras.ops`` only, so the models run under TensorFlow
and JAX; ``load_model`` reads a saved model (``layers.GeM`` and ``layers.CosineHead`` are
registered under the package ``landmarks``; the losses are ``losses.MarginLoss``).
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import layers
from tqdm import tqdm

from .. import config, data, evaluate, paths
from ..predict import core
from . import inference, models, pipeline
from .layers import CosineHead, GeM

EMBEDDING_DIM = 512
DEFAULT_K = 5
DEFAULT_ALPHA = 3.0
"""The exponent of the similarity weights of DBA and alpha-QE (Radenovic et al. 2018's choice)."""
FAISS_MIN_ROWS = 20_000
"""From this many index rows on, ``backend="auto"`` searches with FAISS (when installed)."""
RERANK_TOLERANCE = 1e-4
"""Bound on a float32 similarity's error (unit vectors, D up to a few thousand: typically ~1e-6):
a search re-ranks its candidates in float64 and asks for more when a left-out row could be this close."""


# --------------------------------------------------------------------------- models


def embedding_head(
    x, num_classes: int, embedding_dim: int = EMBEDDING_DIM, gem_p: float = 3.0, name: str = "embedding"
):
    """GeM pooling, a Dense embedding with BatchNormalization, L2 normalisation, and the cosine head.

    Args:
        x: the backbone's feature map (B, H, W, C).
        num_classes: number of landmarks (the cosine head's width).
        embedding_dim: size of the embedding.
        gem_p: GeM's initial exponent.
        name: name of the normalised embedding layer (the others: ``gem_pool``,
            ``embedding_dense``, ``embedding_bn``; the head: ``cosines``).

    Returns:
        ``(embedding, cosines)`` tensors.
    """
    # float32 under any mixed-precision policy (as the classifier's softmax): GeM's cubes, the unit
    # vectors and the cosines near 1 that the margin acts on need more than bfloat16's 8 bits
    f32 = {"dtype": "float32"}
    x = GeM(p=gem_p, name="gem_pool", **f32)(x)
    x = layers.Dense(embedding_dim, use_bias=False, name=f"{name}_dense", **f32)(x)
    x = layers.BatchNormalization(name=f"{name}_bn", **f32)(x)
    embedding = layers.UnitNormalization(axis=-1, name=name, **f32)(x)
    cosines = CosineHead(num_classes, name="cosines", **f32)(embedding)
    return embedding, cosines


def embedding_model(settings, num_classes: int, embedding_dim: int = EMBEDDING_DIM, gem_p: float = 3.0):
    """A retrieval model on a backbone of ``models.ARCHITECTURES``: image -> class cosines.

    The backbone is built by ``models.build`` (so ``augment``, ``filters``, ``weights``...
    mean what they mean there) and cut at the input of its pooling layer; the embedding head
    replaces its classifier head. ``embedding_of(model)`` gives the image -> embedding model.

    Args:
        settings: ``models.build``'s settings: a ``config.ModelConfig``, or a mapping of its
            parameters (``model``: ``res_incep`` or ``resnet50``, ``input_size``...).
        num_classes: number of landmarks.
        embedding_dim: size of the embedding.
        gem_p: GeM's initial exponent.

    Returns:
        An uncompiled ``keras.Model`` named ``<backbone>_retrieval`` whose output is ``cosines``.
    """
    if not isinstance(settings, config.ModelConfig):
        settings = config.ModelConfig.from_params(settings)
    kind = settings.model
    if kind not in models.ARCHITECTURES:
        raise ValueError(f"unknown backbone {kind!r}: expected one of {sorted(models.ARCHITECTURES)}")
    base = models.build(settings, num_classes)
    features = base.get_layer(models.ARCHITECTURES[kind].FEATURES).input
    _, cosines = embedding_head(features, num_classes, embedding_dim, gem_p)
    model = keras.Model(base.input, cosines, name=f"{kind}_retrieval")
    for attr in (
        "weights_source",
        "weights_note",
        "backbone_params",
        "augment_mode",
        "augmentation",
        "pretrained",
        "backbone_layers",
        "init_from",
    ):
        if hasattr(base, attr):
            setattr(model, attr, getattr(base, attr))
    return model


def embedding_of(model):
    """The image -> embedding part of a retrieval model (shares its weights)."""
    return keras.Model(model.input, model.get_layer("embedding").output, name=f"{model.name}_embedding")


_EMBEDDERS = weakref.WeakKeyDictionary()  # retrieval model -> its embedding_of part, made once


def _embedder(model):
    """``model`` itself when it ends in the embedding, else its ``embedding_of`` part (one per model:
    each new ``keras.Model`` would trace its inference function again)."""
    if model.layers[-1].name == "embedding":
        return model
    net = _EMBEDDERS.get(model)
    if net is None:
        net = _EMBEDDERS[model] = embedding_of(model)
    return net


def load_model(path: str | os.PathLike):
    """Load a saved retrieval model (``models`` registers the project's Keras classes on import)."""
    return keras.saving.load_model(paths.resolve(path))


def embed(
    model,
    x: np.ndarray | None = None,
    frame: pd.DataFrame | None = None,
    input_size: int | None = None,
    batch_size: int = 64,
    tta: str = evaluate.DEFAULT_TTA,
) -> np.ndarray:
    """L2-normalised embeddings (N, D) float32 of images, given as an array or as rows with ``path``.

    Args:
        model: a retrieval model (``embedding_model``) or its ``embedding_of`` part.
        x: images (N, S, S, 3) in 0..255.
        frame: rows with ``path`` instead (decoded batch by batch with ``pipeline.batches``).
        input_size: the model's input size (default: read from the model).
        batch_size: images per forward pass.
        tta: ``evaluate.TTA_MODES``: ``"flip"`` embeds each image and its mirror image and
            normalises their sum (an image and its mirror image then get the same embedding).
    """
    net = _embedder(model)
    size = int(input_size or model.input_shape[1])
    dim = int(net.output_shape[-1])
    # the inference function (the model's one output here), traced once per model whatever the
    # batch sizes; Keras' predict traced again for a last partial batch and for arrays after batches
    if x is not None:
        if len(x) == 0:
            return np.zeros((0, dim), np.float32)
        out = inference.predict_probabilities(net, np.asarray(x, np.float32), batch_size, tta=tta)
    else:
        if frame is None or len(frame) == 0:
            return np.zeros((0, dim), np.float32)
        out = inference.predict_probabilities(net, pipeline.batches(frame, size, batch_size), tta=tta)
    return _normalise(np.asarray(out, np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (rows already of unit length, to float32 precision, kept as they are)."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1) < 1e-6):
        return x
    return x / np.maximum(norms, 1e-12)


# --------------------------------------------------------------------------- the index


def faiss_available() -> bool:
    """Whether ``faiss`` (``pip install faiss-cpu``) can be imported."""
    try:
        import faiss  # noqa: F401  (optional, the `knn` extra: only whether it is there)
    except ImportError:
        return False
    return True


POSTPROCESS_KEYS = ("dba_k", "qe_k", "alpha")
"""The keys of ``EmbeddingIndex.postprocess``."""


@dataclass
class EmbeddingIndex:
    """Embeddings of labelled images, searched by cosine similarity.

    Attributes:
        embeddings: (N, D) float32, L2-normalised (normalised again on creation).
        labels: (N,) class index of each row (``landmark_ids[label]`` is its landmark).
        landmark_ids: the landmark of each class index (the model's label map).
        ids: (N,) image ids (strings), for galleries.
        paths: (N,) image files (strings, may be empty), for galleries.
        tta: the test-time augmentation the rows were embedded with (``embed``'s); queries
            should be embedded alike (``predict`` does so by default).
        postprocess: how its model's answers were made from it, the settings its saved threshold was
            chosen with: ``dba_k``, ``qe_k``, ``alpha`` (``predict``'s defaults); empty: the plain vote.
            A record only: ``dba`` and ``knn_vote`` apply what they are given.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    landmark_ids: list[int]
    ids: np.ndarray | None = None
    paths: np.ndarray | None = None
    tta: str = evaluate.DEFAULT_TTA
    postprocess: dict = field(default_factory=dict)

    def __post_init__(self):
        self.embeddings = (
            _normalise(np.atleast_2d(self.embeddings))
            if len(self.embeddings)
            else np.zeros((0, int(np.shape(self.embeddings)[-1]) if np.ndim(self.embeddings) == 2 else 0), np.float32)
        )
        self.labels = np.asarray(self.labels, np.int64).ravel()
        self.landmark_ids = [int(v) for v in self.landmark_ids]
        n = len(self.embeddings)
        if len(self.labels) != n:
            raise ValueError(f"{n} embeddings but {len(self.labels)} labels")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.landmark_ids)):
            raise ValueError(f"labels must be class indexes in [0, {len(self.landmark_ids)})")
        self.ids = np.asarray(self.ids if self.ids is not None else [str(i) for i in range(n)], dtype=object)
        self.paths = np.asarray(self.paths if self.paths is not None else [""] * n, dtype=object)
        self.postprocess = dict(self.postprocess or {})
        unknown = sorted(set(self.postprocess) - set(POSTPROCESS_KEYS))
        if unknown:
            raise ValueError(f"postprocess: unknown keys {unknown} (expected some of {POSTPROCESS_KEYS})")
        self._faiss = None

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def backend(self, backend: str = "auto") -> str:
        """``"numpy"`` or ``"faiss"``: what ``search`` will use for ``backend``."""
        if backend == "numpy":
            return "numpy"
        if backend == "faiss":
            if not faiss_available():
                raise ImportError("backend='faiss' needs faiss (pip install faiss-cpu)")
            return "faiss"
        if backend != "auto":
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', not {backend!r}")
        return "faiss" if len(self) >= FAISS_MIN_ROWS and faiss_available() else "numpy"

    def search(
        self, queries: np.ndarray, k: int, backend: str = "auto", chunk: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar index rows of each query.

        Float32 similarities depend on how the backend sums (BLAS blocks, FAISS kernels): two copies
        of one image, a common sight in landmark sets, can differ by a rounding step and swap places.
        So a backend only proposes candidates, and their similarities are computed again in float64,
        one row at a time and the same way whichever backend proposed them: equal rows get equal
        similarities, ordered by row, and NumPy and FAISS return the same neighbours. Queries whose
        candidates may have left out a row that belongs among their ``k`` (one within
        ``RERANK_TOLERANCE`` of the k-th similarity) are asked again with twice the candidates.

        Args:
            queries: (Q, D) embeddings (normalised here).
            k: neighbours per query (at most the index size is returned).
            backend: ``"auto"``, ``"numpy"`` or ``"faiss"`` (exact inner-product search either way).
            chunk: queries per NumPy matrix product (bounds the memory: chunk x N floats).

        Returns:
            ``(similarities (Q, k_eff) float32, rows (Q, k_eff) int64)``, most similar first;
            equal similarities are ordered by index row, lower first.
        """
        q = _normalise(np.atleast_2d(queries)) if len(queries) else np.zeros((0, self.dim), np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.dim}")
        k_eff = min(int(k), len(self))
        if k_eff < 1 or len(q) == 0:
            return np.zeros((len(q), max(k_eff, 0)), np.float32), np.zeros((len(q), max(k_eff, 0)), np.int64)
        propose = self._faiss_candidates if self.backend(backend) == "faiss" else self._numpy_candidates
        sims_out = np.empty((len(q), k_eff), np.float32)
        rows_out = np.empty((len(q), k_eff), np.int64)
        todo, n_cand = np.arange(len(q)), min(len(self), 2 * k_eff + 8)
        while len(todo):
            again = []
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                cand_sims, cand_rows = propose(q[part], n_cand)
                sims, rows, complete = self._rerank(q[part], cand_sims, cand_rows, k_eff)
                sims_out[part], rows_out[part] = sims, rows
                again.append(part[~complete] if n_cand < len(self) else part[:0])
            todo, n_cand = np.concatenate(again), min(len(self), 2 * n_cand)
        return sims_out, rows_out

    def _numpy_candidates(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` rows of highest float32 similarity per query (unordered) and their similarities."""
        s = q @ self.embeddings.T
        rows = np.argpartition(-s, n - 1, axis=1)[:, :n] if n < s.shape[1] else np.broadcast_to(np.arange(n), s.shape)
        return np.take_along_axis(s, rows, 1), np.ascontiguousarray(rows, np.int64)

    def _faiss_candidates(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """As ``_numpy_candidates``, by a FAISS exact inner-product index (built on first use)."""
        import faiss  # optional (the `knn` extra): imported only when this backend is chosen

        if self._faiss is None:
            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(np.ascontiguousarray(self.embeddings))
        sims, rows = self._faiss.search(np.ascontiguousarray(q), n)
        return sims, rows.astype(np.int64)

    def _rerank(self, q: np.ndarray, cand_sims: np.ndarray, cand_rows: np.ndarray, k: int, block: int = 2**22):
        """The ``k`` best candidates by float64 similarity, ties by row, and whether that is certain.

        A query's answer is certain when every candidate set is the whole index or when the lowest
        float32 candidate similarity lies more than ``RERANK_TOLERANCE`` below the k-th float64 one (a
        row left out had a float32 similarity at most that, so it cannot belong among the ``k``).
        """
        n_q, n_c = cand_rows.shape
        exact = np.empty((n_q, n_c), np.float64)
        step = max(1, block // max(1, n_c * self.dim))  # queries at a time: bounds the (step, n_c, D) gather
        for s in range(0, n_q, step):
            rows = self.embeddings[cand_rows[s : s + step]].astype(np.float64)
            # an elementwise product summed along the last axis: the same sum, in the same order, for equal rows
            exact[s : s + step] = (rows * q[s : s + step, None, :].astype(np.float64)).sum(axis=-1)
        order = np.lexsort((cand_rows, -exact), axis=-1)[:, :k]
        best, rows = np.take_along_axis(exact, order, 1), np.take_along_axis(cand_rows, order, 1)
        complete = cand_sims.min(axis=1) < best[:, -1] - RERANK_TOLERANCE
        return best.astype(np.float32), rows, complete | (n_c >= len(self))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to ``path`` (``.npz``, atomically); returns the path."""
        path = paths.resolve(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            embeddings=self.embeddings,
            labels=self.labels,
            landmark_ids=np.asarray(self.landmark_ids, np.int64),
            ids=np.asarray([str(v) for v in self.ids], dtype=str),
            paths=np.asarray([str(v) for v in self.paths], dtype=str),
            meta=np.asarray(
                json.dumps(
                    {
                        "format": "landmarks-embedding-index",
                        "version": 1,
                        "tta": self.tta,
                        "postprocess": self.postprocess,
                    }
                )
            ),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingIndex:
        """Read an index written by ``save``.

        Raises:
            ValueError: the file is not such an index (names it).
        """
        path = paths.resolve(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                if meta.get("format") != "landmarks-embedding-index":
                    raise ValueError("wrong format")
                return cls(
                    embeddings=f["embeddings"],
                    labels=f["labels"],
                    landmark_ids=f["landmark_ids"].tolist(),
                    ids=f["ids"].astype(object),
                    paths=f["paths"].astype(object),
                    tta=meta.get("tta", "none"),  # version 1 files before test-time augmentation: none
                    postprocess=meta.get("postprocess", {}),  # files before the post-processing: the plain vote
                )
        except (KeyError, ValueError, OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not an embedding index written by EmbeddingIndex.save ({err})") from err


def index_path(model_path: str | os.PathLike) -> Path:
    """Where a retrieval model's index lives: ``<name>.index.npz`` beside ``<name>.keras``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".keras") + ".index.npz")


def build_index(
    model,
    frame: pd.DataFrame,
    landmark_ids: Sequence[int],
    input_size: int | None = None,
    batch_size: int = 64,
    tta: str = evaluate.DEFAULT_TTA,
    embeddings: np.ndarray | None = None,
) -> EmbeddingIndex:
    """The index of labelled rows (``path``, ``label``, ``id``), embedded with ``model`` (``embed``'s ``tta``),
    or given their ``embeddings`` already (one row each, in ``frame``'s order)."""
    if embeddings is None:
        embeddings = embed(model, frame=frame, input_size=input_size, batch_size=batch_size, tta=tta)
    if len(embeddings) != len(frame):
        raise ValueError(f"{len(embeddings)} embeddings for {len(frame)} rows")
    return EmbeddingIndex(
        embeddings,
        frame["label"].to_numpy(),
        list(landmark_ids),
        ids=frame["id"].astype(str).to_numpy() if "id" in frame else None,
        paths=frame["path"].astype(str).to_numpy() if "path" in frame else None,
        tta=tta,
    )


# --------------------------------------------------------------------------- post-processing: DBA and alpha-QE


def alpha_weights(similarities: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``s ** alpha`` where ``s > 0``, else 0 (float64): the neighbours' weights of ``dba`` and ``expand_queries``."""
    if alpha < 0:
        raise ValueError(f"alpha must be 0 or more, not {alpha}")
    s = np.asarray(similarities, np.float64)
    return np.where(s > 0, np.maximum(s, 0.0) ** float(alpha), 0.0)


def _expand(
    vectors: np.ndarray, neighbours: np.ndarray, weights: np.ndarray, embeddings: np.ndarray, block: int = 2**22
) -> np.ndarray:
    """``unit(v + sum_j w_j x_j)`` per row (float64 sums, float32 result), ``x_j = embeddings[neighbours]``;
    in blocks of rows (bounds the (rows, k, D) gather)."""
    n, k = neighbours.shape
    out = np.empty((n, embeddings.shape[1]), np.float32)
    step = max(1, block // max(1, k * embeddings.shape[1]))
    for s in range(0, n, step):
        rows = embeddings[neighbours[s : s + step]].astype(np.float64)  # (b, k, D)
        v = vectors[s : s + step].astype(np.float64) + (weights[s : s + step, :, None] * rows).sum(axis=1)
        # |v| >= 1: v's own unit vector plus neighbours at positive similarity only
        out[s : s + step] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def dba(index: EmbeddingIndex, k: int, alpha: float = DEFAULT_ALPHA, backend: str = "auto") -> EmbeddingIndex:
    """Database-side augmentation: each row becomes ``unit(x_i + sum_j w(s_ij) x_j)`` over its ``k`` most similar
    other rows (module docstring), computed once on the whole index.

    Args:
        index: the index (unchanged).
        k: neighbours per row (at most the index size - 1); 0: ``index`` itself is returned.
        alpha: the weights' exponent (``alpha_weights``).
        backend: the search backend.

    Returns:
        A new index with the augmented embeddings and everything else of ``index`` (labels, ids, paths,
        tta, postprocess); or ``index`` itself when there is nothing to add.
    """
    n = len(index)
    k = min(int(k), n - 1)
    if k <= 0:
        return index
    sims, rows = index.search(index.embeddings, k + 1, backend=backend)
    # leave each row itself out; where copies of it (similarity 1, lower rows first) pushed it out of
    # its k + 1, leave out the last of them instead: the k most similar other rows either way
    keep = rows != np.arange(n)[:, None]
    keep[keep.all(axis=1), -1] = False
    sims, rows = sims[keep].reshape(n, k), rows[keep].reshape(n, k)
    augmented = _expand(index.embeddings, rows, alpha_weights(sims, alpha), index.embeddings)
    return replace(index, embeddings=augmented)


def expand_queries(
    index: EmbeddingIndex, queries: np.ndarray, k: int, alpha: float = DEFAULT_ALPHA, backend: str = "auto"
) -> np.ndarray:
    """Alpha query expansion: each query becomes ``unit(q + sum_i w(s_i) x_i)`` over its ``k`` nearest index
    rows (module docstring); search the index again with the result.

    Args:
        index: the index the queries are voted on (after ``dba``, if any).
        queries: (Q, D) query embeddings.
        k: index rows per query (at most the index size); 0: ``queries`` are returned as they are.
        alpha: the weights' exponent (``alpha_weights``).
        backend: the search backend.

    Returns:
        (Q, D) float32 unit vectors.
    """
    if int(k) <= 0 or len(index) == 0 or len(queries) == 0:
        return np.asarray(queries, np.float32)
    q = _normalise(np.atleast_2d(queries))
    sims, rows = index.search(q, k, backend=backend)
    return _expand(q, rows, alpha_weights(sims, alpha), index.embeddings)


# --------------------------------------------------------------------------- the vote


@dataclass
class Vote:
    """The result of ``knn_vote`` for Q queries over C classes.

    Attributes:
        scores: (Q, C) class scores ``S_c`` (see the module docstring).
        predicted: (Q,) predicted class index.
        confidence: (Q,) confidence in [0, 1] (after the non-landmark bank, if any).
        neighbours: (Q, k_eff) index rows of the neighbours, most similar first.
        similarities: (Q, k_eff) their similarities.
    """

    scores: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    neighbours: np.ndarray
    similarities: np.ndarray


def vote_from_neighbours(similarities: np.ndarray, neighbour_labels: np.ndarray, n_classes: int) -> tuple:
    """Class scores, prediction and confidence from each query's neighbours (the rule of the module docstring).

    Args:
        similarities: (Q, k) cosine similarities, most similar first.
        neighbour_labels: (Q, k) class index of each neighbour.
        n_classes: number of classes C.

    Returns:
        ``(scores (Q, C), predicted (Q,), confidence (Q,))``.
    """
    sims = np.asarray(similarities, np.float64)
    labels = np.asarray(neighbour_labels, np.int64)
    q, k = sims.shape
    scores = np.zeros((q, n_classes), np.float64)
    if k:
        rows = np.repeat(np.arange(q), k)
        np.add.at(scores, (rows, labels.ravel()), np.maximum(sims, 0.0).ravel() / k)
    predicted = scores.argmax(axis=1)  # first maximum: ties go to the lower class index
    nothing = scores.max(axis=1, initial=0.0) <= 0
    if k:
        predicted[nothing] = labels[nothing, 0]
    confidence = scores[np.arange(q), predicted] if q else np.zeros(0)
    return scores, predicted.astype(np.int64), confidence


def knn_vote(
    index: EmbeddingIndex,
    queries: np.ndarray,
    k: int = DEFAULT_K,
    bank: EmbeddingIndex | None = None,
    bank_weight: float = 1.0,
    backend: str = "auto",
    qe_k: int = 0,
    qe_alpha: float = DEFAULT_ALPHA,
) -> Vote:
    """Vote the class of each query by its ``k`` nearest index rows (rule: module docstring).

    Args:
        index: the labelled embeddings (``dba``'s, for database-side augmentation).
        queries: (Q, D) query embeddings.
        k: neighbours per query.
        bank: optional embeddings of non-landmark images; lowers the confidence of queries close to them.
        bank_weight: how much the bank similarity lowers the confidence.
        backend: the index search backend (``"auto"``, ``"numpy"``, ``"faiss"``).
        qe_k: alpha query expansion over this many index rows before the vote (``expand_queries``); 0: none.
        qe_alpha: its weights' exponent.
    """
    if len(index) == 0:
        raise ValueError("the index is empty: no training image to vote with")
    expanded = expand_queries(index, queries, qe_k, qe_alpha, backend=backend)
    sims, rows = index.search(expanded, k, backend=backend)
    scores, predicted, confidence = vote_from_neighbours(sims, index.labels[rows], len(index.landmark_ids))
    if bank is not None and len(bank):
        bank_sims, _ = bank.search(queries, k, backend=backend)
        penalty = np.maximum(bank_sims, 0).mean(axis=1)
        confidence = np.maximum(0.0, confidence - float(bank_weight) * penalty)
    return Vote(
        scores=scores,
        predicted=predicted,
        confidence=np.asarray(confidence, np.float64),
        neighbours=rows,
        similarities=sims,
    )


# --------------------------------------------------------------------------- prediction


def predict(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    index: str | os.PathLike | None = None,
    threshold: float = 0.0,
    k: int = DEFAULT_K,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    tta: str | None = None,
    qe_k: int | None = None,
    dba_k: int | None = None,
    alpha: float | None = None,
) -> pd.DataFrame:
    """Predict the landmark of every test image by the kNN vote; ``landmarklib.predict``'s table.

    Args:
        model_path: a saved retrieval model (``.keras``).
        images: a fetched test folder, a folder of images, or a test CSV (``predict.core.load_test_images``).
        index: the saved index (default ``index_path(model_path)``).
        threshold: a prediction is answered when its confidence is at or above it.
        k: neighbours per query.
        batch_size: images per forward pass.
        top_k: how many landmark ids ``top_ids`` lists (by class score, ties by class index).
        fetch_dir: where a CSV's images are fetched.
        progress: show progress bars.
        tta: test-time augmentation of the queries (``evaluate.TTA_MODES``); default: the index's own.
        qe_k: alpha query expansion over this many index rows (``expand_queries``; 0: none).
        dba_k: database-side augmentation of the index with this many neighbours per row (``dba``; 0: none).
        alpha: the exponent of both's weights.
            Each default: the index's own (``EmbeddingIndex.postprocess``: what its model's threshold was
            chosen with), else 0, 0 and ``DEFAULT_ALPHA``.

    Returns:
        DataFrame(id, landmark_id (Int64), confidence, answered, top_ids, error), in test-id order.
    """
    model_path = paths.resolve(model_path)
    model = load_model(model_path)
    idx = EmbeddingIndex.load(index or index_path(model_path))
    tta = idx.tta if tta is None else tta
    own = {"qe_k": 0, "dba_k": 0, "alpha": DEFAULT_ALPHA, **idx.postprocess}
    qe_k = int(own["qe_k"] if qe_k is None else qe_k)
    dba_k = int(own["dba_k"] if dba_k is None else dba_k)
    alpha = float(own["alpha"] if alpha is None else alpha)
    idx = dba(idx, dba_k, alpha)
    size = int(model.input_shape[1])
    net = embedding_of(model)
    tests = core.load_test_images(images, size, fetch_dir=fetch_dir, progress=progress)
    n = len(tests)
    best = np.full(n, -1, np.int64)
    conf = np.full(n, np.nan)
    tops = np.full(n, "", dtype=object)
    errors = tests["error"].fillna("").to_numpy(dtype=object)
    readable = np.flatnonzero(tests["path"].notna().to_numpy())
    chunk = max(1, batch_size) * 8
    ids = np.asarray(idx.landmark_ids, np.int64)
    with tqdm(total=len(readable), desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, len(readable), chunk):
            rows = readable[start : start + chunk]
            files = tests["path"].iloc[rows].tolist()
            bad: dict[str, str] = {}
            x = data.load_images(files, size, errors=bad, progress=False)
            good = np.array([f not in bad for f in files], dtype=bool)
            if good.any():
                vote = knn_vote(
                    idx, embed(net, x[good], batch_size=batch_size, tta=tta), k=k, qe_k=qe_k, qe_alpha=alpha
                )
                best[rows[good]] = vote.predicted
                conf[rows[good]] = vote.confidence
                tops[rows[good]] = [" ".join(map(str, ids[r])) for r in evaluate.strict_top_k(vote.scores, top_k)]
            errors[rows[~good]] = [bad[f] for f, ok in zip(files, good) if not ok]
            bar.update(len(rows))
    return core.prediction_frame(tests["id"], ids, best, conf, tops, errors, threshold)


def describe_backend(index: EmbeddingIndex, backend: str = "auto") -> str:
    """One line: index size and the search backend ``auto`` picks, for reports."""
    chosen = index.backend(backend)
    why = (
        f"FAISS from {FAISS_MIN_ROWS:,} rows on"
        if chosen == "faiss"
        else "NumPy brute force" + ("" if faiss_available() else " (faiss-cpu not installed)")
    )
    return f"{len(index):,} embeddings of dimension {index.dim}, exact cosine search: {why}"
