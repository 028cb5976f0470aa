"""Training augmentation on the CPU, in the input pipeline's threads (no Keras, no backend).

Why here and not as Keras layers in the model: Keras turns XLA off for a *whole* model when one of
its layers says it cannot be compiled, and ``RandomZoom``, ``RandomRotation``, ``RandomTranslation``
and ``RandomCrop`` say so. Under Keras on JAX (the GPU path) every augmented training then ran op by
op. Done here, the model stays plain and its train step compiles; the augmentation runs in the
decoding threads of ``nets.pipeline.ImageBatches`` while the device computes the previous step, as GPU input
pipelines usually do. The other way was measured too, on this 2-core CPU at 64 px under JAX: Keras' own
layers kept in the model and told that XLA may compile them (their backend ops can be traced) trained at
1.88x (study) and 1.81x (photo) the seconds per epoch of the plain model (``model.fit`` on arrays, 20 steps
of 32, an idle machine; once more for the study's, through ``train.train`` while a test suite ran beside it:
1.15x). Here the augmented kinds cost 0.92-1.13x the plain one's per image on JAX
(``reports/benchmarks/backends.md``), a saved model holds no training-only layers, and the same code serves
TensorFlow, whose XLA cannot compile those layers.

The transforms and their ranges are those of the Keras layers the models used before (each drawn
uniformly, independently per image):

    study   flips both ways (each with probability 1/2), rotation by up to 0.1 turn (36 degrees)
            either way, zoom by a factor in [0.8, 1.2] (> 1: out), the gaps filled with the
            reflected image (Keras ``fill_mode="reflect"``), bilinear
    photo   a random resized crop: height and width zoomed in separately by a factor in
            [1 - crop_scale, 1], then shifted by up to crop_scale / 2 of the side each way (reflect);
            a horizontal flip with probability 1/2; brightness + delta * 255 with delta in
            [-jitter, jitter]; contrast (x - mean) * f + mean with f in [1 - jitter, 1 + jitter]
            and the mean per channel; clipped to 0..255

The geometric part is one affine map (the composition of flips, rotation, zoom and shift), so each
image is resampled once, by Pillow (which releases the GIL: the threads use every core).

RandAugment (Cubuk et al. 2020; ``ModelConfig.randaugment_ops`` > 0): after either kind, ``randaugment_ops``
operations per image, each drawn uniformly (with replacement) from ``RANDAUGMENT_OPS``, all at the one
magnitude ``randaugment_magnitude`` (0..30, RandAugment's scale; ``level = magnitude / 30``), the signed ones
with a random sign; ranges as torchvision's ``RandAugment`` (``_randaugment_op``). Geometric ones fill their
gaps with the reflected image, as the rest of this module does (torchvision: black). With no augmentation
kind asked for (``augment: False``), RandAugment is refused (``augmentation_of``), never silently dropped.

Randomness: an image's draw depends only on ``(seed, epoch, row)`` (``rng``), never on thread
timing, so a run is reproducible and a resumed run draws what an uninterrupted one would have.
RandAugment draws from the same generator after the kind's own draws, so an image's flips, crop and
jitter are the same with it as without it.

Mixing (``Mixing``: mixup, Zhang et al. 2018; CutMix, Yun et al. 2019; ``TrainConfig.mixup_alpha`` and
``cutmix_alpha``) acts on whole training batches after the per-image augmentation: each image is blended
with (mixup), or gets a box pasted from (CutMix), another image of the same batch, and the targets become
the matching mix of the two one-hot labels, float32 ``(N, C)``. A batch's draw depends only on
``(seed, epoch, batch index)`` (``mix_rng``). The recipe's label smoothing is not applied here: the loss
applies it to whatever target it gets (``nets.losses.SmoothedSparseCrossentropy``), and smoothing then
mixing equals mixing then smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from . import config

KINDS = ("study", "photo")
"""``Augmentation.kind``: the study's flips, rotation and zoom, or the modern recipe's photo augmentation."""

STUDY_ROTATION = 0.1
"""The study's largest rotation, as a share of a full turn (Keras ``RandomRotation(0.1)``)."""
STUDY_ZOOM = 0.2
"""The study's largest zoom either way (Keras ``RandomZoom(0.2)``: a factor in [0.8, 1.2])."""
PHOTO_JITTER = 0.15
"""The photo augmentation's largest relative change of brightness and contrast."""


def rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    """The random generator of one image's augmentation: a function of the run's seed, the epoch and the row."""
    return np.random.default_rng([int(seed), int(epoch), int(row)])


MIX_STREAM = 0x6D6978
"""The fourth word of a batch's mixing seed (``mix_rng``; ``"mix"`` in ASCII): keeps batch ``i``'s stream apart from
image row ``i``'s (``rng``). Not 0: NumPy's ``SeedSequence`` reads a trailing 0 as no word at all."""


def mix_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one training batch's mixing: a function of the seed, the epoch and the batch index."""
    return np.random.default_rng([int(seed), int(epoch), int(index), MIX_STREAM])


def _reflect_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """``image`` with ``pad`` pixels of mirror image around it (Keras' ``reflect``: ``d c b a | a b c d``)."""
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")


def _resample(image: np.ndarray, matrix: np.ndarray, shift: tuple[float, float]) -> Image.Image:
    """Output pixel at ``p`` (relative to the centre) takes the input at ``centre + matrix @ p + shift``.

    Coordinates are ``(x, y)`` in pixels; the gaps are filled with the reflected image, bilinear.
    Returns a Pillow image (``np.asarray`` of it: uint8 ``(H, W, 3)``).
    """
    size_y, size_x = image.shape[:2]
    # the farthest any output corner reaches from the centre, to size the reflected border
    reach = np.abs(matrix) @ np.array([size_x / 2, size_y / 2]) + np.abs(shift)
    pad = int(math.ceil(max(0.0, reach[0] - size_x / 2, reach[1] - size_y / 2))) + 2
    padded = Image.fromarray(_reflect_pad(image, pad))
    (a, b), (d, e) = matrix
    # Pillow maps an output pixel centre (x + 0.5, y + 0.5) to input coordinates (a, b, c, d, e, f)
    cx, cy = size_x / 2, size_y / 2
    c = pad + cx + shift[0] - a * cx - b * cy
    f = pad + cy + shift[1] - d * cx - e * cy
    return padded.transform((size_x, size_y), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR)


def _jitter(image: Image.Image, delta: float, factor: float) -> Image.Image:
    """Brightness ``+ delta``, then contrast ``(x - mean) * factor + mean`` (mean per channel), clipped to 0..255.

    Both are functions of a pixel's value and its channel's mean, so they are applied as one 256-entry
    table per channel (Pillow's ``point``), the mean taken from the channel's histogram: a few times
    faster than the same arithmetic on a float copy of the image (measured at 224 px: 1.9 ms -> well under
    0.5 ms per image), and the same values.
    """
    levels = np.clip(np.arange(256, dtype=np.float64) + delta, 0, 255)  # each value after the brightness
    histogram = np.asarray(image.histogram(), dtype=np.float64).reshape(3, 256)
    means = histogram @ levels / histogram.sum(axis=1)
    tables = np.rint(np.clip((levels[None, :] - means[:, None]) * factor + means[:, None], 0, 255))
    return image.point(tables.astype(np.uint8).ravel().tolist())


RANDAUGMENT_OPS = (
    "autocontrast",
    "equalize",
    "rotate",
    "solarize",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
"""RandAugment's operations (Pillow), drawn uniformly: ``_randaugment_op`` says what each does at a magnitude."""
RANDAUGMENT_MAX_MAGNITUDE = 30.0
"""The top of RandAugment's magnitude scale (torchvision's 31 bins, 0..30): ``level = magnitude / 30``."""
_SIGNED = frozenset(
    {"rotate", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y"}
)
"""The operations that go either way (a random sign each time)."""


def _randaugment_op(image: Image.Image, op: str, level: float) -> Image.Image:
    """One RandAugment operation on an RGB Pillow image at ``level`` (in [-1, 1]; signed operations take its sign).

    At ``|level|`` 1 (magnitude 30): rotate by 30 degrees, shear by 0.3, translate by 0.45 of the side, solarize every
    value at or above 0 (threshold ``256 * (1 - level)``), posterize to 4 bits (``8 - round(4 * level)``),
    contrast/brightness/sharpness enhanced by a factor ``1 + 0.9 * level`` (0.1..1.9); autocontrast and equalize
    have no magnitude. At level 0 every operation with a magnitude leaves the image as it is.
    """
    if op == "autocontrast":
        return ImageOps.autocontrast(image)
    if op == "equalize":
        return ImageOps.equalize(image)
    if op == "solarize":
        return ImageOps.solarize(image, threshold=int(round(256 * (1 - abs(level)))))
    if op == "posterize":
        return ImageOps.posterize(image, 8 - int(round(4 * abs(level))))
    if op in ("contrast", "brightness", "sharpness"):
        enhancer = {"contrast": ImageEnhance.Contrast, "brightness": ImageEnhance.Brightness}.get(
            op, ImageEnhance.Sharpness
        )
        return enhancer(image).enhance(1.0 + 0.9 * level)
    if level == 0:  # the geometric ones at magnitude 0: no resampling
        return image
    width, height = image.size
    matrix, shift = np.eye(2), (0.0, 0.0)
    if op == "rotate":
        angle = math.radians(30.0 * level)
        matrix = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    elif op == "shear_x":
        matrix = np.array([[1.0, 0.3 * level], [0.0, 1.0]])
    elif op == "shear_y":
        matrix = np.array([[1.0, 0.0], [0.3 * level, 1.0]])
    elif op == "translate_x":
        shift = (0.45 * level * width, 0.0)
    elif op == "translate_y":
        shift = (0.0, 0.45 * level * height)
    else:
        raise ValueError(f"unknown RandAugment operation {op!r}: expected one of {RANDAUGMENT_OPS}")
    return _resample(np.asarray(image), matrix, shift)


@dataclass(frozen=True)
class Augmentation:
    """A training augmentation (see the module's docstring for what each kind does).

    Args:
        kind: ``"study"`` or ``"photo"``.
        crop_scale: ``"photo"``'s largest cut from a side, as a share of it.
        jitter: ``"photo"``'s largest relative change of brightness and contrast.
        vertical_flips: ``"photo"`` flips vertically too (the study's did).
        randaugment_ops: RandAugment operations per image after the kind's own (0: none).
        randaugment_magnitude: their magnitude, 0..30 (``RANDAUGMENT_MAX_MAGNITUDE``).
    """

    kind: str = "study"
    crop_scale: float = config.ModelConfig.crop_scale
    jitter: float = PHOTO_JITTER
    vertical_flips: bool = False
    randaugment_ops: int = 0
    randaugment_magnitude: float = config.ModelConfig.randaugment_magnitude

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"augmentation kind must be one of {KINDS}, not {self.kind!r}")
        if not 0 <= self.crop_scale < 1:
            raise ValueError(f"crop_scale must be in [0, 1), not {self.crop_scale}")
        if (
            isinstance(self.randaugment_ops, bool)
            or not isinstance(self.randaugment_ops, int)
            or self.randaugment_ops < 0
        ):
            raise ValueError(f"randaugment_ops must be an integer, 0 or more, not {self.randaugment_ops!r}")
        if not 0 <= self.randaugment_magnitude <= RANDAUGMENT_MAX_MAGNITUDE:
            raise ValueError(
                f"randaugment_magnitude must be in [0, {RANDAUGMENT_MAX_MAGNITUDE:g}], not {self.randaugment_magnitude}"
            )

    def geometry(self, generator: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, tuple]:
        """One draw of the geometric part: ``(matrix, shift)`` as ``_resample`` takes them.

        Args:
            generator: the image's random generator (``rng``).
            size: ``(height, width)`` of the image.
        """
        height, width = size
        flip_x = generator.random() < 0.5
        flip_y = (self.kind == "study" or self.vertical_flips) and generator.random() < 0.5
        flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
        if self.kind == "study":
            angle = generator.uniform(-STUDY_ROTATION, STUDY_ROTATION) * 2 * math.pi
            zoom = generator.uniform(1 - STUDY_ZOOM, 1 + STUDY_ZOOM)
            cos, sin = math.cos(angle), math.sin(angle)
            # zoom first (the output is the zoomed image), then rotation, then the flips of the input
            return flips @ np.array([[cos, -sin], [sin, cos]]) @ np.diag([zoom, zoom]), (0.0, 0.0)
        zoom_y, zoom_x = generator.uniform(1 - self.crop_scale, 1.0, size=2)
        shift_y, shift_x = generator.uniform(-self.crop_scale / 2, self.crop_scale / 2, size=2)
        # shifted, then zoomed, then flipped: the flips act on the input, so they do not bias the crop
        return flips @ np.diag([zoom_x, zoom_y]), (zoom_x * shift_x * width, zoom_y * shift_y * height)

    def image(self, image: np.ndarray, generator: np.random.Generator) -> np.ndarray:
        """One augmented copy of ``image`` (uint8 ``(H, W, 3)``, 0..255), as uint8."""
        matrix, shift = self.geometry(generator, image.shape[:2])
        out = _resample(image, matrix, shift)
        if self.kind == "photo" and self.jitter:
            delta = generator.uniform(-self.jitter, self.jitter) * 255.0
            factor = generator.uniform(1 - self.jitter, 1 + self.jitter)
            out = _jitter(out, delta, factor)
        for op, level in self.randaugment(generator):  # after the kind's draws: those stay as they were
            out = _randaugment_op(out, op, level)
        return np.asarray(out)

    def randaugment(self, generator: np.random.Generator) -> list[tuple[str, float]]:
        """One draw of the RandAugment operations: ``randaugment_ops`` pairs ``(operation, level)``.

        Each operation is drawn uniformly from ``RANDAUGMENT_OPS`` (with replacement, as RandAugment does); its
        level is ``randaugment_magnitude / 30``, negated with probability 1/2 for the signed operations.
        """
        level = self.randaugment_magnitude / RANDAUGMENT_MAX_MAGNITUDE
        drawn = []
        for _ in range(self.randaugment_ops):
            op = RANDAUGMENT_OPS[int(generator.integers(len(RANDAUGMENT_OPS)))]
            drawn.append((op, -level if op in _SIGNED and generator.random() < 0.5 else level))
        return drawn

    def batch(self, x: np.ndarray, seed: int, epoch: int, rows, map_fn=map) -> np.ndarray:
        """Augmented copies of a batch ``x`` (uint8 ``(B, H, W, 3)``), image ``i`` drawn from ``rng(seed, epoch, rows[i])``.

        Args:
            x: the images.
            seed, epoch: the run's seed and the epoch.
            rows: each image's row in the dataset.
            map_fn: how to map over the images (a thread pool's ``map`` to use every core).
        """
        out = np.empty_like(x)

        def one(i: int) -> None:
            out[i] = self.image(x[i], rng(seed, epoch, rows[i]))

        list(map_fn(one, range(len(x))))
        return out


AUGMENT_MODES = ("add", "replace", "photo")
"""``augment`` values: ``"add"`` (the study's: augmented copies added to the training images, each
epoch sees every original and one augmented copy of it), ``"replace"`` (each epoch sees one augmented
version of each image instead of the original), or ``"photo"`` (as ``"replace"``, with the modern
recipe's photo augmentation instead of the study's). ``True`` means ``"replace"``; ``False``/``None``:
no augmentation. The augmentation itself (``Augmentation``) runs in the input pipeline, on the
CPU, so that the model stays plain and compiles with XLA (the module's docstring says why)."""


def augment_mode(augment) -> str | None:
    """``augment`` as ``"add"``, ``"replace"``, ``"photo"`` or ``None`` (``True`` -> ``"replace"``)."""
    if augment is None or augment is False or augment == "none":
        return None
    if augment is True:
        return "replace"
    if augment in AUGMENT_MODES:
        return augment
    raise ValueError(f"augment must be one of {AUGMENT_MODES}, true or false; not {augment!r}")


def augmentation_of(
    augment,
    crop_scale: float = config.ModelConfig.crop_scale,
    randaugment_ops: int = 0,
    randaugment_magnitude: float = config.ModelConfig.randaugment_magnitude,
) -> Augmentation | None:
    """The ``Augmentation`` that ``augment`` asks for (``None``: none).

    Args:
        augment: ``ModelConfig.augment``'s values (``augment_mode``), or a whole ``config.ModelConfig`` (then its
            ``augment``, ``crop_scale``, ``randaugment_ops`` and ``randaugment_magnitude``; the other arguments are
            not used).
        crop_scale: the photo augmentation's largest cut from a side.
        randaugment_ops, randaugment_magnitude: RandAugment after the kind's augmentation (``Augmentation``).

    Raises:
        ValueError: ``randaugment_ops`` > 0 without an augmentation (``augment`` false): RandAugment runs after one.
    """
    if isinstance(augment, config.ModelConfig):
        settings = augment
        augment, crop_scale = settings.augment, settings.crop_scale
        randaugment_ops, randaugment_magnitude = settings.randaugment_ops, settings.randaugment_magnitude
    mode = augment_mode(augment)
    if mode is None:
        if randaugment_ops:
            raise ValueError(
                f"randaugment_ops {randaugment_ops} needs an augmentation to follow: set augment to photo, replace "
                "or add (it is false), or randaugment_ops to 0"
            )
        return None
    return Augmentation(
        "photo" if mode == "photo" else "study",
        crop_scale=crop_scale,
        randaugment_ops=int(randaugment_ops),
        randaugment_magnitude=float(randaugment_magnitude),
    )


def mark_augmentation(
    model,
    augment,
    crop_scale: float = config.ModelConfig.crop_scale,
    randaugment_ops: int = 0,
    randaugment_magnitude: float = config.ModelConfig.randaugment_magnitude,
):
    """Record on ``model`` how ``train`` augments its data: ``model.augment_mode`` and ``model.augmentation``.

    A model builder calls ``mark_augmentation(model, settings)`` with its ``config.ModelConfig`` (every
    augmentation setting taken from it: ``augmentation_of``), or passes the values one by one.

    Returns:
        ``model``.
    """
    augmentation = augmentation_of(augment, crop_scale, randaugment_ops, randaugment_magnitude)
    model.augment_mode = augment_mode(augment.augment if isinstance(augment, config.ModelConfig) else augment)
    model.augmentation = augmentation
    return model


@dataclass(frozen=True)
class Mixing:
    """Mixup and CutMix of training batches (see the module's docstring): the images mixed, the targets soft.

    Per batch (``batch``), from ``mix_rng(seed, epoch, index)``, in this order: with both on, the method
    (mixup when a uniform draw is below 1/2, else CutMix); ``lam ~ Beta(alpha, alpha)`` of that method;
    the partner of each image, ``perm``, a random permutation of the batch (an image may draw itself: it is then
    mixed with itself and its target stays one-hot; a batch of one always does); for CutMix, the box's centre
    ``(cy, cx)``, uniform over the pixels.

        mixup    ``x = lam * x + (1 - lam) * x[perm]`` (uint8 batches: rounded to the nearest integer, at most
                 half a level off; the target weights are exact)
        CutMix   a box of ``round(H * sqrt(1 - lam))`` by ``round(W * sqrt(1 - lam))`` pixels around ``(cy, cx)``,
                 cut to the image, takes ``x[perm]``'s pixels; ``lam`` becomes the share of the image not pasted
                 over (``1 - box area / (H * W)``), so the weights are those of the pixels shown

    Targets: ``lam * one_hot(y) + (1 - lam) * one_hot(y[perm])``, float32 ``(N, C)``, each row summing to 1
    (one class twice: its weight is 1).

    Args:
        mixup_alpha: mixup's Beta parameter (0: off).
        cutmix_alpha: CutMix's Beta parameter (0: off). At least one of the two is on.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self):
        if not (self.mixup_alpha >= 0 and self.cutmix_alpha >= 0):
            raise ValueError(
                f"mixup_alpha and cutmix_alpha must be 0 or more ({self.mixup_alpha}, {self.cutmix_alpha})"
            )
        if not (self.mixup_alpha or self.cutmix_alpha):
            raise ValueError("a Mixing needs mixup_alpha or cutmix_alpha above 0 (mixing_of gives None for neither)")

    def draw(self, generator: np.random.Generator, n: int, size: tuple[int, int]) -> dict:
        """One batch's draw: ``{"method", "lam", "perm", "box"}`` (``box``: ``(y0, y1, x0, x1)``, CutMix only).

        Args:
            generator: the batch's generator (``mix_rng``).
            n: images in the batch.
            size: ``(height, width)`` of the images.
        """
        if self.mixup_alpha and self.cutmix_alpha:
            method = "mixup" if generator.random() < 0.5 else "cutmix"
        else:
            method = "mixup" if self.mixup_alpha else "cutmix"
        alpha = self.mixup_alpha if method == "mixup" else self.cutmix_alpha
        lam = float(generator.beta(alpha, alpha))
        perm = generator.permutation(n)
        if method == "mixup":
            return {"method": method, "lam": lam, "perm": perm, "box": None}
        height, width = size
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(round(height * ratio)), int(round(width * ratio))
        cy, cx = int(generator.integers(height)), int(generator.integers(width))
        y0, x0 = cy - cut_h // 2, cx - cut_w // 2
        box = (max(y0, 0), min(y0 + cut_h, height), max(x0, 0), min(x0 + cut_w, width))
        area = (box[1] - box[0]) * (box[3] - box[2])
        return {"method": method, "lam": 1.0 - area / (height * width), "perm": perm, "box": box}

    def batch(
        self, x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epoch: int, index: int, map_fn=map
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mixed batch ``x`` (same shape and dtype) and its float32 ``(N, C)`` targets.

        Args:
            x: the batch's images ``(N, H, W, 3)`` (uint8 or float).
            labels: their integer labels ``(N,)``, each in ``[0, num_classes)``.
            num_classes: ``C``, the width of the targets (the model's classes).
            seed, epoch, index: the run's seed, the epoch and the batch's index in it (``mix_rng``).
            map_fn: how to map over the images (a thread pool's ``map``), for mixup's blends.
        """
        labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
        if len(labels) != len(x) or len(x) == 0:
            raise ValueError(
                f"a mixed batch needs one label per image and at least one image ({len(x)}, {len(labels)})"
            )
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must be in [0, {num_classes}): got {labels.min()}..{labels.max()}")
        drawn = self.draw(mix_rng(seed, epoch, index), len(x), x.shape[1:3])
        lam, perm = drawn["lam"], drawn["perm"]
        if drawn["method"] == "cutmix":
            out = x.copy()
            y0, y1, x0, x1 = drawn["box"]
            out[:, y0:y1, x0:x1] = x[perm, y0:y1, x0:x1]
        else:
            out = np.empty_like(x)
            rounding = np.issubdtype(x.dtype, np.integer)
            weight = np.float32(lam)

            def one(i: int) -> None:
                mixed = x[i].astype(np.float32) * weight + x[perm[i]].astype(np.float32) * (np.float32(1) - weight)
                out[i] = np.rint(mixed) if rounding else mixed

            list(map_fn(one, range(len(x))))
        targets = np.zeros((len(x), int(num_classes)), np.float64)
        rows = np.arange(len(x))
        targets[rows, labels] += lam
        targets[rows, labels[perm]] += 1.0 - lam
        return out, targets.astype(np.float32)


def mixing_of(mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> Mixing | None:
    """The ``Mixing`` of ``TrainConfig.mixup_alpha`` and ``cutmix_alpha``; ``None`` when both are 0."""
    if not (mixup_alpha or cutmix_alpha):
        return None
    return Mixing(float(mixup_alpha), float(cutmix_alpha))
