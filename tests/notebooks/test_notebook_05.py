"""Notebook 05 executed by papermill on a tiny Res-Incep trained here for one epoch."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from conftest import training_metrics

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_visualize_filters.ipynb"
LANDMARKS = [3, 8, 15, 42]
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def _train_folder(root: Path) -> Path:
    """DIR/<landmark_id>/<id>.jpg: 10 noisy 32 px images per landmark, one colour per landmark."""
    rng = np.random.default_rng(0)
    for lid, colour in zip(LANDMARKS, COLOURS):
        folder = root / str(lid)
        folder.mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{lid}_{i}.jpg", "JPEG")
    return root


@pytest.mark.slow
def test_notebook_05_figures_and_metrics(tmp_path, run_notebook):
    from landmarklib import config, data, metrics
    from landmarklib.nets import res_incep, train
    from landmarklib.visualize import network

    train_dir = _train_folder(tmp_path / "train")
    models_dir = tmp_path / "models"
    reports = tmp_path / "reports"
    # notebook 03's split, recorded in its metrics: the notebook must use it, not its own defaults
    split = data.load_split(train_dir, min_images=2, val_fraction=0.25, seed=7)
    train.set_seed(7)
    # one block per stage keeps tracing short and still has more than 24 Conv2D layers
    model = res_incep.res_incep(
        (32, 32, 3), len(split.landmark_ids), filters=(4, 4, 4, 4), blocks=(1, 1, 1, 1), stem_filters=6, dense_units=8
    )
    settings = config.TrainConfig(epochs=1, batch_size=8, models_dir=str(models_dir), seed=7)
    train.train(model, split, settings, name="res_incep", progress=False)
    convs = [layer.name for layer in network.conv_layers(model)]
    metrics.save("03_res_incep", training_metrics(min_images=2, val_fraction=0.25, seed=7), reports)
    executed = run_notebook(
        "05",
        tmp_path / "05.ipynb",
        {
            "models_dir": str(models_dir),
            "train_dir": str(train_dir),
            "n_cam": 2,
            "seed": 1,
            "val_fraction": 0.5,
            "reports_dir": str(reports),
        },
    )

    m = json.loads((reports / "metrics" / "05_visualize.json").read_text())
    assert m["model_path"] == str(models_dir / "res_incep.keras")
    assert m["split"] == {"min_images": 2, "val_fraction": 0.25, "seed": 7}
    assert m["n_val_used"] == len(split.val) > 0
    assert m["input_size"] == 32 and m["feature_layers"] == [2, 8, 24]
    roles = m["layer_roles"]
    assert roles["first_conv"] == "stem_conv"
    assert roles["feature_maps"] == [convs[1], convs[7], convs[23]]
    assert roles["grad_cam"] == "stage2_block1_add"  # 32 px: the last block at least 4 px wide
    assert m["layers"] == [roles["first_conv"], roles["deep_conv"], *roles["feature_maps"], roles["grad_cam"]]
    n_right = round(m["val_top1_used"] * m["n_val_used"])
    assert (m["n_cam_correct"], m["n_cam_wrong"]) == (min(2, n_right), min(2, m["n_val_used"] - n_right))

    assert [Path(f["path"]).name for f in m["figures"]] == [
        "05_first_conv_filters.png",
        "05_deep_conv_filters.png",
        "05_feature_maps.png",
        "05_grad_cam.png",
    ]
    for figure in m["figures"]:
        assert (reports / figure["path"]).stat().st_size > 1000
        assert figure["caption"]
    nb = nbformat.read(executed, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(m["figures"])
