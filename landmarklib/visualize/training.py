"""Figures of training (notebooks 03 and 04).

curves        loss and accuracy per epoch, training and validation: the study's
              figures 11-12 (Res-Incep) and 13-14 (ResNet-50), as two panels
variants      validation top-1 and top-5 of several trained variants, with chance
block_diagram the layer graph of one residual-inception block (the study's figure 10),
              drawn from the model's own layers with matplotlib boxes and arrows
layer_graph   the model's layer graph, ``name -> names of the layers feeding it``
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

_TRAIN = "#3a6ea5"
_VAL = "#d1603d"
# Box colours of the block diagram, by layer class (the study's figures 4-5 colour key).
_KIND_COLORS = {
    "Conv2D": "#9ecae1",
    "BatchNormalization": "#fdd49e",
    "LeakyReLU": "#a1d99b",
    "MaxPooling2D": "#fc9272",
    "Concatenate": "#d9d9d9",
    "Add": "#bcbddc",
}
_OTHER_COLOR = "#f0f0f0"


def curves(history: pd.DataFrame, title: str = "Training"):
    """Loss (left) and accuracy (right) per epoch, for training and validation.

    Args:
        history: one row per epoch with ``epoch``, ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy`` (as ``train.TrainResult.history``);
            ``top5``/``val_top5`` are drawn dashed when present.
        title: the figure title (e.g. the model's name).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = history["epoch"].to_numpy()
    marker = "o" if len(epochs) <= 30 else None
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "top-1 accuracy")):
        ax.plot(epochs, history[key], color=_TRAIN, marker=marker, label=f"training {label}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], color=_VAL, marker=marker, label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
    for column, color, label in (("top5", _TRAIN, "training top-5"), ("val_top5", _VAL, "validation top-5")):
        if column in history:
            ax_acc.plot(epochs, history[column], color=color, linestyle="--", alpha=0.7, label=label)
    if history["loss"].max() > 0 and history.get("val_loss", history["loss"]).max() > 20 * history["loss"].max():
        ax_loss.set_yscale("log")  # an early validation loss can dwarf the rest
    ax_acc.set_ylim(0, 1.02)
    ax_loss.set_title("Loss")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def variants(table: pd.DataFrame, title: str = "Variants on the validation rows"):
    """Validation top-1 and top-5 accuracy of each variant as grouped bars; chance as a tick.

    Args:
        table: one row per variant with ``name``, ``val_top1``, ``val_top5`` and,
            optionally, ``chance`` (1 / classes) and ``majority`` (the most
            frequent class's share of the validation rows).
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * len(table) + 2), 4))
    x = np.arange(len(table))
    width = 0.38
    top1 = ax.bar(x - width / 2, table["val_top1"], width, color=_TRAIN, label="top-1")
    top5 = ax.bar(x + width / 2, table["val_top5"], width, color=_VAL, alpha=0.8, label="top-5")
    ax.bar_label(top1, fmt="%.2f", fontsize=8, padding=2)
    ax.bar_label(top5, fmt="%.2f", fontsize=8, padding=2)
    for column, style, label in (("chance", "k_", "chance (1 / classes)"), ("majority", "kx", "most frequent class")):
        if column in table:
            ax.plot(
                x - width / 2,
                table[column],
                style,
                markersize=18 if style == "k_" else 7,
                markeredgewidth=2,
                label=label,
            )
    ax.set_xticks(x, table["name"].astype(str))
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def _keras_histories(value) -> list[str]:
    """Names of the layers whose outputs appear in a serialized node argument."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [name for v in value.values() for name in _keras_histories(v)]
    if isinstance(value, (list, tuple)):
        return [name for v in value for name in _keras_histories(v)]
    return []


def layer_graph(model) -> dict[str, list[str]]:
    """The model's layer graph from its config: ``layer name -> names of the layers feeding it``.

    Works for any functional Keras model, under every backend.
    """
    graph: dict[str, list[str]] = {}
    for layer in model.get_config()["layers"]:
        inbound = _keras_histories(layer.get("inbound_nodes", []))
        graph[layer["name"]] = list(dict.fromkeys(inbound))
    return graph


def _label(layer) -> str:
    """A box label: the layer's kind, kernel and width, and its output shape."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Conv2D":
        k = config["kernel_size"]
        stride = config["strides"][0]
        text = f"Conv {k[0]}x{k[1]}, {config['filters']}" + (f", /{stride}" if stride > 1 else "")
        if config.get("activation") not in (None, "linear"):
            text += f", {config['activation']}"
    elif kind == "MaxPooling2D":
        text = f"MaxPool {config['pool_size'][0]}x{config['pool_size'][1]}"
    elif kind == "BatchNormalization":
        text = "BatchNorm"
    else:
        text = kind
    shape = "x".join(str(d) for d in tuple(layer.output.shape)[1:])
    return f"{text}\n{shape}"


_BRANCHES = ("b1", "b2", "b3", "b4")
_MAIN_COLUMN, _SHORTCUT_COLUMN, _COLUMN_WIDTH, _ROW_HEIGHT = 1.5, 4.3, 2.4, 1.25


def _branch(name: str, block: str) -> int | None:
    """The inception branch (0-3) a layer of ``block`` belongs to, or None."""
    suffix = name[len(block) + 1 :]
    return next((i for i, b in enumerate(_BRANCHES) if suffix.startswith(b + "_")), None)


def _column(name: str, block: str) -> float:
    """Horizontal place of a layer in the block figure: branches side by side, shortcut on the right."""
    if not name.startswith(block + "_"):
        return _MAIN_COLUMN  # the block's input
    branch = _branch(name, block)
    if branch is not None:
        return float(branch)
    return _SHORTCUT_COLUMN if name == f"{block}_shortcut" else _MAIN_COLUMN


def block_diagram(model, block: str = "stage1_block1", title: str | None = None):
    """One residual-inception block drawn as boxes and arrows from the model's layers.

    Args:
        model: a model built by ``nets.res_incep.res_incep``.
        block: the block's name prefix, e.g. ``"stage1_block1"`` (a block that
            changes width or stride has a 1x1 projection on its shortcut).
        title: the axes title (default names the block).
    """
    graph = layer_graph(model)
    names = [n for n in graph if n.startswith(block + "_")]
    if not names:
        blocks = sorted({n.rsplit("_add", 1)[0] for n in graph if n.endswith("_add")})
        raise ValueError(f"no layer named {block}_*; the model's blocks: {', '.join(blocks)}")
    inputs = [src for n in names for src in graph[n] if src not in names]
    source = inputs[0]
    nodes = [source] + names
    depth = {source: 0}
    for name in names:  # config order is topological: as soon as possible
        depth[name] = 1 + max(depth[src] for src in graph[name])
    for name in reversed(names):  # branch layers as late as possible: branches end side by side
        successors = [n for n in names if name in graph[n]]
        if _branch(name, block) is not None:
            depth[name] = min(depth[n] for n in successors) - 1
    add = f"{block}_add"
    lane = _SHORTCUT_COLUMN * _COLUMN_WIDTH
    position = {n: (_column(n, block) * _COLUMN_WIDTH, -depth[n] * _ROW_HEIGHT) for n in nodes}

    fig, ax = plt.subplots(figsize=(11, 1.0 + 0.85 * (depth[add] + 1)))
    box_w, box_h = 2.1, 0.8
    kinds = set()
    for name in nodes:
        layer = model.get_layer(name)
        kind = type(layer).__name__
        kinds.add(kind)
        x, y = position[name]
        color = "white" if name == source else _KIND_COLORS.get(kind, _OTHER_COLOR)
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor=color,
                edgecolor="#444444",
                linewidth=0.8,
            )
        )
        text = f"input: {name}\n" + _label(layer).split("\n")[1] if name == source else _label(layer)
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5)
    arrow = {"arrowstyle": "-|>", "mutation_scale": 9, "color": "#555555", "linewidth": 0.8}
    for name in names:
        for src in graph[name]:
            (x0, y0), (x1, y1) = position[src], position[name]
            if name == add and src != f"{block}_out":  # the shortcut: down the right-hand lane
                start = (x0, y0 - box_h / 2) if x0 == lane else (x0 + box_w / 2, y0)
                ax.plot([start[0], lane, lane], [start[1], start[1], y1], color=arrow["color"], linewidth=0.8)
                ax.add_patch(FancyArrowPatch((lane, y1), (x1 + box_w / 2, y1), **arrow))
                kind = "1x1 projection" if x0 == lane else "identity"
                ax.text(lane + 0.1, (start[1] + y1) / 2, f"shortcut\n({kind})", fontsize=8, va="center")
            else:
                ax.add_patch(FancyArrowPatch((x0, y0 - box_h / 2), (x1, y1 + box_h / 2), **arrow))
    xs = [p[0] for p in position.values()]
    ys = [p[1] for p in position.values()]
    ax.set_xlim(min(xs) - box_w, max(max(xs), lane) + box_w)
    ax.set_ylim(min(ys) - box_h, max(ys) + box_h)
    ax.set_axis_off()
    handles = [
        Patch(facecolor=_KIND_COLORS.get(k, _OTHER_COLOR), edgecolor="#444444", label=k)
        for k in _KIND_COLORS
        if k in kinds
    ]
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False)
    ax.set_title(title or f"One residual-inception block: {block}")
    fig.tight_layout()
    return fig
