"""Every stage's settings: one frozen dataclass per stage, the defaults of the whole project.

Each setting is declared once, here: a field ``name: type = setting(default, doc, bounds)`` gives its type,
default, one-line doc and range. A notebook declares its parameters (papermill's ``parameters`` cell, values
equal to the defaults below), ``params/*.yaml`` hold only what differs from them, and ``landmarks fetch``'s
options are made from ``FetchConfig``'s fields (tests/unit/test_config.py checks the notebooks and the files
against these classes and ``OTHER_PARAMETERS``). A notebook builds its settings in the cell after its parameters:

    split_config = config.SplitConfig.from_params(globals())
    model_config = config.ModelConfig.from_params(globals())
    train_config = config.TrainConfig.from_params(globals())

``from_params`` takes each field from the parameter of the same name (or the name in
``PARAMETERS``: notebook 04 spells its training settings ``benchmark_<field>``); a field
without a parameter keeps its default. Values are checked against the field types: a wrong
type or value raises ``ConfigError`` with one line naming the parameter. A variant is
``dataclasses.replace(config, **changes)`` (checked the same way); ``RunConfig.replace``
routes each change to the stage that owns it.

Adding a setting is one field here (and, where a notebook takes it, the same name in its parameters cell).
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


_KINDS = {bool: bool, int: int, float: (int, float), str: str, type(None): type(None), list: list, dict: dict}
_BOUNDS = {
    "> 0": (lambda v: v > 0, "positive"),
    ">= 0": (lambda v: v >= 0, "0 or more"),
    "[0, 1)": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "[0, 1]": (lambda v: 0 <= v <= 1, "in [0, 1]"),
}
"""A setting's range (``setting``'s ``bounds``) -> its test and how a message says it."""


def check_value(name: str, value: Any, hint: Any, bounds: str | None = None) -> Any:
    """``value`` as the type ``hint`` wants it (int -> float, list -> tuple) and within ``bounds`` (a key of
    ``_BOUNDS``; None passes), or ``ConfigError`` naming ``name`` in one line. The project's one validator: the
    settings here, ``landmarks fetch``'s options, and ``metrics``' records (a ``TypedDict``: its required keys,
    then each value; ``list[X]``: each item)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                typed = check_value(name, value, option)
            except ConfigError:
                continue
            return check_value(name, typed, Any, bounds)  # the range once the type is known
        raise ConfigError(f"{name}: {value!r} is not {' | '.join(_type_name(a) for a in args)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
    if typing.is_typeddict(hint):
        check_value(name, value, dict)
        missing = sorted(set(hint.__required_keys__) - set(value))
        if missing:
            raise ConfigError(f"{name}: missing key {missing[0]!r} (schema {hint.__name__})")
        for key, key_hint in typing.get_type_hints(hint).items():
            if key in value:
                check_value(f"{name}.{key}", value[key], key_hint)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple) if origin is tuple else list):
            raise ConfigError(f"{name}: {value!r} is not a list")
        return origin(check_value(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
    kind = _KINDS.get(hint)
    if kind is not None and (not isinstance(value, kind) or (isinstance(value, bool) and hint is not bool)):
        raise ConfigError(f"{name}: {value!r} is not {'a ' if hint in (list, dict) else ''}{_type_name(hint)}")
    value = float(value) if hint is float else value
    if bounds is not None and value is not None and not _BOUNDS[bounds][0](value):
        raise ConfigError(f"{name}: must be {_BOUNDS[bounds][1]}, not {value!r}")
    return value


def setting(default: Any, doc: str, bounds: str | None = None) -> Any:
    """A settings field: its default, its one-line doc (the command line's help, too) and its range
    (``"> 0"``, ``">= 0"``, ``"[0, 1)"`` or ``"[0, 1]"``; None: any value of its type), checked on construction."""
    if bounds is not None and bounds not in _BOUNDS:
        raise ValueError(f"bounds: {bounds!r} is not one of {', '.join(map(repr, _BOUNDS))}")
    return field(default=default, metadata={"doc": doc, "bounds": bounds})


@dataclass(frozen=True)
class Config:
    """Base of the stage settings: typed fields, checked on construction."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {}
    """Field -> the notebook/YAML parameter that sets it, where the two names differ."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_value(self.parameter(f.name), getattr(self, f.name), hints[f.name], f.metadata.get("bounds"))
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks of several fields together, beyond each field's type and range (raise ``ConfigError``)."""

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


def unknown_message(key: str, known: list[str], where: str = "") -> str:
    """``"unknown setting 'learning_rat' for TrainConfig (did you mean 'learning_rate'?)"`` (without ``where``:
    no " for ..."); with no close name, the known names when they are few."""
    # a field named by one word of it first ('size' -> 'image_size', not the closer spelling 'resize')
    close = sorted(k for k in known if k.startswith(f"{key}_") or k.endswith(f"_{key}"))
    close = close or difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    hint = hint if close or len(known) <= 12 else " (no close name: see landmarklib/config.py)"
    return f"unknown setting {key!r}{f' for {where}' if where else ''}{hint}"


# --------------------------------------------------------------------------- 01 explore


@dataclass(frozen=True)
class ExploreConfig(Config):
    """Notebook 01: how much of the catalog is explored."""

    n_images: int | None = setting(
        study.N_IMAGES, "the first rows of the catalog taken (the study's 5000); None: all", "> 0"
    )
    top_k: int = setting(15, "landmarks in the most-frequent table and bar chart", "> 0")
    min_images: int = setting(2, "landmarks with fewer images are dropped (shown as the filter's effect)", "> 0")


# --------------------------------------------------------------------------- 02 fetch


@dataclass(frozen=True)
class FetchConfig(Config):
    """Notebook 02, ``landmarks fetch`` (its options: ``fetch.cli``) and both fetch engines (``fetch.fetch_catalog``,
    ``fetch.dask_engine.fetch_catalog_dask``): how catalog rows become JPEG files."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {"engine": "fetch_engine", "scheduler": "dask_scheduler"}

    n_images: int | None = setting(
        study.N_IMAGES, "the first rows of each catalog (the study's 5000); None: all", "> 0"
    )
    image_size: int = setting(96, "side of the square JPEGs written (the study's: 250)", "> 0")
    resize: Literal["stretch", "crop", "pad"] = setting(
        "stretch", "stretch (the study's: aspect not kept), crop or pad"
    )
    workers: int = setting(32, "downloads in flight (with dask: over the whole cluster)", "> 0")
    timeout: float = setting(20.0, "seconds per attempt", "> 0")
    retries: int = setting(2, "further attempts after a connection error, a timeout, 5xx or 429", ">= 0")
    backoff: float = setting(0.5, "urllib3's backoff factor between attempts (seconds; doubling)", ">= 0")
    max_bytes: int = setting(20 * 2**20, "largest image body (or file) accepted, in bytes", "> 0")
    strict: bool = setting(
        False,
        "refuse the catalog at its first bad row (no url, bad landmark_id, unsafe id, duplicate id: CatalogError) "
        "instead of failing each bad row alone",
    )
    fail_fast_after: int = setting(
        3,
        "consecutive connection failures (DNS, refused, unreachable, TLS) after which a host's other rows fail at "
        "once as 'host unreachable' (0: never)",
        ">= 0",
    )
    processes: int | None = setting(
        None, "with local: worker processes; None: one per core (threads in this process for under 64 rows)", "> 0"
    )
    engine: Literal["local", "dask"] = setting(
        "local", "local: this machine; dask: shards on a Dask cluster, the same manifest"
    )
    scheduler: str | None = setting(
        None, "with dask: a running Dask scheduler's address (tcp://host:8786); None: a local cluster of processes"
    )
    dask_workers: int | None = setting(
        None, "with dask and no scheduler: worker processes of the local cluster; None: one per core", "> 0"
    )
    shard_rows: int = setting(10_000, "with dask: catalog rows per shard, one task each (as img2dataset)", "> 0")
    max_per_host: int = setting(
        0, "with dask: requests in flight per host over the whole cluster (0: no limit)", ">= 0"
    )
    images: str | None = setting(
        None,
        "read the images from this folder instead of the urls (fetch.sources): TAR shards (GLDv2 images_NNN.tar, "
        "with md5.images_NNN.txt checked when present) or image files (a/b/c/<id>.jpg or <id>.jpg); the catalog may "
        "then be id,landmark_id, id,url,landmark_id, landmark_id,images (train_clean.csv) or id; None: the urls",
    )


# --------------------------------------------------------------------------- 03/04 split, model, training

ARCHITECTURES: tuple[str, ...] = ("res_incep", "resnet50", "efficientnet_b0", "convnext_tiny")
"""The networks a model can be (``ModelConfig.model``): each is the module ``landmarklib/nets/<name>.py``
(``build(settings, num_classes)`` and ``FEATURES``). Another architecture is its module and its name here."""
Architecture = Literal[ARCHITECTURES]  # the names above, as a type the settings check


@dataclass(frozen=True)
class SplitConfig(Config):
    """Fetched folder -> training and validation rows (``data.load_split``)."""

    train_dir: str = setting(
        "data/processed/default/train", "the fetched folder (<train_dir>/<landmark_id>/<id>.jpg + manifest.csv)"
    )
    min_images: int = setting(2, "landmarks with fewer images are left out", "> 0")
    val_fraction: float = setting(0.2, "share of each landmark's images kept for validation", "[0, 1)")
    seed: int = setting(42, "seed of the split (and of the training: one seed)")


@dataclass(frozen=True)
class ModelConfig(Config):
    """Which network ``models.build`` makes, and its shape."""

    model: Architecture = setting(
        "res_incep",
        "res_incep (the study's network), resnet50 (its benchmark), efficientnet_b0 or convnext_tiny "
        "(keras.applications backbones: nets.applications)",
    )
    input_size: int = setting(64, "side of the model's input, in pixels (the study: 250)", "> 0")
    filters: tuple[int, ...] = setting((16, 24, 32, 40), "width of each Res-Incep stage (the study: 40, 60, 75, 80)")
    blocks: tuple[int, ...] = setting((3, 3, 2, 2), "residual-inception blocks per stage (ten in all, as in the study)")
    dense_units: int = setting(128, "width of Res-Incep's hidden Dense layer", "> 0")
    dropout: float = setting(0.5, "dropout rate before the softmax layer", "[0, 1)")
    augment: bool | Literal["add", "replace", "photo"] = setting(
        False,
        "while training (augment.augment_mode): add: the study's random flips, rotation and zoom as augmented copies "
        "added to the data (as the study did); replace (or True): each epoch sees one augmented version of each "
        "image; photo: the modern recipe's random resized crop, horizontal flips and colour jitter "
        "(augment.Augmentation); False: none",
    )
    crop_scale: float = setting(
        0.25, "photo augmentation's random crop: the most it cuts from a side, as a share of it", "[0, 1)"
    )
    weights: str | None = setting(
        "imagenet",
        "a keras.applications backbone's starting weights (resnet50, efficientnet_b0, convnext_tiny): imagenet "
        "(Keras' cache, else downloaded; refused in one line when neither can be had), a weights file, or None: "
        "random; res_incep always starts random",
    )
    weights_download_timeout: float = setting(
        3.0, "seconds to wait for Keras' download server when the ImageNet weights are not cached (0: no try)"
    )
    imagenet_fallback: bool = setting(
        False,
        "when the ImageNet weights cannot be had: True trains from random weights with a loud note (notebook 04's "
        "offline default run), False refuses",
    )
    init_from: str | None = setting(
        None,
        "a .keras model trained by this project (any method, any data set) whose backbone starts this one "
        "(nets.transfer); its head is rebuilt for this run's landmarks; None: the weights above",
    )
    freeze_batchnorm: bool = setting(
        True,
        "a backbone that starts from weights (imagenet, a file, init_from) keeps its BatchNorm layers in inference "
        "mode (their statistics and scales as learnt): the field's practice with small fine-tuning batches",
    )
    stochastic_depth: float = setting(
        0.0,
        "the drop rate of the deepest residual branch while training (linearly less in shallower blocks; "
        "Huang et al. 2016); 0: none",
        "[0, 1)",
    )
    randaugment_ops: int = setting(
        0, "RandAugment-style photo operations per training image, after the photo augmentation (0: none)", ">= 0"
    )
    randaugment_magnitude: float = setting(
        9.0, "RandAugment's magnitude, 0..30 (the strength of each operation)", ">= 0"
    )

    def check(self) -> None:
        if len(self.filters) != len(self.blocks):
            raise ConfigError(f"filters {self.filters} and blocks {self.blocks} need one entry per stage")


@dataclass(frozen=True)
class BenchmarkModelConfig(ModelConfig):
    """Notebook 04's network: the study's ResNet-50 benchmark (``benchmark_weights`` in the parameters)."""

    PARAMETERS: ClassVar[Mapping[str, str]] = {
        name: f"benchmark_{name}"
        for name in ("model", "weights", "imagenet_fallback", "init_from", "freeze_batchnorm", "stochastic_depth")
    }

    model: Architecture = setting("resnet50", "the study's benchmark network")
    imagenet_fallback: bool = setting(
        True, "offline, the study's benchmark trains from random weights, saying so loudly (its default run)"
    )
    freeze_batchnorm: bool = setting(False, "the study trained its ImageNet ResNet-50's BatchNorm layers too")


@dataclass(frozen=True)
class TrainConfig(Config):
    """How ``train.train`` fits a model (notebook 03: Res-Incep)."""

    epochs: int = setting(6, "epochs to train, at most (the study: 30)", "> 0")
    batch_size: int = setting(32, "images per step (the study: 8)", "> 0")
    optimizer: Literal["sgd", "rmsprop", "adamw"] = setting(
        "sgd", "sgd (the study's for Res-Incep), rmsprop (its ResNet-50's) or adamw (the modern recipe's)"
    )
    learning_rate: float = setting(
        0.002, "step size; with SGD, 0.01 and above collapsed to the majority landmark on the sample (measured)", "> 0"
    )
    momentum: float = setting(0.9, "SGD's momentum (RMSprop and AdamW have none)", "[0, 1)")
    early_stopping_patience: int | None = setting(
        None, "epochs without a better validation accuracy before stopping; None: never", "> 0"
    )
    models_dir: str = setting("models/default", "where the model, its label map and its history are written")
    seed: int = setting(42, "seed of the backend, the shuffling and the dropout")
    deterministic: bool = setting(True, "deterministic kernels: the same parameters give the same numbers on a machine")
    weight_decay: float = setting(
        0.0, "AdamW's decoupled weight decay (the modern recipe: 0.05; ignored by SGD and RMSprop)", ">= 0"
    )
    lr_schedule: Literal["constant", "warmup_cosine"] = setting(
        "constant",
        "constant (the study's) or warmup_cosine: linear warmup over warmup_epochs, then cosine decay to "
        "min_lr_fraction of the peak (recipes)",
    )
    warmup_epochs: float = setting(0.0, "epochs of linear warmup (may be fractional)", ">= 0")
    min_lr_fraction: float = setting(0.0, "the cosine's last learning rate, as a share of the peak", "[0, 1]")
    label_smoothing: float = setting(
        0.0, "share of the target spread over every class (the modern recipe: 0.1)", "[0, 1)"
    )
    loss: Literal["crossentropy", "arcface", "cosface"] = setting(
        "crossentropy",
        "crossentropy (softmax models), or arcface / cosface (retrieval.embedding_model's cosine head) with margin "
        "and scale",
    )
    margin: float = setting(
        0.4,
        "the additive angular (ArcFace, radians) or cosine (CosFace) margin; 0.4 was chosen on validation queries "
        "(reports/benchmarks/recognition.md): 0.2 and 0.6 did worse",
    )
    scale: float = setting(30.0, "the logits' scale of the margin losses", "> 0")
    head_epochs: float = setting(
        1.0,
        "a backbone that starts from weights (imagenet, a file, init_from): epochs that train the head alone "
        "(the backbone's learning rate 0) before the whole network trains",
        ">= 0",
    )
    backbone_lr_fraction: float = setting(
        0.1,
        "a backbone that starts from weights: its learning rate after head_epochs, as a share of the head's",
        "[0, 1]",
    )
    mixup_alpha: float = setting(
        0.0, "mixup (Zhang et al. 2018): Beta(alpha, alpha) mixes pairs of training images and targets; 0: off", ">= 0"
    )
    cutmix_alpha: float = setting(
        0.0,
        "CutMix (Yun et al. 2019): a Beta(alpha, alpha)-sized box of another image pasted in, targets mixed by area; "
        "0: off (with mixup too, each batch uses one of the two, chosen with even odds)",
        ">= 0",
    )
    ema_momentum: float | None = setting(
        None,
        "exponential moving average of the weights (Keras' optimizer use_ema): each epoch is validated, kept and "
        "saved with the averaged weights; None: off",
        "[0, 1)",
    )


RECIPE_FIELDS: tuple[str, ...] = (
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "min_lr_fraction",
    "label_smoothing",
    "loss",
    "margin",
    "scale",
    "head_epochs",
    "backbone_lr_fraction",
    "mixup_alpha",
    "cutmix_alpha",
    "ema_momentum",
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
        name: f"benchmark_{name}"
        for name in ("epochs", "batch_size", "optimizer", "learning_rate", "head_epochs", "backbone_lr_fraction")
    }

    epochs: int = setting(1, "ResNet-50's epochs (the study: 35; one keeps the default CPU run short)", "> 0")
    optimizer: Literal["sgd", "rmsprop"] = setting("rmsprop", "rmsprop (the study's for ResNet-50) or sgd")
    learning_rate: float = setting(0.001, "ResNet-50's step size (Keras' RMSprop default)", "> 0")
    head_epochs: float = setting(0.0, "the study fine-tuned its ImageNet ResNet-50 whole from the first step", ">= 0")
    backbone_lr_fraction: float = setting(1.0, "and at one learning rate", "[0, 1]")


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
    """Notebooks 03, 04 and 07: where and in what precision the models train (``devices.setup``)."""

    device: Literal["auto", "gpu", "cpu"] = setting(
        "auto", "auto (a GPU when one is visible), gpu (stop at once, in one line, when none is) or cpu"
    )
    allow_cpu: bool = setting(False, "with device gpu and no GPU visible: go on on the CPU, with a warning")
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = setting(
        "float32",
        "Keras' policy: float32, mixed_bfloat16 (JAX on a GPU) or mixed_float16 (TensorFlow on a GPU; the loss is "
        "scaled); the softmax stays float32",
    )


# --------------------------------------------------------------------------- 05/06 visualisation, evaluation


@dataclass(frozen=True)
class VisualizeConfig(Config):
    """Notebook 05: which layers are drawn."""

    feature_layers: tuple[int | str, ...] = setting(
        (2, 8, 24), "1-based positions among the Conv2D layers (the study's), or layer names"
    )
    deep_filter_layer: int | str | None = setting(
        None, "name or position of the deep convolution drawn; None: the deepest 3x3/5x5"
    )
    n_cam: int = setting(4, "Grad-CAM examples of each kind (correct, wrong)", "> 0")
    max_val_images: int = setting(512, "validation images predicted to find the examples", "> 0")


@dataclass(frozen=True)
class EvalConfig(Config):
    """Notebook 06 and ``landmarks predict``: how test images are answered."""

    threshold: float = setting(study.THRESHOLD, "answer only at or above this probability (the study's 4.5%)", "[0, 1]")
    tta: Literal["none", "flip"] = setting(
        "none",
        "test-time augmentation (evaluate.TTA_MODES): none (the study's) or flip (each image and its mirror image; "
        "a retrieval index remembers its own)",
    )


@dataclass(frozen=True)
class BeyondConfig(Config):
    """Notebook 07 (beyond the study): the open split and the three methods' recipes (``recognition.method_runs``)."""

    holdout_landmarks: int = setting(
        3, "landmarks held out of training entirely (their test images are open-set queries)", ">= 0"
    )
    beyond_epochs: int = setting(2, "epochs of every method (short by default: make report stays quick)", "> 0")
    study_learning_rate: float = setting(0.002, "the study method's SGD learning rate (constant)", "> 0")
    study_augment: bool | Literal["add", "replace", "photo"] = setting(
        False, "the study method's augmentation (ModelConfig.augment's values)"
    )
    modern_learning_rate: float = setting(
        MODERN_RECIPE["learning_rate"], "AdamW's peak learning rate (the modern recipe and retrieval)", "> 0"
    )
    modern_weight_decay: float = setting(MODERN_RECIPE["weight_decay"], "AdamW's decoupled weight decay", ">= 0")
    modern_warmup_epochs: float = setting(
        1.0, "linear warmup before the cosine decay (MODERN_RECIPE's 2 would be all of the short default run)", ">= 0"
    )
    modern_label_smoothing: float = setting(
        MODERN_RECIPE["label_smoothing"], "share of the target spread over every class", "[0, 1)"
    )
    retrieval_loss: Literal["arcface", "cosface"] = setting("arcface", "retrieval's margin loss: arcface or cosface")
    retrieval_margin: float = setting(
        TrainConfig.margin, "the additive angular margin (radians; CosFace: a cosine margin)"
    )
    retrieval_scale: float = setting(TrainConfig.scale, "the margin loss's logit scale", "> 0")
    embedding_dim: int = setting(512, "size of the retrieval embedding", "> 0")
    retrieval_k: int = setting(5, "neighbours of the kNN vote", "> 0")
    retrieval_qe_k: int = setting(
        0,
        "alpha query expansion of retrieval's queries: each re-searched as the weighted sum of itself and its "
        "retrieval_qe_k nearest index images (0: none)",
        ">= 0",
    )
    retrieval_dba_k: int = setting(
        0,
        "database-side augmentation of retrieval's index: each image's embedding replaced by the weighted sum of "
        "itself and its retrieval_dba_k nearest index images (0: none)",
        ">= 0",
    )
    retrieval_qe_alpha: float = setting(
        3.0, "the exponent alpha of the similarity weights sim ** alpha of query expansion and DBA", ">= 0"
    )
    retrieval_variants: bool = setting(
        False,
        "also score retrieval+dba, retrieval+qe and retrieval+dba+qe (those whose k is above 0) from the trained "
        "retrieval model, without training again; retrieval itself then answers without them",
    )
    modern_tta: Literal["none", "flip"] = setting(
        "flip",
        "test-time augmentation of the modern recipe and retrieval: flip averages each query with its mirror image "
        "(retrieval indexes the training images so too); the study's method answers as the study did, without it",
    )
    n_bootstrap: int = setting(1000, "bootstrap resamples of the test images for the 95% intervals", "> 0")


MARGIN_LOSSES: tuple[str, ...] = typing.get_args(typing.get_type_hints(BeyondConfig)["retrieval_loss"])
"""The margin losses of a cosine head (``nets.losses.MarginLoss``), as ``BeyondConfig.retrieval_loss`` declares them."""


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

OTHER_PARAMETERS: Mapping[str, str] = types.MappingProxyType(
    {
        # read by `landmarks report` itself (report.runner)
        "run_name": "the run's name, in the index page's title",
        "reports_dir": "where metrics, figures, executed notebooks and pages go (`landmarks report --out` wins)",
        "sample_dir": "the embedded sample's folder: `landmarks report` builds it when train_csv under it is missing",
        "sample_landmarks": "the embedded sample's landmarks (sample.make_sample's n_landmarks)",
        "sample_train": "the embedded sample's training images",
        "sample_test": "the embedded sample's test images",
        "sample_seed": "the embedded sample's seed",
        # the notebooks' input and output paths (relative to the project root)
        "train_csv": "the training catalog, id,url,landmark_id (notebooks 01, 02, 06)",
        "test_csv": "the test catalog, id,url (notebooks 02, 06)",
        "test_solution_csv": 'the test images\' landmarks, id,landmark_id (notebooks 06, 07; "": no scores)',
        "train_images": "GLDv2 TAR shards or Kaggle image files holding train_csv's images; None: its urls",
        "test_images": "the same for test_csv's images",
        "test_dir": "the fetched test images (notebook 02 writes them, 06 and 07 read them)",
        # variants of notebook 03's and 04's runs (train.train_variants: a name and RunConfig.replace's changes)
        "variants": "notebook 03's variants of its run, each trained and compared",
        "variant_epochs": "epochs of each of notebook 03's variants",
        "benchmark_variants": "notebook 04's variants of its run",
    }
)
"""The parameters that are no stage's field (name -> one line): the runner's, the paths, the variants. Every
notebook parameter and every key of ``params/*.yaml`` is a stage's parameter or one of these (tests/unit/test_config.py);
``landmarks report`` refuses any other name."""


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
