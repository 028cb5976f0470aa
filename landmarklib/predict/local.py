"""The local prediction engine: this process loads the model once and predicts in chunks of ``8 * batch_size``."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .. import paths
from ..evaluate import DEFAULT_THRESHOLD, DEFAULT_TTA
from ..nets import inference, models
from . import core


def predict_local(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    tta: str = DEFAULT_TTA,
) -> pd.DataFrame:
    """``landmarklib.predict.predict`` in this process (the same arguments and table)."""
    model, landmark_ids = models.load(paths.resolve(model_path))
    size = int(model.input_shape[1])
    tests = core.load_test_images(images, size, fetch_dir=fetch_dir, progress=progress)
    readable = np.flatnonzero(tests["path"].notna().to_numpy())
    found = inference.predict_chunks(
        model, landmark_ids, tests["path"].iloc[readable].tolist(), size, batch_size, top_k, progress=progress, tta=tta
    )
    return core.table(tests, readable, found, landmark_ids, threshold)
