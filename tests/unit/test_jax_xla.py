"""Every training kind compiles its train step with XLA on JAX (the GPU box's backend).

Keras turns XLA off for a whole model when one layer cannot be compiled, and then trains op by op
(over 30x slower): the study's augmentation layers did that. Here each kind trains one epoch in a
JAX process with ``jax_log_compiles`` on, and the test asserts that JAX compiled a ``train_step``
(an op-by-op run compiles each primitive, never the step) and that Keras said nothing about
``jit_compile``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_on_jax

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "benchmarks"))
from backends import DEFAULT_KINDS  # noqa: E402  (the training kinds: benchmarks/backends.py owns the list)
from backends import KINDS as ALL_KINDS  # noqa: E402

KINDS = {kind: ALL_KINDS[kind] for kind in DEFAULT_KINDS}
BACKBONE_KINDS = {
    "efficientnet_b0": {"model": "efficientnet_b0", "stochastic_depth": 0.2},
    "convnext_tiny": {"model": "convnext_tiny", "stochastic_depth": 0.2},
    "efficientnet_b0-arcface": {"model": "efficientnet_b0", "loss": "arcface"},
}
"""The keras.applications backbones (random weights, 32 px), with their stochastic depth; one with retrieval's
cosine head and the ArcFace loss."""

SCRIPT = r"""
import io, json, logging, sys, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import jax, keras
assert keras.backend.backend() == "jax", keras.backend.backend()
from conftest import TINY_NETWORK, write_tiny_folder
from landmarklib import config, data
from landmarklib.nets import models, retrieval, train

warnings.simplefilter("always")
work = Path(sys.argv[2])
split = data.load_split(write_tiny_folder(work / "train"), val_fraction=0.34, seed=1)
log = io.StringIO()
logging.getLogger("jax").addHandler(logging.StreamHandler(log))
for kind, changes in json.loads(sys.argv[3]).items():
    network = {**TINY_NETWORK, **{k: v for k, v in changes.items() if k in ("augment", "model", "stochastic_depth")}}
    if network["model"] != "res_incep":  # a keras.applications backbone: random weights, no download
        network.update(weights=None, weights_download_timeout=0)
    recipe = config.MODERN_RECIPE if changes.get("recipe") == "modern" else {"learning_rate": 1e-3}
    loss = {k: v for k, v in changes.items() if k == "loss"}
    settings = config.TrainConfig.from_params(recipe, epochs=1, batch_size=8, models_dir=str(work / kind), **loss)
    train.set_seed(0)
    model_config = config.ModelConfig.from_params(network)
    if "loss" in changes:
        model = retrieval.embedding_model(model_config, len(split.landmark_ids), embedding_dim=8)
    else:
        model = models.build(model_config, len(split.landmark_ids))
    log.seek(0); log.truncate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.config.update("jax_log_compiles", True)
        result = train.train(model, split, settings, name=kind, progress=False)
        jax.config.update("jax_log_compiles", False)
    compiled = [line for line in log.getvalue().splitlines() if line.startswith("Compiling ")]
    print("RESULT " + json.dumps({
        "kind": kind,
        "jit_compile": bool(model.jit_compile),
        "train_step_compiled": any(line.startswith("Compiling jit(train_step)") for line in compiled),
        "augment_mode": result.settings["augment_mode"],
        "jit_warnings": [str(w.message) for w in caught if "jit_compile" in str(w.message)],
        "finite": bool(result.history["loss"].notna().all()),
        "drop_layers": sorted({f"{type(layer).__module__}.{type(layer).__name__}" for layer in model.layers
                               if layer.name.endswith(("_drop", "_stochastic_depth"))}),
    }), flush=True)
"""


def train_on_jax(work: Path, kinds: dict[str, dict]) -> dict[str, dict]:
    """Each kind trained one epoch in one JAX process (``SCRIPT``): kind -> what it reported."""
    return {row["kind"]: row for row in run_on_jax(SCRIPT, work, json.dumps(kinds))}


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory) -> dict[str, dict]:
    return train_on_jax(tmp_path_factory.mktemp("jax-xla"), KINDS)


@pytest.fixture(scope="module")
def backbone_runs(tmp_path_factory) -> dict[str, dict]:
    return train_on_jax(tmp_path_factory.mktemp("jax-xla-backbones"), BACKBONE_KINDS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_train_step_is_compiled_by_xla_on_jax(jax_runs, kind):
    run = jax_runs[kind]
    assert run["jit_compile"] is True and run["train_step_compiled"] is True, run
    assert run["jit_warnings"] == [] and run["finite"], run
    expected = KINDS[kind].get("augment")
    assert run["augment_mode"] == expected  # the augmented kinds really trained augmented


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(BACKBONE_KINDS))
def test_the_keras_applications_backbones_train_compiled_by_xla_on_jax(backbone_runs, kind):
    """EfficientNet-B0 and ConvNeXt-Tiny (``nets.applications``), their stochastic depth on: ConvNeXt's is the
    project's seeded layer (Keras' own draws unseeded numbers, which JAX refuses in a compiled step)."""
    run = backbone_runs[kind]
    assert run["jit_compile"] is True and run["train_step_compiled"] is True, run
    assert run["jit_warnings"] == [] and run["finite"], run
    expected = {
        "efficientnet_b0": ["keras.src.layers.regularization.dropout.Dropout"],
        "convnext_tiny": ["landmarklib.nets.layers.StochasticDepth"],
        "efficientnet_b0-arcface": [],
    }
    assert run["drop_layers"] == expected[kind], run


def test_a_model_xla_cannot_compile_is_refused_on_jax_not_trained_op_by_op(tmp_path):
    """``train.compile_model`` refuses, naming the layer, instead of Keras' silent op-by-op fallback."""
    script = r"""
import warnings
import keras
from keras import layers
from landmarklib import config
from landmarklib.nets import train
inputs = keras.Input((8, 8, 3))
x = layers.RandomZoom(0.2, name="zoom")(inputs)
model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(x)))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Keras' own warning comes first; the error is what matters
    try:
        train.compile_model(model, config.TrainConfig())
    except RuntimeError as err:
        print("REFUSED", err)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "REFUSED" in out.stdout and "RandomZoom" in out.stdout and "op by op" in out.stdout, out.stdout
