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

Randomness: an image's draw depends only on ``(seed, epoch, row)`` (``rng``), never on thread
timing, so a run is reproducible and a resumed run draws what an uninterrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

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


@dataclass(frozen=True)
class Augmentation:
    """A training augmentation (see the module's docstring for what each kind does).

    Args:
        kind: ``"study"`` or ``"photo"``.
        crop_scale: ``"photo"``'s largest cut from a side, as a share of it.
        jitter: ``"photo"``'s largest relative change of brightness and contrast.
        vertical_flips: ``"photo"`` flips vertically too (the study's did).
    """

    kind: str = "study"
    crop_scale: float = config.ModelConfig.crop_scale
    jitter: float = PHOTO_JITTER
    vertical_flips: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"augmentation kind must be one of {KINDS}, not {self.kind!r}")
        if not 0 <= self.crop_scale < 1:
            raise ValueError(f"crop_scale must be in [0, 1), not {self.crop_scale}")

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
        return np.asarray(out)

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


def augmentation_of(augment, crop_scale: float = config.ModelConfig.crop_scale) -> Augmentation | None:
    """The ``Augmentation`` that ``augment`` asks for (``None``: none).

    Args:
        augment: ``ModelConfig.augment``'s values (``augment_mode``).
        crop_scale: the photo augmentation's largest cut from a side.
    """
    mode = augment_mode(augment)
    if mode is None:
        return None
    return Augmentation("photo" if mode == "photo" else "study", crop_scale=crop_scale)


def mark_augmentation(model, augment, crop_scale: float = config.ModelConfig.crop_scale):
    """Record on ``model`` how ``train`` augments its data: ``model.augment_mode`` and ``model.augmentation``.

    Returns:
        ``model``.
    """
    model.augment_mode = augment_mode(augment)
    model.augmentation = augmentation_of(augment, crop_scale)
    return model
