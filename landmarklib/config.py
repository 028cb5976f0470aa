"""Every stage's settings: one frozen dataclass per stage, the defaults of the whole project.

A notebook declares its parameters (papermill's ``parameters`` cell, values equal to the
defaults below: tests/unit/test_config.py checks it) and builds its settings in the next cell:

    split_config = config.SplitConfig.from_params(globals())
    model_config = config.ModelConfig.from_params(globals())
    train_config = config.TrainConfig.from_params(globals())

``from_params`` takes each field from the parameter of the same name (or the name in
``PARAMETERS``: notebook 04 spells its training settings ``benchmark_<field>``); a field
without a parameter keeps its default. Values are checked against the field types: a wrong
type or value raises ``ConfigError`` with one line naming the parameter. A variant is
``dataclasses.replace(config, **changes)`` (checked the same way); ``RunConfig.replace``
routes each change to the stage that owns it.

Adding a setting is one line here: a typed field with its default (and, where a notebook
takes it, the same name in its parameters cell and in ``params/*.yaml``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from . import study


class ConfigError(ValueError):
    """A setting with an unknown name, a wrong type or a value out of range (the message names it)."""


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(v) for v in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "None")


def check_value(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` wants it (int -> float, list -> tuple), or ``ConfigError`` naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return check_value(name, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: {value!r} is not {' | '.join(_type_name(a) for a in args)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: {value!r} is not a list")
        return tuple(check_value(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name}: {value!r} is not None")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{name}: {value!r} is not {_type_name(hint)}")


@dataclass(frozen=True)
class Config:
    """Base of the stage settings: typed fields, checked on construction."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {}
    """Field -> the notebook/YAML parameter that sets it, where the two names differ."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_value(self.parameter(f.name), getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Range checks beyond the types (raise ``ConfigError`` naming the parameter)."""

    @classmethod
    def parameter(cls, name: str) -> str:
        """The parameter name of field ``name``."""
        return cls.PARAMETERS.get(name, name)

    @classmethod
    def parameters(cls) -> dict[str, str]:
        """Parameter name -> field name, for every field."""
        return {cls.parameter(f.name): f.name for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Parameter name -> default value."""
        instance = cls()
        return {p: getattr(instance, name) for p, name in cls.parameters().items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **changes: Any):
        """The settings from a notebook's parameters (``globals()``) or a parameters file.

        Args:
            params: parameter name -> value; names that are not this stage's are ignored.
            changes: field values that win over ``params`` (by field name).
        """
        values = {name: params[p] for p, name in cls.parameters().items() if p in params}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(unknown_message(unknown[0], [f.name for f in dataclasses.fields(cls)], cls.__name__))
        return cls(**{**values, **changes})

    def replace(self, **changes: Any):
        """These settings with some fields changed (by field name), checked: an unknown name or a
        bad value raises ``ConfigError``."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ConfigError(unknown_message(unknown[0], known, type(self).__name__))
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value (tuples as lists), as the metrics files record them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def unknown_message(key: str, known: list[str], where: str) -> str:
    """``"unknown setting 'learning_rat' for TrainConfig (did you mean 'learning_rate'?)"``."""
    # a field named by one word of it first ('size' -> 'image_size', not the closer spelling 'resize')
    close = sorted(k for k in known if k.startswith(f"{key}_") or k.endswith(f"_{key}"))
    close = close or difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    return f"unknown setting {key!r} for {where}{hint}"


def _positive(config: Config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{config.parameter(name)}: must be positive, not {value!r}")


# --------------------------------------------------------------------------- 01 explore


@dataclass(frozen=True)
class ExploreConfig(Config):
    """Notebook 01: how much of the catalog is explored.

    Attributes:
        n_images: the first rows of the catalog taken (the study's 5000); None: every row.
        top_k: landmarks in the most-frequent table and bar chart.
        min_images: landmarks with fewer images are dropped (shown as the filter's effect).
    """

    n_images: int | None = study.N_IMAGES
    top_k: int = 15
    min_images: int = 2

    def check(self) -> None:
        _positive(self, "n_images", "top_k", "min_images")


# --------------------------------------------------------------------------- 02 fetch


@dataclass(frozen=True)
class FetchConfig(Config):
    """Notebook 02, ``landmarks fetch`` and both fetch engines (``fetch.fetch_catalog``,
    ``fetch.dask_engine.fetch_catalog_dask``): how catalog rows become JPEG files.

    Attributes:
        n_images: the first rows of each catalog fetched (the study's 5000); None: every row.
        image_size: side of the square JPEGs written (the study's was 250).
        resize: ``stretch`` (the study's, aspect ratio not kept), ``crop`` or ``pad``.
        workers: downloads in flight (with ``dask``: over the whole cluster).
        timeout: seconds per attempt.
        retries: further attempts after a connection error, a timeout, 5xx or 429.
        backoff: urllib3's backoff factor between attempts (seconds; doubling).
        max_bytes: largest image body (or file) accepted.
        strict: refuse the catalog at its first bad row (``CatalogError``) instead of failing
            each bad row alone (``no url``, ``bad landmark_id``, ``unsafe id``, ``duplicate id``).
        fail_fast_after: consecutive connection failures (DNS, refused, unreachable, TLS) after
            which a host's remaining rows fail at once as ``host unreachable`` (0: never).
        processes: with ``local``: worker processes; None: one per core, none (threads in this
            process) for jobs under 64 rows.
        engine: ``local`` (this machine) or ``dask`` (shards on a Dask cluster, the same manifest).
        scheduler: with ``dask``: a running scheduler's address (``tcp://host:8786``); None: a local cluster.
        dask_workers: with ``dask`` and no scheduler: worker processes of the local cluster; None: one per core.
        shard_rows: with ``dask``: catalog rows per task (10,000, as img2dataset does).
        max_per_host: with ``dask``: requests in flight per host over the whole cluster (0: no limit).
        images: a folder of TAR shards (GLDv2) or of image files (Kaggle 2019-2021, nested
            ``a/b/c/<id>.jpg`` or flat) that holds the catalog's images, read in place instead
            of downloading (``fetch.sources``); None: the catalog's urls.
    """

    PARAMETERS: ClassVar[Mapping[str, str]] = {"engine": "fetch_engine", "scheduler": "dask_scheduler"}

    n_images: int | None = study.N_IMAGES
    image_size: int = 96
    resize: Literal["stretch", "crop", "pad"] = "stretch"
    workers: int = 32
    timeout: float = 20.0
    retries: int = 2
    backoff: float = 0.5
    max_bytes: int = 20 * 2**20
    strict: bool = False
    fail_fast_after: int = 3
    processes: int | None = None
    engine: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    dask_workers: int | None = None
    shard_rows: int = 10_000
    max_per_host: int = 0
    images: str | None = None

    def check(self) -> None:
        _positive(
            self, "n_images", "image_size", "workers", "timeout", "max_bytes", "processes", "dask_workers", "shard_rows"
        )
        for name in ("retries", "backoff", "fail_fast_after", "max_per_host"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{self.parameter(name)}: must be 0 or more, not {getattr(self, name)!r}")


# --------------------------------------------------------------------------- 03/04 split, model, training


@dataclass(frozen=True)
class SplitConfig(Config):
    """Fetched folder -> training and validation rows (``data.load_split``).

    Attributes:
        train_dir: the fetched folder (``<train_dir>/<landmark_id>/<id>.jpg`` + manifest.csv).
        min_images: landmarks with fewer images are left out.
        val_fraction: share of each landmark's images kept for validation.
        seed: seed of the split.
    """

    train_dir: str = "data/processed/default/train"
    min_images: int = 2
    val_fraction: float = 0.2
    seed: int = 42

    def check(self) -> None:
        _positive(self, "min_images")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction: must be in [0, 1), not {self.val_fraction!r}")


@dataclass(frozen=True)
class ModelConfig(Config):
    """Which network ``models.build`` makes, and its shape.

    Attributes:
        model: ``res_incep`` (the study's network) or ``resnet50`` (its benchmark).
        input_size: side of the model's input, in pixels (the study: 250).
        filters: width of each Res-Incep stage (the study: 40, 60, 75, 80).
        blocks: residual-inception blocks per stage (ten in all, as in the study).
        dense_units: width of Res-Incep's hidden Dense layer.
        dropout: dropout rate before the softmax layer.
        augment: the study's random flips, rotation and zoom while training: ``"add"`` (augmented
            copies added to the data, as the study did), ``"replace"`` (or True: each epoch sees one
            augmented version of each image), ``"photo"`` (the modern recipe's random resized crop,
            horizontal flips and colour jitter instead, ``augment.Augmentation``), False: none
            (``models.augment_mode``).
        crop_scale: ``"photo"`` augmentation's random crop: the most it cuts from a side, as a share of it.
        weights: ResNet-50's backbone weights: ``imagenet``, a weights file, or None (random).
        weights_download_timeout: seconds to wait for Keras' download server when the
            ImageNet weights are not cached (0: no try).
    """

    model: Literal["res_incep", "resnet50"] = "res_incep"
    input_size: int = 64
    filters: tuple[int, ...] = (16, 24, 32, 40)
    blocks: tuple[int, ...] = (3, 3, 2, 2)
    dense_units: int = 128
    dropout: float = 0.5
    augment: bool | Literal["add", "replace", "photo"] = False
    crop_scale: float = 0.25
    weights: str | None = "imagenet"
    weights_download_timeout: float = 3.0

    def check(self) -> None:
        _positive(self, "input_size", "dense_units")
        if len(self.filters) != len(self.blocks):
            raise ConfigError(f"filters {self.filters} and blocks {self.blocks} need one entry per stage")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: must be in [0, 1), not {self.dropout!r}")
        if not 0 <= self.crop_scale < 1:
            raise ConfigError(f"crop_scale: must be in [0, 1), not {self.crop_scale!r}")


@dataclass(frozen=True)
class BenchmarkModelConfig(ModelConfig):
    """Notebook 04's network: the study's ResNet-50 benchmark (``benchmark_weights`` in the parameters)."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {"weights": "benchmark_weights"}

    model: Literal["res_incep", "resnet50"] = "resnet50"


@dataclass(frozen=True)
class TrainConfig(Config):
    """How ``train.train`` fits a model (notebook 03: Res-Incep).

    Attributes:
        epochs: epochs to train, at most (the study: 30).
        batch_size: images per step (the study: 8).
        optimizer: ``sgd`` (the study's for Res-Incep) or ``rmsprop`` (its ResNet-50).
        learning_rate: step size; with SGD, 0.01 and above collapsed to the majority
            landmark on the embedded sample (measured).
        momentum: SGD's momentum (RMSprop has none).
        early_stopping_patience: epochs without a better validation accuracy before
            stopping; None: never.
        models_dir: where the model, its label map and its history are written.
        seed: seed of the backend, the shuffling and the dropout.
        deterministic: deterministic kernels (the same parameters give the same numbers
            on one machine).
        weight_decay: AdamW's decoupled weight decay (the modern recipe: 0.05; ignored by SGD and RMSprop).
        lr_schedule: ``constant`` (the study's) or ``warmup_cosine``: linear warmup over
            ``warmup_epochs``, then cosine decay to ``min_lr_fraction`` of the peak (``recipes``).
        warmup_epochs: epochs of linear warmup (may be fractional).
        min_lr_fraction: the cosine's last learning rate, as a share of the peak.
        label_smoothing: share of the target spread over every class (the modern recipe: 0.1).
        loss: ``crossentropy`` (softmax models), or ``arcface`` / ``cosface`` (the cosine head of
            ``retrieval.embedding_model``), with ``margin`` and ``scale``.
        margin: the additive angular (ArcFace, radians) or cosine (CosFace) margin.
        scale: the logits' scale of the margin losses.
    """

    epochs: int = 6
    batch_size: int = 32
    optimizer: Literal["sgd", "rmsprop", "adamw"] = "sgd"
    learning_rate: float = 0.002
    momentum: float = 0.9
    early_stopping_patience: int | None = None
    models_dir: str = "models/default"
    seed: int = 42
    deterministic: bool = True
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "warmup_cosine"] = "constant"
    warmup_epochs: float = 0.0
    min_lr_fraction: float = 0.0
    label_smoothing: float = 0.0
    loss: Literal["crossentropy", "arcface", "cosface"] = "crossentropy"
    margin: float = 0.4  # chosen on validation queries (reports/benchmarks/recognition.md): 0.2 and 0.6 did worse
    scale: float = 30.0

    def check(self) -> None:
        _positive(self, "epochs", "batch_size", "learning_rate", "early_stopping_patience", "scale")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"{self.parameter('momentum')}: must be in [0, 1), not {self.momentum!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing: must be in [0, 1), not {self.label_smoothing!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0 or not 0 <= self.min_lr_fraction <= 1:
            raise ConfigError("weight_decay and warmup_epochs must be 0 or more, min_lr_fraction in [0, 1]")


RECIPE_FIELDS: tuple[str, ...] = (
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "min_lr_fraction",
    "label_smoothing",
    "loss",
    "margin",
    "scale",
)
"""``TrainConfig``'s fields that ``recipes`` turns into a schedule, weight decay and loss (recorded with a run)."""

MODERN_RECIPE: Mapping[str, Any] = types.MappingProxyType(
    {
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "weight_decay": 0.05,
        "lr_schedule": "warmup_cosine",
        "warmup_epochs": 2.0,
        "min_lr_fraction": 0.01,
        "label_smoothing": 0.1,
        "augment": "photo",
        "dropout": 0.1,
    }
)
"""The modern training recipe (issue 11), as changes to a run's ``ModelConfig`` and ``TrainConfig``:
AdamW with decoupled weight decay, linear warmup then cosine decay to 1% of the peak, label
smoothing, photo augmentation (``augment.Augmentation``) and light dropout before the
softmax (the study's 0.5 with the photo augmentation under-fits: measured in
``reports/benchmarks/recognition.md``). ``RunConfig().replace(**MODERN_RECIPE)`` is the modern
run of the same network; ``params/modern.yaml`` holds the same values (``tests/unit/test_config.py``)."""


def _defaults(stage: type[Config], names) -> dict[str, Any]:
    """``stage``'s default value of each of ``names`` that is one of its fields."""
    fields = {f.name for f in dataclasses.fields(stage)}
    return {name: getattr(stage, name) for name in names if name in fields}


RECIPES: Mapping[str, Mapping[str, Any]] = types.MappingProxyType(
    {
        "study": types.MappingProxyType(
            {
                **_defaults(TrainConfig, ("optimizer", "learning_rate", *RECIPE_FIELDS)),
                **_defaults(ModelConfig, (*MODERN_RECIPE, "augment")),
            }
        ),
        "modern": MODERN_RECIPE,
    }
)
"""Named recipes for ``RunConfig.replace(recipe=...)`` and the variants of notebook 03: ``"study"`` (every
setting ``MODERN_RECIPE`` changes, back at the study's default) and ``"modern"``."""


@dataclass(frozen=True)
class BenchmarkTrainConfig(TrainConfig):
    """Notebook 04's training (the study's ResNet-50: RMSprop); its parameters are ``benchmark_<field>``."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {
        "epochs": "benchmark_epochs",
        "batch_size": "benchmark_batch_size",
        "optimizer": "benchmark_optimizer",
        "learning_rate": "benchmark_learning_rate",
    }

    epochs: int = 1  # the study: 35; one epoch keeps the default CPU run short
    optimizer: Literal["sgd", "rmsprop"] = "rmsprop"
    learning_rate: float = 0.001  # Keras' RMSprop default


@dataclass(frozen=True)
class RunConfig:
    """One training run: the split, the model and its training, changed together by a variant."""

    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], benchmark: bool = False) -> RunConfig:
        """Notebook 03's run (Res-Incep), or with ``benchmark`` notebook 04's (ResNet-50, ``benchmark_*``)."""
        model, train = (BenchmarkModelConfig, BenchmarkTrainConfig) if benchmark else (ModelConfig, TrainConfig)
        return cls(SplitConfig.from_params(params), model.from_params(params), train.from_params(params))

    def settings(self) -> dict[str, Any]:
        """Field name -> value of every stage (the seed once)."""
        return {**self.split.to_dict(), **self.model.to_dict(), **self.train.to_dict()}

    def replace(self, **changes: Any) -> RunConfig:
        """This run with some settings changed, each in the stage that owns it.

        ``recipe="modern"`` (or ``"study"``) applies ``RECIPES``' settings, then the other changes.
        ``seed`` is shared by the split and the training. Raises ``ConfigError`` for a name
        no stage has (``models_dir`` cannot change: a variant writes beside the main run).
        """
        if "recipe" in changes:  # a named recipe's settings first; the variant's own changes win
            name = changes.pop("recipe")
            if name not in RECIPES:
                raise ConfigError(f"recipe: {name!r} is not one of {', '.join(map(repr, RECIPES))}")
            changes = {**RECIPES[name], **changes}
        stages = {"split": self.split, "model": self.model, "train": self.train}
        owned = {
            name: [s for s, c in stages.items() if name in {f.name for f in dataclasses.fields(c)}] for name in changes
        }
        known = sorted(set(self.settings()) - {"models_dir"})
        for name, owners in owned.items():
            if not owners or name == "models_dir":
                raise ConfigError(unknown_message(name, known, "a variant"))
        return RunConfig(
            **{
                stage: dataclasses.replace(config, **{k: v for k, v in changes.items() if stage in owned[k]})
                for stage, config in stages.items()
            }
        )


@dataclass(frozen=True)
class DeviceConfig(Config):
    """Notebooks 03 and 04: where and in what precision the models train (``devices.setup``).

    Attributes:
        device: ``auto`` (a GPU when one is visible), ``gpu`` (stop at once when none is) or ``cpu``.
        allow_cpu: with ``device: gpu``, go on on the CPU (with a warning) instead of stopping.
        precision: Keras' policy: ``float32``, ``mixed_bfloat16`` (the one for JAX on a GPU) or
            ``mixed_float16`` (TensorFlow on a GPU; the loss is scaled); the softmax stays float32.
    """

    device: Literal["auto", "gpu", "cpu"] = "auto"
    allow_cpu: bool = False
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"


# --------------------------------------------------------------------------- 05/06 visualisation, evaluation


@dataclass(frozen=True)
class VisualizeConfig(Config):
    """Notebook 05: which layers are drawn.

    Attributes:
        feature_layers: 1-based positions among the Conv2D layers (the study's), or layer names.
        deep_filter_layer: name or position of the deep convolution drawn; None: the deepest 3x3/5x5.
        n_cam: Grad-CAM examples of each kind (correct, wrong).
        max_val_images: validation images predicted to find the examples.
    """

    feature_layers: tuple[int | str, ...] = (2, 8, 24)
    deep_filter_layer: int | str | None = None
    n_cam: int = 4
    max_val_images: int = 512

    def check(self) -> None:
        _positive(self, "n_cam", "max_val_images")


@dataclass(frozen=True)
class EvalConfig(Config):
    """Notebook 06 and ``landmarks predict``: how test images are answered.

    Attributes:
        threshold: answer only at or above this probability (the study's 4.5%).
        tta: test-time augmentation (``evaluate.TTA_MODES``): ``none`` (the study's) or ``flip``
            (each image and its mirror image; a retrieval index remembers its own).
    """

    threshold: float = study.THRESHOLD
    tta: Literal["none", "flip"] = "none"

    def check(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold: must be in [0, 1], not {self.threshold!r}")


@dataclass(frozen=True)
class BeyondConfig(Config):
    """Notebook 07 (beyond the study): the open split and the three methods' recipes (``recognition``).

    Attributes:
        holdout_landmarks: landmarks held out of training entirely (their test images are open-set queries).
        beyond_epochs: epochs of every method (short by default: ``make report`` stays quick).
        study_learning_rate: the study method's SGD learning rate (constant).
        study_augment: the study method's augmentation (``ModelConfig.augment``'s values).
        modern_learning_rate: AdamW's peak learning rate (the modern recipe and retrieval).
        modern_weight_decay: AdamW's decoupled weight decay.
        modern_warmup_epochs: linear warmup before the cosine decay.
        modern_label_smoothing: share of the target spread over every class.
        retrieval_loss: ``arcface`` or ``cosface``.
        retrieval_margin: the additive angular margin (radians; CosFace: a cosine margin).
        retrieval_scale: the margin loss's logit scale.
        embedding_dim: size of the retrieval embedding.
        retrieval_k: neighbours of the kNN vote.
        modern_tta: test-time augmentation of the modern recipe and retrieval (``evaluate.TTA_MODES``:
            ``flip`` averages each query with its mirror image, and retrieval indexes the training
            images so too); the study's method answers as the study did, without it.
        n_bootstrap: bootstrap resamples of the test images for the 95% intervals.
    """

    holdout_landmarks: int = 3
    beyond_epochs: int = 2
    study_learning_rate: float = 0.002
    study_augment: bool | Literal["add", "replace", "photo"] = False
    modern_learning_rate: float = MODERN_RECIPE["learning_rate"]
    modern_weight_decay: float = MODERN_RECIPE["weight_decay"]
    modern_warmup_epochs: float = 1.0  # MODERN_RECIPE's 2 would be all of the short default run
    modern_label_smoothing: float = MODERN_RECIPE["label_smoothing"]
    retrieval_loss: Literal["arcface", "cosface"] = "arcface"
    retrieval_margin: float = TrainConfig.margin
    retrieval_scale: float = TrainConfig.scale
    embedding_dim: int = 512
    retrieval_k: int = 5
    modern_tta: Literal["none", "flip"] = "flip"
    n_bootstrap: int = 1000

    def check(self) -> None:
        _positive(
            self,
            "beyond_epochs",
            "study_learning_rate",
            "modern_learning_rate",
            "retrieval_scale",
            "embedding_dim",
            "retrieval_k",
            "n_bootstrap",
        )
        if self.holdout_landmarks < 0:
            raise ConfigError(f"holdout_landmarks: must be 0 or more, not {self.holdout_landmarks!r}")


MARGIN_LOSSES: tuple[str, ...] = typing.get_args(typing.get_type_hints(BeyondConfig)["retrieval_loss"])
"""The margin losses of a cosine head (``retrieval.margin_loss``), as ``BeyondConfig.retrieval_loss`` declares them."""


STAGES: tuple[type[Config], ...] = (
    ExploreConfig,
    FetchConfig,
    SplitConfig,
    ModelConfig,
    BenchmarkModelConfig,
    TrainConfig,
    BenchmarkTrainConfig,
    DeviceConfig,
    VisualizeConfig,
    EvalConfig,
    BeyondConfig,
)
"""Every stage's settings class (tests/unit/test_config.py checks the notebooks and params/*.yaml against them)."""


def known_parameters() -> dict[str, list[type[Config]]]:
    """Parameter name -> the stage classes that read it."""
    known: dict[str, list[type[Config]]] = {}
    for cls in STAGES:
        for name in cls.parameters():
            known.setdefault(name, []).append(cls)
    return known


def check_params(params: Mapping[str, Any]) -> None:
    """Build every stage from ``params`` (a parameters file), so a bad value fails with its name."""
    for cls in STAGES:
        cls.from_params(params)
