"""The embedded synthetic landmark data set: ``landmarks sample DIR``.

The project runs offline, so its default data is drawn here, in the Kaggle 2018
layout: ``train.csv`` (``id,url,landmark_id``), ``test.csv`` (``id,url``),
``test_solution.csv`` (``id,landmark_id``; empty for non-landmark images),
``landmarks.csv`` (``landmark_id,name,structure``) and the raw images under
``images/`` that the ``url`` column points to (paths relative to the CSVs, or
``file://`` URIs).

Each landmark is a procedurally drawn structure (towers, domes, arches,
pyramids, bridges, skylines, spires, temples, pagodas, obelisks, wheels,
statues) with its own proportions, palette and texture; each photo of it is a
different view (position, scale, roll, lighting, sky, background buildings,
trees and people in front, noise, blur, JPEG quality). Frequencies are long
tailed like the real catalog (a head landmark with hundreds of images, a few
with one). The files are as messy as real downloads: 320-1600 px, varied aspect
ratios, mostly JPEG but also PNG (some RGBA, some misnamed ``.jpg``), animated
GIF (first frame is the photo), grayscale and CMYK JPEG, JPEG whose pixels are
stored rotated with an EXIF orientation tag, and a few broken rows (missing
file, truncated JPEG, an HTML error page or an empty file named ``.jpg``).

Everything derives from ``seed``: the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import files, paths

SAMPLE_VERSION = 1
DEFAULT_DIR = "data/raw/sample"

# Healthy image kinds and their shares (the first few of each are guaranteed in train).
FORMAT_SHARES = {
    "jpeg": 0.77,
    "exif": 0.07,
    "png": 0.02,
    "png_rgba": 0.03,
    "gif": 0.04,
    "gray": 0.04,
    "cmyk": 0.03,
}
BROKEN_KINDS = ("missing", "truncated", "html", "empty")
NON_LANDMARK_SHARE = 0.05
TEST_MIN_TRAIN_IMAGES = 5
CANVAS = 256  # longest side of the drawing canvas, before resizing to the file's size

_KIND_EXT = {
    "jpeg": ".jpg",
    "exif": ".jpg",
    "gray": ".jpg",
    "cmyk": ".jpg",
    "png": ".png",
    "png_rgba": ".png",
    "gif": ".gif",
    "missing": ".jpg",
    "truncated": ".jpg",
    "html": ".jpg",
    "empty": ".jpg",
}
_EXIF_ORIENTATION_TAG = 0x0112
# stored pixels = upright.transpose(_EXIF_STORE[o]); ImageOps.exif_transpose undoes it
_EXIF_STORE = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
# width / height of the photos and how often each occurs
_ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3, 2.0, 5 / 4)
_ASPECT_CDF = np.cumsum([0.3, 0.2, 0.12, 0.1, 0.12, 0.1, 0.03, 0.03])
_CSV_NAMES = ("train.csv", "test.csv", "test_solution.csv", "landmarks.csv")
_FILE_NAME = re.compile(r"^[0-9a-f]{16}\.(jpg|png|gif)$")

_BUILDING_COLORS = {
    "marble": (236, 232, 222),
    "sandstone": (214, 180, 130),
    "red brick": (160, 70, 50),
    "grey stone": (132, 132, 128),
    "ochre": (204, 150, 60),
    "terracotta": (190, 100, 70),
    "pink granite": (205, 150, 150),
    "dark steel": (62, 66, 78),
    "gilded": (212, 175, 55),
    "whitewash": (246, 244, 238),
    "basalt": (52, 50, 56),
    "jade": (80, 150, 120),
    "cream": (240, 224, 188),
    "rust": (150, 76, 40),
    "slate blue": (92, 112, 142),
}
_ACCENT_COLORS = {
    "copper green": (72, 150, 130),
    "slate": (70, 80, 92),
    "red tile": (172, 62, 40),
    "gold": (222, 182, 60),
    "soot": (40, 36, 32),
    "blue tile": (40, 82, 162),
    "white": (242, 242, 242),
    "forest green": (40, 110, 60),
    "crimson": (150, 20, 40),
}
_GROUNDS = {
    "grass": (86, 132, 62),
    "water": (52, 104, 150),
    "plaza": (168, 160, 146),
    "sand": (212, 190, 140),
    "snow": (232, 236, 240),
    "asphalt": (84, 84, 88),
}
_SKIES = (  # (top, bottom): clear day, haze, overcast, dusk, dawn, storm
    ((62, 122, 200), (170, 204, 234)),
    ((120, 160, 200), (220, 226, 230)),
    ((150, 152, 158), (200, 200, 204)),
    ((48, 52, 112), (244, 150, 90)),
    ((120, 140, 190), (250, 200, 170)),
    ((70, 78, 92), (130, 136, 146)),
)
_MAIN_PARTS = (
    "dome",
    "arch",
    "pyramid",
    "bridge",
    "skyline",
    "colonnade",
    "pagoda",
    "wheel",
    "tower",
    "statue",
    "spire",
)
_SIDE_PARTS = ("tower", "spire", "obelisk", "dome", "tower")
_PART_NAMES = {
    "dome": "Dome",
    "arch": "Gate",
    "pyramid": "Pyramid",
    "bridge": "Bridge",
    "skyline": "Towers",
    "colonnade": "Temple",
    "pagoda": "Pagoda",
    "wheel": "Wheel",
    "tower": "Tower",
    "statue": "Monument",
    "spire": "Cathedral",
    "obelisk": "Obelisk",
}
_TEXTURES = ("plain", "bricks", "windows", "stripes", "bands")
_SYLLABLES = (
    "ka",
    "lo",
    "ver",
    "san",
    "mi",
    "tor",
    "bel",
    "ra",
    "no",
    "vi",
    "stra",
    "del",
    "mon",
    "ta",
    "ri",
    "zen",
    "cal",
    "pe",
    "dra",
    "lu",
    "or",
    "ges",
    "ban",
    "qui",
)


@dataclass(frozen=True)
class Part:
    """One structure of a landmark, in landmark units (the tallest part is 1 high).

    Args:
        kind: what is drawn (a key of the drawing functions, e.g. ``"dome"``).
        x: horizontal centre; ``width``/``height``: its size.
        color: main colour; ``accent``: roofs, bands, cables.
        texture: ``plain|bricks|windows|stripes|bands``.
        detail: a count (arches, tiers, columns, spokes, buildings).
        shape: random numbers in [0, 1) that fix the part's other proportions.
    """

    kind: str
    x: float
    width: float
    height: float
    color: tuple[int, int, int]
    accent: tuple[int, int, int]
    texture: str
    detail: int
    shape: tuple[float, ...]


@dataclass(frozen=True)
class Landmark:
    """A landmark of the sample: its id, name, drawn parts and usual ground."""

    landmark_id: int
    name: str
    parts: tuple[Part, ...]
    ground: str
    palette: str

    @property
    def structure(self) -> str:
        """A short description, e.g. ``"dome+tower; marble/copper green; windows"``."""
        kinds = "+".join(p.kind for p in self.parts)
        return f"{kinds}; {self.palette}; {self.parts[0].texture}"


@dataclass(frozen=True)
class SampleRow:
    """One catalog row: which file, which landmark (``None``: no landmark), which kind.

    ``kind`` is a healthy format (``jpeg, exif, png, png_rgba, gif, gray, cmyk``) or a
    broken one (``missing, truncated, html, empty``); ``view_seed`` fixes the picture.
    """

    split: str
    id: str
    file_name: str
    landmark_id: int | None
    kind: str
    view_seed: int

    @property
    def url(self) -> str:
        """The path relative to the CSV folder."""
        return f"images/{self.file_name}"

    @property
    def broken(self) -> bool:
        """Whether the row's file is missing or does not decode."""
        return self.kind in BROKEN_KINDS


@dataclass(frozen=True)
class SamplePlan:
    """Everything about a sample except the pixels: landmarks and the rows of both splits."""

    landmarks: tuple[Landmark, ...]
    train: tuple[SampleRow, ...]
    test: tuple[SampleRow, ...]

    def landmark(self, landmark_id: int) -> Landmark:
        """The landmark with this id."""
        return next(lm for lm in self.landmarks if lm.landmark_id == landmark_id)

    def train_counts(self) -> dict[int, int]:
        """Training rows per landmark id, most frequent first."""
        counts: dict[int, int] = {}
        for row in self.train:
            counts[row.landmark_id] = counts.get(row.landmark_id, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ----------------------------------------------------------------------------- plan


def _seed_rng(*key: int) -> np.random.Generator:
    """A generator for one purpose, derived from integers only (never ``hash()``)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total``."""
    share = weights / weights.sum() * total
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _n_singletons(n_landmarks: int) -> int:
    """How many landmarks get a single training image (3-5 for about 30 landmarks)."""
    if n_landmarks < 4:
        return 0
    return min(5, max(1, round(n_landmarks * 0.13)))


def _train_counts(n_landmarks: int, n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Long-tailed images per landmark, descending: Zipf-like head, a few singletons."""
    n_single = _n_singletons(n_landmarks)
    n_multi = n_landmarks - n_single
    ranks = np.arange(1, n_multi + 1)
    weights = ranks**-0.7 * np.exp(-2.5 * ranks / n_multi) * rng.lognormal(0.0, 0.15, n_multi)
    counts = 2 + _largest_remainder(weights, n_train - n_single - 2 * n_multi)
    return np.concatenate([np.sort(counts)[::-1], np.ones(n_single, dtype=int)])


def _test_counts(train_counts: np.ndarray, n_landmark_test: int) -> np.ndarray:
    """Test images per landmark: only landmarks with enough training images, ~count**0.6."""
    eligible = train_counts >= TEST_MIN_TRAIN_IMAGES
    if eligible.sum() < 2:
        eligible = train_counts >= 2
    weights = np.where(eligible, train_counts.astype(float) ** 0.6, 0.0)
    n_eligible = int(eligible.sum())
    if n_landmark_test >= n_eligible:  # every eligible landmark gets at least one
        return eligible.astype(int) + _largest_remainder(weights, n_landmark_test - n_eligible)
    return _largest_remainder(weights, n_landmark_test)


def _landmark_name(rng: np.random.Generator, main_kind: str, taken: set[str]) -> str:
    """A made-up place name plus what the landmark is, e.g. ``"Torvila Gate"``."""
    while True:
        n = int(rng.integers(2, 4))
        word = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), n)).capitalize()
        name = f"{word} {_PART_NAMES[main_kind]}"
        if name not in taken:
            taken.add(name)
            return name


def _jitter(color: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    """``color`` with each channel moved by up to ``amount``."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _detail(kind: str, rng: np.random.Generator) -> int:
    """The count parameter of a part kind."""
    low, high = {
        "arch": (1, 4),
        "pyramid": (0, 8),
        "bridge": (2, 7),
        "skyline": (3, 8),
        "colonnade": (4, 10),
        "pagoda": (3, 8),
        "wheel": (8, 17),
        "tower": (0, 3),
        "dome": (3, 9),
        "spire": (1, 4),
        "obelisk": (0, 2),
        "statue": (0, 2),
    }[kind]
    value = int(rng.integers(low, high))
    return 0 if kind == "pyramid" and value < 4 else value


def _main_part_size(kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """(width, height) of a main part, relative to its height."""
    width = {
        "dome": (0.7, 1.1),
        "arch": (0.8, 1.3),
        "pyramid": (1.3, 2.0),
        "bridge": (2.2, 3.2),
        "skyline": (1.2, 1.9),
        "colonnade": (1.1, 1.7),
        "pagoda": (0.45, 0.7),
        "wheel": (0.9, 1.0),
        "tower": (0.22, 0.4),
        "statue": (0.3, 0.45),
        "spire": (0.35, 0.55),
    }[kind]
    return float(rng.uniform(*width)), 1.0


def _make_landmark(
    landmark_id: int, main_kind: str, seed: int, index: int, taken: set[str], palette: str | None
) -> Landmark:
    """Draw one landmark's design: a main part, 0-2 flanking parts, palette, texture, ground.

    ``palette`` (``"colour/accent"``) reuses another landmark's palette, so that the two
    differ by structure only; ``None`` draws a new one.
    """
    rng = _seed_rng(seed, 1, index)
    color_name = list(_BUILDING_COLORS)[int(rng.integers(len(_BUILDING_COLORS)))]
    accent_name = list(_ACCENT_COLORS)[int(rng.integers(len(_ACCENT_COLORS)))]
    if palette is not None:
        color_name, accent_name = palette.split("/")
    color = _jitter(_BUILDING_COLORS[color_name], rng, 14)
    accent = _jitter(_ACCENT_COLORS[accent_name], rng, 14)
    texture = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    width, height = _main_part_size(main_kind, rng)
    parts = [
        Part(
            main_kind,
            0.0,
            width,
            height,
            color,
            accent,
            texture,
            _detail(main_kind, rng),
            tuple(float(v) for v in rng.random(6)),
        )
    ]
    if main_kind in ("skyline", "bridge"):
        n_side = int(rng.integers(0, 2))
    else:
        n_side = int(rng.choice([0, 1, 2], p=[0.35, 0.3, 0.35]))
    side_kind = _SIDE_PARTS[int(rng.integers(len(_SIDE_PARTS)))]
    side_h = float(rng.uniform(0.45, 1.15))
    side_w = side_h * {"tower": 0.28, "spire": 0.35, "obelisk": 0.16, "dome": 0.7}[side_kind]
    side_color = color if rng.random() < 0.6 else _jitter(color, rng, 40)
    offsets = (-1.0, 1.0) if n_side == 2 else ((-1.0,) if rng.random() < 0.5 else (1.0,))
    for sign in offsets[:n_side]:
        x = sign * (width / 2 + side_w * float(rng.uniform(0.3, 0.9)))
        parts.insert(
            0,
            Part(
                side_kind,
                x,
                side_w,
                side_h,
                side_color,
                accent,
                texture,
                _detail(side_kind, rng),
                tuple(float(v) for v in rng.random(6)),
            ),
        )
    tallest = max(p.height for p in parts)
    parts = [
        Part(
            p.kind,
            p.x / tallest,
            p.width / tallest,
            p.height / tallest,
            p.color,
            p.accent,
            p.texture,
            p.detail,
            p.shape,
        )
        for p in parts
    ]
    ground = list(_GROUNDS)[int(rng.integers(len(_GROUNDS)))]
    if main_kind == "bridge":
        ground = "water"
    return Landmark(
        landmark_id, _landmark_name(rng, main_kind, taken), tuple(parts), ground, f"{color_name}/{accent_name}"
    )


def _image_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 16-hex-digit ids like Kaggle's."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        value = rng.bytes(8).hex()
        if value not in seen:
            seen.add(value)
            ids.append(value)
    return ids


def _row_kinds(rng: np.random.Generator, n: int, broken: dict[int, str], guarantee: bool) -> list[str]:
    """A kind per row: ``broken`` rows keep theirs, the others get a format by ``FORMAT_SHARES``.

    With ``guarantee``, each rare format is given to at least one healthy row.
    """
    names = list(FORMAT_SHARES)
    probs = np.array(list(FORMAT_SHARES.values()))
    kinds = [names[i] for i in rng.choice(len(names), size=n, p=probs / probs.sum())]
    healthy = [i for i in range(n) if i not in broken]
    if guarantee:
        rare = [k for k in names if k != "jpeg"]
        for slot, kind in zip(rng.choice(healthy, size=min(len(healthy), len(rare)), replace=False), rare):
            kinds[int(slot)] = kind
    for i, kind in broken.items():
        kinds[i] = kind
    return kinds


def _file_name(image_id: str, kind: str, rng: np.random.Generator) -> str:
    """``<id><ext>``; some PNG and GIF files are misnamed ``.jpg``, as on the web."""
    ext = _KIND_EXT[kind]
    if ext != ".jpg" and rng.random() < 0.3:
        ext = ".jpg"
    return image_id + ext


def _broken_train_rows(labels: list[int], counts: dict[int, int], rng: np.random.Generator, n: int) -> dict[int, str]:
    """Row index -> broken kind: one singleton landmark loses its only image, the rest mid-size."""
    singletons = [i for i, lm in enumerate(labels) if counts[lm] == 1]
    chosen: list[int] = []
    if len(singletons) >= 2:  # leaves an empty landmark folder after fetching
        chosen.append(int(rng.choice(singletons)))
    pool = [i for i, lm in enumerate(labels) if counts[lm] >= 3]
    chosen += [int(i) for i in rng.choice(pool, size=min(n - len(chosen), len(pool) // 2), replace=False)]
    kinds = list(BROKEN_KINDS) + [BROKEN_KINDS[int(k)] for k in rng.integers(0, len(BROKEN_KINDS), n)]
    return {i: kinds[j] for j, i in enumerate(chosen)}


def _check_sizes(n_landmarks: int, n_train: int, n_test: int) -> None:
    """Raise ValueError for sizes the plan cannot honour."""
    if n_landmarks < 2:
        raise ValueError(f"n_landmarks must be at least 2, got {n_landmarks}")
    if n_train < 3 * n_landmarks:
        raise ValueError(f"n_train must be at least 3 * n_landmarks = {3 * n_landmarks}, got {n_train}")
    if n_test < 2:
        raise ValueError(f"n_test must be at least 2, got {n_test}")


def plan_sample(n_landmarks: int = 30, n_train: int = 1500, n_test: int = 150, seed: int = 0) -> SamplePlan:
    """Decide the whole sample without drawing a pixel: landmarks, rows, kinds, broken rows.

    Args:
        n_landmarks: number of landmarks (classes).
        n_train: rows of ``train.csv`` (broken rows included).
        n_test: rows of ``test.csv`` (about 5% of them show no landmark).
        seed: everything derives from it.
    """
    _check_sizes(n_landmarks, n_train, n_test)
    rng = _seed_rng(seed, 0)
    ids = [int(v) for v in rng.choice(np.arange(1, 15001), size=n_landmarks, replace=False)]
    main_kinds = [_MAIN_PARTS[int(i) % len(_MAIN_PARTS)] for i in rng.permutation(n_landmarks)]
    taken: set[str] = set()
    landmarks: list[Landmark] = []
    palettes: dict[str, str] = {}  # main kind -> palette of its first landmark
    for i, kind in enumerate(main_kinds):
        shared = palettes.get(kind) if rng.random() < 0.5 else None
        landmarks.append(_make_landmark(ids[i], kind, seed, i, taken, shared))
        palettes.setdefault(kind, landmarks[-1].palette)

    train_counts = _train_counts(n_landmarks, n_train, rng)  # landmark i has train_counts[i]
    n_non = max(1, round(n_test * NON_LANDMARK_SHARE))
    test_counts = _test_counts(train_counts, n_test - n_non)
    counts = dict(zip(ids, (int(c) for c in train_counts)))

    train_labels = [lm for lm, c in zip(ids, train_counts) for _ in range(int(c))]
    train_labels = [train_labels[int(i)] for i in rng.permutation(len(train_labels))]
    test_labels: list[int | None] = [lm for lm, c in zip(ids, test_counts) for _ in range(int(c))]
    test_labels += [None] * n_non
    test_labels = [test_labels[int(i)] for i in rng.permutation(len(test_labels))]

    image_ids = _image_ids(rng, n_train + n_test)
    broken_train = _broken_train_rows(train_labels, counts, rng, min(10, max(4, round(n_train / 200))))
    kinds_train = _row_kinds(rng, n_train, broken_train, guarantee=True)
    landmark_rows = [i for i, lm in enumerate(test_labels) if lm is not None]
    broken_rows = rng.choice(landmark_rows, size=2 if n_test >= 20 else 1, replace=False)
    broken_test = {int(i): kind for i, kind in zip(broken_rows, ("truncated", "missing"))}
    kinds_test = _row_kinds(rng, n_test, broken_test, guarantee=False)

    train = tuple(
        SampleRow(
            "train",
            image_ids[i],
            _file_name(image_ids[i], kinds_train[i], rng),
            train_labels[i],
            kinds_train[i],
            int(_seed_rng(seed, 2, i).integers(2**31)),
        )
        for i in range(n_train)
    )
    test = tuple(
        SampleRow(
            "test",
            image_ids[n_train + i],
            _file_name(image_ids[n_train + i], kinds_test[i], rng),
            test_labels[i],
            kinds_test[i],
            int(_seed_rng(seed, 3, i).integers(2**31)),
        )
        for i in range(n_test)
    )
    return SamplePlan(tuple(sorted(landmarks, key=lambda lm: lm.landmark_id)), train, test)


# ----------------------------------------------------------------------------- drawing parts
# Each part is drawn by _draw_<kind>(draw, cx, yb, w, h, p): centred on x = cx, standing on
# y = yb, w x h pixels, with the proportions, colours and counts of the Part p.

Color = tuple[int, int, int]


def _shade(color: Color, factor: float) -> Color:
    """``color`` darker (factor < 1) or lighter (factor > 1)."""
    return tuple(int(min(255, max(0, c * factor))) for c in color)


def _draw_texture(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], texture: str, color: Color, accent: Color
) -> None:
    """Fill a rectangle's face with its texture (windows, brick courses, stripes, bands)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < 6 or h < 6 or texture == "plain":
        return
    if texture == "windows":
        step = max(4.0, w / 5)
        for y in np.arange(y0 + step * 0.5, y1 - step * 0.6, step):
            for x in np.arange(x0 + step * 0.3, x1 - step * 0.6, step):
                draw.rectangle([x, y, x + step * 0.45, y + step * 0.55], fill=_shade(color, 0.45))
    elif texture == "bricks":
        step = max(3.0, h / 14)
        for y in np.arange(y0 + step, y1, step):
            draw.line([(x0, y), (x1, y)], fill=_shade(color, 0.72), width=1)
    elif texture == "stripes":
        step = max(4.0, w / 7)
        for x in np.arange(x0 + step / 2, x1, step):
            draw.line([(x, y0), (x, y1)], fill=accent, width=max(1, int(step / 4)))
    elif texture == "bands":
        for frac in (0.2, 0.5, 0.8):
            y = y0 + h * frac
            draw.rectangle([x0, y, x1, y + max(2.0, h * 0.05)], fill=accent)


def _arch_spandrels(
    draw: ImageDraw.ImageDraw, x0: float, x1: float, top: float, spring: float, n: int, pillar: float, color: Color
) -> None:
    """Pillars and arched openings between ``x0`` and ``x1``; solid above the arches up to ``top``."""
    opening = (x1 - x0 - (n + 1) * pillar) / n
    for i in range(n):
        a = x0 + pillar + i * (opening + pillar)
        b = a + opening
        r = opening / 2
        arc = [(a + r - r * math.cos(t), spring - r * math.sin(t)) for t in np.linspace(0, math.pi, 13)]
        draw.polygon([(a, top), (a, spring)] + arc + [(b, spring), (b, top)], fill=color)
    for i in range(n + 1):
        a = x0 + i * (opening + pillar)
        draw.rectangle([a, top, a + pillar, spring + (x1 - x0)], fill=color)


def _draw_tower(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A square tower: crenellated, pointed roof or a cap with a clock face."""
    body = h * (0.7 + 0.12 * p.shape[0])
    x0, x1, top = cx - w / 2, cx + w / 2, yb - body
    draw.rectangle([x0, top, x1, yb], fill=p.color)
    _draw_texture(draw, (x0, top, x1, yb), p.texture, p.color, p.accent)
    draw.rectangle([cx + w * 0.2, top, x1, yb], fill=_shade(p.color, 0.82))
    if p.detail == 0:
        n = 3 + int(p.shape[1] * 3)
        step = w / (2 * n - 1)
        for i in range(n):
            draw.rectangle([x0 + 2 * i * step, top - (h - body) * 0.5, x0 + (2 * i + 1) * step, top], fill=p.color)
    elif p.detail == 1:
        draw.polygon([(x0 - w * 0.08, top), (x1 + w * 0.08, top), (cx, yb - h)], fill=p.accent)
    else:
        draw.rectangle([cx - w * 0.35, yb - h * 0.95, cx + w * 0.35, top], fill=p.color)
        draw.ellipse([cx - w * 0.3, top - w * 0.7, cx + w * 0.3, top - w * 0.1], fill=p.accent)
        draw.polygon([(cx - w * 0.4, yb - h * 0.95), (cx + w * 0.4, yb - h * 0.95), (cx, yb - h)], fill=p.accent)


def _draw_dome(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A drum with windows, a hemispherical or onion dome, a lantern and a spike."""
    drum = h * (0.3 + 0.15 * p.shape[0])
    dome = h * (0.35 + 0.15 * p.shape[1])
    x0, x1 = cx - w / 2, cx + w / 2
    draw.rectangle([x0, yb - drum, x1, yb], fill=p.color)
    for i in range(p.detail):
        x = x0 + (i + 0.5) * w / p.detail
        draw.rectangle([x - w * 0.02, yb - drum * 0.8, x + w * 0.02, yb - drum * 0.25], fill=_shade(p.color, 0.5))
    base = yb - drum
    r = w * 0.45
    if p.shape[2] < 0.6:
        draw.pieslice([cx - r, base - dome, cx + r, base + dome], 180, 360, fill=p.accent)
        apex = base - dome
    else:  # onion
        ts = np.linspace(0, 1, 15)
        half = [(cx + r * math.sin(math.pi * t**0.8) * (1.15 - 0.4 * t), base - dome * 1.1 * t) for t in ts]
        draw.polygon(half + [(2 * cx - x, y) for x, y in reversed(half)], fill=p.accent)
        apex = base - dome * 1.1
    lantern = max(2.0, w * 0.07)
    draw.rectangle([cx - lantern, apex - 0.4 * (apex - (yb - h)), cx + lantern, apex + 1], fill=p.color)
    draw.line([(cx, apex), (cx, yb - h)], fill=p.accent, width=max(1, int(lantern / 2)))


def _draw_arch(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A triumphal gate: an attic on pillars with 1-3 arched openings."""
    x0, x1, top = cx - w / 2, cx + w / 2, yb - h
    attic = top + h * (0.18 + 0.1 * p.shape[0])
    pillar = w * (0.28 if p.detail == 1 else 0.12)
    opening = (w - (p.detail + 1) * pillar) / p.detail
    spring = min(yb - h * 0.12, attic + opening / 2 + h * 0.08)
    draw.rectangle([x0 - w * 0.03, top, x1 + w * 0.03, attic], fill=p.color)
    draw.rectangle([x0, attic - h * 0.04, x1, attic], fill=p.accent)
    _arch_spandrels(draw, x0, x1, attic, spring, p.detail, pillar, p.color)
    draw.rectangle([x0, yb - h * 0.02, x1, yb], fill=p.color)
    _draw_texture(draw, (x0, top, x1, attic), p.texture, p.color, p.accent)


def _draw_pyramid(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A smooth pyramid with a shaded face, or a stepped one with a temple on top."""
    x0, x1, top = cx - w / 2, cx + w / 2, yb - h
    if p.detail == 0:
        draw.polygon([(x0, yb), (x1, yb), (cx, top)], fill=p.color)
        draw.polygon([(cx + w * (p.shape[0] - 0.5) * 0.3, yb), (x1, yb), (cx, top)], fill=_shade(p.color, 0.72))
        return
    steps = p.detail
    for i in range(steps):
        frac = i / steps
        half = w / 2 * (1 - 0.72 * frac)
        y1 = yb - h * 0.85 * frac
        color = _shade(p.color, 1.0 - 0.04 * (i % 2))
        draw.rectangle([cx - half, y1 - h * 0.85 / steps, cx + half, y1], fill=color)
    draw.rectangle([cx - w * 0.05, yb - h * 0.85, cx + w * 0.05, yb], fill=_shade(p.color, 0.8))
    draw.rectangle([cx - w * 0.1, top, cx + w * 0.1, yb - h * 0.85], fill=p.accent)


def _draw_bridge(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A deck on arched piers; cable-stayed or suspension pylons when ``shape[0] > 0.35``."""
    x0, x1 = cx - w / 2, cx + w / 2
    deck = yb - h * (0.3 + 0.1 * p.shape[1])
    thick = h * 0.05
    draw.rectangle([x0, deck - thick, x1, deck], fill=p.color)
    pillar = w * 0.025
    _arch_spandrels(draw, x0, x1, deck, min(yb - h * 0.05, deck + (w / p.detail) * 0.4), p.detail, pillar, p.color)
    if p.shape[0] <= 0.35:
        return
    pylons = (cx - w * 0.25, cx + w * 0.25)
    for px in pylons:
        draw.rectangle([px - w * 0.018, yb - h, px + w * 0.018, yb], fill=p.accent)
    if p.shape[2] < 0.5:  # suspension cables
        for a, b in ((x0, pylons[0]), (pylons[0], pylons[1]), (pylons[1], x1)):
            ts = np.linspace(0, 1, 16)
            ya = deck - thick if a == x0 else yb - h
            yb2 = deck - thick if b == x1 else yb - h
            sag = (deck - thick - min(ya, yb2)) * 0.85
            pts = [(a + (b - a) * t, ya + (yb2 - ya) * t + sag * 4 * t * (1 - t)) for t in ts]
            draw.line(pts, fill=p.accent, width=2)
    else:  # fans of stays
        for px in pylons:
            for k in range(1, 6):
                for sign in (-1, 1):
                    stay = [(px, yb - h * 0.95), (px + sign * w * 0.045 * k, deck - thick)]
                    draw.line(stay, fill=p.accent, width=1)


def _draw_skyline(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A cluster of tall blocks of varied heights, one with an antenna."""
    n = p.detail
    widths = np.array([0.6 + p.shape[i % 6] for i in range(n)])
    widths = widths / widths.sum() * w
    heights = [h * (0.35 + 0.6 * p.shape[(i * 5 + 3) % 6] ** (1 + (i % 3))) for i in range(n)]
    heights[int(p.shape[0] * n)] = h * 0.9
    x = cx - w / 2
    for i in range(n):
        color = p.color if i % 2 == 0 else _shade(p.color, 0.85)
        draw.rectangle([x, yb - heights[i], x + widths[i] - 1, yb], fill=color)
        texture = p.texture if p.texture != "plain" else "windows"
        _draw_texture(draw, (x, yb - heights[i], x + widths[i] - 1, yb), texture, color, p.accent)
        if heights[i] == h * 0.9:
            draw.line([(x + widths[i] / 2, yb - heights[i]), (x + widths[i] / 2, yb - h)], fill=p.accent, width=2)
        x += widths[i]


def _draw_spire(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A church: a nave block, a tall thin spire, and smaller pinnacles."""
    base = h * (0.25 + 0.1 * p.shape[0])
    draw.rectangle([cx - w / 2, yb - base, cx + w / 2, yb], fill=p.color)
    _draw_texture(draw, (cx - w / 2, yb - base, cx + w / 2, yb), p.texture, p.color, p.accent)
    tw = w * 0.3
    draw.rectangle([cx - tw / 2, yb - h * 0.5, cx + tw / 2, yb - base], fill=p.color)
    draw.polygon([(cx - tw * 0.6, yb - h * 0.5), (cx + tw * 0.6, yb - h * 0.5), (cx, yb - h)], fill=p.accent)
    rose = yb - h * 0.45
    draw.ellipse([cx - tw * 0.25, rose, cx + tw * 0.25, rose + tw * 0.5], fill=_shade(p.color, 0.5))
    for k in range(p.detail):
        for sign in (-1, 1):
            x = cx + sign * w * (0.28 + 0.18 * k / max(1, p.detail))
            pinnacle = [(x - w * 0.04, yb - base), (x + w * 0.04, yb - base), (x, yb - base - h * 0.12)]
            draw.polygon(pinnacle, fill=p.accent)


def _draw_colonnade(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A classical temple: steps, a row of columns, an entablature and a pediment."""
    x0, x1 = cx - w / 2, cx + w / 2
    draw.rectangle([x0 - w * 0.04, yb - h * 0.08, x1 + w * 0.04, yb], fill=_shade(p.color, 0.9))
    n = p.detail
    col = w / (2 * n - 1)
    for i in range(n):
        draw.rectangle([x0 + 2 * i * col, yb - h * 0.68, x0 + (2 * i + 1) * col, yb - h * 0.08], fill=p.color)
    draw.rectangle([x0 - w * 0.02, yb - h * 0.8, x1 + w * 0.02, yb - h * 0.68], fill=p.color)
    draw.rectangle([x0 - w * 0.02, yb - h * 0.76, x1 + w * 0.02, yb - h * 0.73], fill=p.accent)
    if p.shape[0] < 0.7:
        draw.polygon([(x0 - w * 0.04, yb - h * 0.8), (x1 + w * 0.04, yb - h * 0.8), (cx, yb - h)], fill=p.accent)
    else:
        draw.rectangle([x0 + w * 0.1, yb - h, x1 - w * 0.1, yb - h * 0.8], fill=p.accent)


def _draw_pagoda(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """Stacked tiers narrowing upwards, each under a flared roof, with a finial."""
    n = p.detail
    tier = h * 0.88 / n
    for i in range(n):
        half = w / 2 * (1 - 0.5 * i / n)
        y1 = yb - i * tier
        draw.rectangle([cx - half * 0.7, y1 - tier, cx + half * 0.7, y1], fill=p.color)
        eave = half * (1.1 + 0.2 * p.shape[0])
        roof = tier * 0.35
        draw.polygon(
            [
                (cx - eave, y1 - tier + roof),
                (cx - half * 0.6, y1 - tier - roof * 0.2),
                (cx + half * 0.6, y1 - tier - roof * 0.2),
                (cx + eave, y1 - tier + roof),
                (cx + eave * 0.9, y1 - tier + roof * 0.6),
                (cx - eave * 0.9, y1 - tier + roof * 0.6),
            ],
            fill=p.accent,
        )
    draw.line([(cx, yb - h * 0.88), (cx, yb - h)], fill=p.accent, width=max(1, int(w * 0.04)))


def _draw_obelisk(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A tapered shaft on a pedestal, with a pyramidion."""
    draw.rectangle([cx - w * 0.5, yb - h * 0.08, cx + w * 0.5, yb], fill=_shade(p.color, 0.85))
    bw, tw = w * 0.32, w * 0.22
    shaft = [(cx - bw, yb - h * 0.08), (cx + bw, yb - h * 0.08), (cx + tw, yb - h * 0.9), (cx - tw, yb - h * 0.9)]
    draw.polygon(shaft, fill=p.color)
    draw.polygon([(cx - tw, yb - h * 0.9), (cx + tw, yb - h * 0.9), (cx, yb - h)], fill=p.accent)


def _draw_wheel(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """An observation wheel: rim, spokes, cabins and an A-frame support."""
    r = h * 0.46
    cy = yb - h + r
    line = max(1, int(r / 25))
    for sign in (-1, 1):
        draw.line([(cx, cy), (cx + sign * r * 0.55, yb)], fill=p.color, width=line * 2)
    for k in range(p.detail):
        t = 2 * math.pi * (k / p.detail + p.shape[0])
        draw.line([(cx, cy), (cx + r * math.cos(t), cy + r * math.sin(t))], fill=p.color, width=line)
        cab = max(1.5, r * 0.06)
        x, y = cx + r * math.cos(t), cy + r * math.sin(t)
        draw.ellipse([x - cab, y - cab, x + cab, y + cab], fill=p.accent)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=p.color, width=line * 2)
    draw.ellipse([cx - r * 0.08, cy - r * 0.08, cx + r * 0.08, cy + r * 0.08], fill=p.accent)


def _draw_statue(draw: ImageDraw.ImageDraw, cx: float, yb: float, w: float, h: float, p: Part) -> None:
    """A figure on a tall pedestal, one arm raised."""
    ped = h * (0.35 + 0.15 * p.shape[0])
    draw.rectangle([cx - w * 0.5, yb - ped, cx + w * 0.5, yb], fill=p.color)
    draw.rectangle([cx - w * 0.56, yb - ped, cx + w * 0.56, yb - ped + h * 0.03], fill=_shade(p.color, 0.8))
    body = h - ped
    figure = p.accent
    draw.polygon(
        [
            (cx - w * 0.3, yb - ped),
            (cx + w * 0.3, yb - ped),
            (cx + w * 0.14, yb - ped - body * 0.7),
            (cx - w * 0.14, yb - ped - body * 0.7),
        ],
        fill=figure,
    )
    head = w * 0.12
    hy = yb - ped - body * 0.78
    draw.ellipse([cx - head, hy - head, cx + head, hy + head], fill=figure)
    side = 1 if p.shape[1] < 0.5 else -1
    draw.line(
        [(cx + side * w * 0.12, yb - ped - body * 0.65), (cx + side * w * 0.3, yb - h)],
        fill=figure,
        width=max(2, int(w * 0.08)),
    )


_PART_DRAWERS = {
    "tower": _draw_tower,
    "dome": _draw_dome,
    "arch": _draw_arch,
    "pyramid": _draw_pyramid,
    "bridge": _draw_bridge,
    "skyline": _draw_skyline,
    "spire": _draw_spire,
    "colonnade": _draw_colonnade,
    "pagoda": _draw_pagoda,
    "obelisk": _draw_obelisk,
    "wheel": _draw_wheel,
    "statue": _draw_statue,
}


# ----------------------------------------------------------------------------- drawing views


def _sky(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A vertical sky gradient (H, W, 3) uint8 from one of the sky presets, jittered."""
    top, bottom = _SKIES[int(rng.integers(len(_SKIES)))]
    top = np.array(_jitter(top, rng, 18), dtype=np.float32)
    bottom = np.array(_jitter(bottom, rng, 18), dtype=np.float32)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None] ** float(rng.uniform(0.6, 1.6))
    column = top * (1 - t) + bottom * t
    return np.broadcast_to(column, (height, width, 3)).astype(np.uint8)


def _draw_clouds(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """A few soft, light ellipses high in the sky."""
    for _ in range(int(rng.integers(0, 5))):
        x, y = rng.uniform(0, width), rng.uniform(0, height * 0.35)
        rx, ry = rng.uniform(0.05, 0.18) * width, rng.uniform(0.015, 0.05) * height
        shade = int(rng.integers(205, 250))
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=(shade, shade, min(255, shade + 6)))


def _draw_background(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    width: int,
    height: int,
    horizon: float,
    n_max: int,
    tall: float,
) -> None:
    """Far hills and generic grey blocks on the horizon (the same kind in every class)."""
    if rng.random() < 0.5:
        xs = np.linspace(-5, width + 5, 9)
        ys = horizon - rng.uniform(0.02, 0.12, 9) * height
        shade = int(rng.integers(90, 170))
        draw.polygon(
            [(float(x), float(y)) for x, y in zip(xs, ys)] + [(width + 5, horizon), (-5, horizon)],
            fill=(shade - 10, shade, shade - 20),
        )
    for _ in range(int(rng.integers(0, n_max + 1))):
        bw, bh = rng.uniform(0.04, 0.14) * width, rng.uniform(0.04, tall) * height
        x = rng.uniform(-0.05, 1.0) * width
        grey = int(rng.integers(95, 200))
        color = _jitter((grey, grey, grey), rng, 12)
        draw.rectangle([x, horizon - bh, x + bw, horizon + 1], fill=color)
        if rng.random() < 0.5:
            _draw_texture(draw, (x, horizon - bh, x + bw, horizon), "windows", color, color)


def _draw_ground(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int, horizon: float, ground: str
) -> None:
    """The ground below the horizon: grass, water (with glints), plaza (with joints), ..."""
    color = _jitter(_GROUNDS[ground], rng, 14)
    draw.rectangle([0, horizon, width, height], fill=color)
    if ground == "water":
        for _ in range(int(rng.integers(6, 16))):
            y = rng.uniform(horizon, height)
            x = rng.uniform(0, width)
            draw.line([(x, y), (x + rng.uniform(5, 30), y)], fill=_shade(color, 1.3), width=1)
    elif ground in ("plaza", "asphalt"):
        for k in range(1, 6):
            y = horizon + (height - horizon) * (k / 6) ** 1.6
            draw.line([(0, y), (width, y)], fill=_shade(color, 0.85), width=1)


def _draw_landmark(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, landmark: Landmark, width: int, height: int, horizon: float
) -> None:
    """The landmark at a random place and scale; sometimes so close it leaves the frame."""
    span = max(abs(p.x) + p.width / 2 for p in landmark.parts) * 2
    unit = rng.uniform(0.38, 0.8) * height
    if rng.random() < 0.8:
        unit = min(unit, 0.92 * width / span)
    cx = width / 2 + rng.uniform(-0.2, 0.2) * width
    base = horizon + rng.uniform(0.0, 0.05) * height
    for part in landmark.parts:
        _PART_DRAWERS[part.kind](draw, cx + part.x * unit, base, part.width * unit, part.height * unit, part)


def _draw_occluders(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int, horizon: float, crowd: float
) -> None:
    """Trees and people in front of the landmark."""
    for _ in range(int(rng.poisson(0.9 * crowd))):
        th = rng.uniform(0.15, 0.45) * height
        x = rng.uniform(-0.05, 1.05) * width
        y = rng.uniform(horizon + 0.02 * height, height * 1.05)
        draw.rectangle([x - th * 0.04, y - th * 0.6, x + th * 0.04, y], fill=_jitter((80, 60, 40), rng, 15))
        green = _jitter((50, 100, 45), rng, 25)
        for _ in range(int(rng.integers(1, 4))):
            r = th * rng.uniform(0.18, 0.32)
            ox, oy = rng.uniform(-0.15, 0.15) * th, th * rng.uniform(0.55, 0.85)
            draw.ellipse([x + ox - r, y - oy - r, x + ox + r, y - oy + r], fill=green)
    for _ in range(int(rng.poisson(2.5 * crowd))):
        ph = rng.uniform(0.05, 0.18) * height
        x = rng.uniform(0, width)
        y = rng.uniform(horizon + 0.02 * height, height * 1.1)
        shirt = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x - ph * 0.16, y - ph * 0.82, x + ph * 0.16, y], fill=shirt)
        skin = _jitter((190, 145, 110), rng, 50)
        draw.ellipse([x - ph * 0.1, y - ph, x + ph * 0.1, y - ph * 0.8], fill=skin)


def _draw_clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """A close-up of no landmark: big random shapes over a random background."""
    draw.rectangle([0, 0, width, height], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    for _ in range(int(rng.integers(6, 16))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=color)
        else:
            draw.rectangle([x - rx, y - ry, x + rx, y + ry], fill=color)


def _photo_effects(img: Image.Image, rng: np.random.Generator, tint: np.ndarray, max_noise: float) -> Image.Image:
    """Exposure, a colour cast towards the sky's ``tint``, a light gradient, contrast, blur, noise.

    Args:
        img: the drawn scene (RGB).
        rng: the view's generator.
        tint: RGB of the light (the sky near the horizon): dusk light turns everything warm.
        max_noise: the largest standard deviation of the sensor noise.
    """
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.4))))
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    xs = (np.arange(w, dtype=np.float32) / w - 0.5) * math.cos(angle)
    ys = (np.arange(h, dtype=np.float32) / h - 0.5) * math.sin(angle)
    light = 1 + rng.uniform(0, 0.35) * (ys[:, None] + xs[None, :])
    cast = 1 + rng.uniform(0.0, 0.35) * (tint / max(float(tint.mean()), 1.0) - 1)
    gain = rng.uniform(0.62, 1.3) * (1 + rng.normal(0, 0.1, 3)) * cast
    contrast = rng.uniform(0.8, 1.15)
    arr *= light[..., None] * (gain * contrast).astype(np.float32)
    noise = rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(rng.uniform(0.2, 1.0) * max_noise)
    arr += noise + np.float32((1 - contrast) * arr.mean() / contrast)
    return Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8))


def _file_size(rng: np.random.Generator, kind: str) -> tuple[int, int]:
    """(width, height) of the file: longest side 320-1600 (mostly 400-900), varied aspect."""
    u = rng.random()
    if kind == "gif":
        longest = rng.uniform(320, 480)
    elif u < 0.06:
        longest = rng.uniform(320, 400)
    elif u < 0.92:
        longest = rng.triangular(400, 520, 900)
    else:
        longest = rng.triangular(900, 1000, 1600)
    if kind in ("png", "png_rgba"):
        longest = min(longest, 560)
    pick = min(int(np.searchsorted(_ASPECT_CDF, rng.random(), side="right")), len(_ASPECTS) - 1)
    aspect = _ASPECTS[pick] * rng.uniform(0.95, 1.05)
    if aspect >= 1:
        return int(longest), max(1, int(longest / aspect))
    return max(1, int(longest * aspect)), int(longest)


def _render(
    landmark: Landmark | None, view_seed: int, kind: str, want_mask: bool = False
) -> tuple[Image.Image, Image.Image | None]:
    """Draw one photo (RGB, upright, at its file size) and, if asked, its non-sky mask."""
    rng = _seed_rng(view_seed, 7)
    width, height = _file_size(rng, kind)
    scale = CANVAS / max(width, height)
    cw, ch = max(8, round(width * scale)), max(8, round(height * scale))
    pw, ph = int(cw * 1.25) + 2, int(ch * 1.25) + 2  # room for the roll
    sky = _sky(rng, pw, ph)
    img = Image.fromarray(sky)
    draw = ImageDraw.Draw(img)
    _draw_clouds(draw, rng, pw, ph)
    sky_only = np.asarray(img).copy() if want_mask else None
    horizon = rng.uniform(0.58, 0.84) * ph
    if landmark is None and rng.random() < 0.5:
        _draw_clutter(draw, rng, pw, ph)
    else:
        if landmark is None:  # a street: more and taller ordinary buildings, a crowd
            _draw_background(draw, rng, pw, ph, horizon, n_max=8, tall=0.4)
        else:
            _draw_background(draw, rng, pw, ph, horizon, n_max=4, tall=0.22)
        ground = list(_GROUNDS)[int(rng.integers(len(_GROUNDS)))]
        if landmark is not None and rng.random() < 0.75:  # usually the landmark's own setting
            ground = landmark.ground
        _draw_ground(draw, rng, pw, ph, horizon, ground)
        if landmark is not None:
            _draw_landmark(draw, rng, landmark, pw, ph, horizon)
        _draw_occluders(draw, rng, pw, ph, horizon, 2.0 if landmark is None else float(rng.uniform(0.2, 1.6)))
    angle = float(rng.uniform(-6, 6))
    box = ((pw - cw) // 2, (ph - ch) // 2, (pw - cw) // 2 + cw, (ph - ch) // 2 + ch)
    mask = None
    if sky_only is not None:
        drawn = np.any(np.asarray(img) != sky_only, axis=2).astype(np.uint8) * 255
        mask = Image.fromarray(drawn).rotate(angle).crop(box).resize((width, height), Image.Resampling.BILINEAR)
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR).crop(box)
    img = _photo_effects(img, rng, sky[-1, 0].astype(np.float32), 1.5 if kind in ("png", "png_rgba") else 6.0)
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    return img, mask


def upright_image(plan: SamplePlan, row: SampleRow) -> Image.Image:
    """The RGB picture of ``row`` as a viewer should see it (before any file format's quirks)."""
    landmark = plan.landmark(row.landmark_id) if row.landmark_id is not None else None
    return _render(landmark, row.view_seed, row.kind)[0]


# ----------------------------------------------------------------------------- encoding


def _jpeg(img: Image.Image, rng: np.random.Generator, **kwargs) -> bytes:
    """JPEG bytes at a random quality between 60 and 92."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(60, 93)), **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    """PNG bytes (fast compression: PNG photos are big and slow to squeeze)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _exif_jpeg(img: Image.Image, rng: np.random.Generator) -> bytes:
    """A JPEG whose pixels are stored turned, with the EXIF Orientation tag that turns them back."""
    orientation = int(rng.choice([6, 3, 8], p=[0.6, 0.2, 0.2]))
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION_TAG] = orientation
    return _jpeg(img.transpose(_EXIF_STORE[orientation]), rng, exif=exif.tobytes())


def _rgba_png(img: Image.Image, mask: Image.Image, rng: np.random.Generator) -> bytes:
    """A PNG with alpha: either a cut-out (the sky transparent) or an all-opaque alpha channel."""
    rgba = img.convert("RGBA")
    rgba.putalpha(mask if rng.random() < 0.5 else Image.new("L", img.size, 255))
    return _png(rgba)


def _animated_gif(img: Image.Image, rng: np.random.Generator) -> bytes:
    """A 3-5 frame GIF: the photo first, then panned/brightened copies, then a title card."""
    arr = np.asarray(img, dtype=np.float32)
    n = int(rng.integers(3, 6))
    frames = [img]
    for k in range(1, n - 1):
        moved = np.roll(arr, int(k * img.width * 0.05), axis=1) * (1 + 0.12 * k)
        frames.append(Image.fromarray(np.clip(moved, 0, 255).astype(np.uint8)))
    card = Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    ImageDraw.Draw(card).rectangle(
        [img.width * 0.1, img.height * 0.4, img.width * 0.9, img.height * 0.6],
        fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
    )
    frames.append(card)
    quantized = [f.quantize(colors=96, method=Image.Quantize.FASTOCTREE) for f in frames]
    buf = io.BytesIO()
    quantized[0].save(buf, "GIF", save_all=True, append_images=quantized[1:], duration=500, loop=0)
    return buf.getvalue()


_HTML_ERROR = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n"
)


def _encode(row: SampleRow, landmark: Landmark | None) -> bytes | None:
    """The file content for a row (``None``: the file must not exist)."""
    kind = row.kind
    if kind == "missing":
        return None
    if kind == "html":
        return _HTML_ERROR
    if kind == "empty":
        return b""
    img, mask = _render(landmark, row.view_seed, kind, want_mask=kind == "png_rgba")
    rng = _seed_rng(row.view_seed, 11)
    if kind == "truncated":
        data = _jpeg(img, rng)
        return data[: int(len(data) * rng.uniform(0.3, 0.7))]
    encoders = {
        "jpeg": lambda: _jpeg(img, rng),
        "exif": lambda: _exif_jpeg(img, rng),
        "gray": lambda: _jpeg(img.convert("L"), rng),
        "cmyk": lambda: _jpeg(img.convert("CMYK"), rng),
        "png": lambda: _png(img),
        "png_rgba": lambda: _rgba_png(img, mask, rng),
        "gif": lambda: _animated_gif(img, rng),
    }
    return encoders[kind]()


def _write_image(task: tuple[SampleRow, Landmark | None, str]) -> int:
    """Write one row's file under ``images_dir``; return its size in bytes (0 when none)."""
    row, landmark, images_dir = task
    data = _encode(row, landmark)
    path = Path(images_dir) / row.file_name
    if data is None:
        path.unlink(missing_ok=True)
        return 0
    path.write_bytes(data)
    return len(data)


# ----------------------------------------------------------------------------- writing the sample


def _write_images(plan: SamplePlan, images_dir: Path, workers: int, progress: bool) -> int:
    """Render and write every image (in ``workers`` processes); return the total bytes."""
    from tqdm import tqdm  # only while images are drawn (`landmarks --help` imports this module)

    tasks = [
        (row, plan.landmark(row.landmark_id) if row.landmark_id is not None else None, str(images_dir))
        for row in plan.train + plan.test
    ]
    total = 0
    with tqdm(total=len(tasks), desc="sample images", unit="img", disable=not progress) as bar:
        if workers > 1 and len(tasks) >= 64:
            with multiprocessing.get_context().Pool(workers) as pool:
                for size in pool.imap(_write_image, tasks, chunksize=8):
                    total += size
                    bar.update()
        else:
            for task in tasks:
                total += _write_image(task)
                bar.update()
    return total


def _remove_stale_images(images_dir: Path, plan: SamplePlan) -> None:
    """Delete image files of an earlier sample that this plan does not write (ours only)."""
    keep = {row.file_name for row in plan.train + plan.test if row.kind != "missing"}
    for path in images_dir.iterdir():
        if _FILE_NAME.match(path.name) and path.name not in keep:
            path.unlink()


def _write_csv(path: Path, header: list[str], rows: list[list], quote_strings: bool) -> None:
    """Write a CSV atomically; ``quote_strings`` quotes every text field like Kaggle's files."""
    with files.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(
            f, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC if quote_strings else csv.QUOTE_MINIMAL
        )
        writer.writerow(header)
        writer.writerows(rows)


def _write_csvs(plan: SamplePlan, out: Path, file_uris: bool) -> None:
    """train.csv, test.csv, test_solution.csv and landmarks.csv."""

    def url(row: SampleRow) -> str:
        return (out / row.url).resolve().as_uri() if file_uris else row.url

    _write_csv(
        out / "train.csv",
        ["id", "url", "landmark_id"],
        [[r.id, url(r), r.landmark_id] for r in plan.train],
        quote_strings=True,
    )
    _write_csv(out / "test.csv", ["id", "url"], [[r.id, url(r)] for r in plan.test], quote_strings=True)
    _write_csv(
        out / "test_solution.csv",
        ["id", "landmark_id"],
        [[r.id, "" if r.landmark_id is None else r.landmark_id] for r in plan.test],
        quote_strings=False,
    )
    _write_csv(
        out / "landmarks.csv",
        ["landmark_id", "name", "structure"],
        [[lm.landmark_id, lm.name, lm.structure] for lm in plan.landmarks],
        quote_strings=False,
    )


def _summary(plan: SamplePlan, out: Path, params: dict, total_bytes: int, seconds: float) -> dict:
    """What was written: counts, per-landmark counts, formats, broken rows, size and time."""
    test_counts: dict[int, int] = {}
    for row in plan.test:
        if row.landmark_id is not None:
            test_counts[row.landmark_id] = test_counts.get(row.landmark_id, 0) + 1
    train_counts = plan.train_counts()
    formats = {split: {} for split in ("train", "test")}
    for row in plan.train + plan.test:
        formats[row.split][row.kind] = formats[row.split].get(row.kind, 0) + 1
    return {
        "out_dir": str(out),
        "params": params,
        "n_landmarks": len(plan.landmarks),
        "train_rows": len(plan.train),
        "test_rows": len(plan.test),
        "test_non_landmark": sum(row.landmark_id is None for row in plan.test),
        "head_count": max(train_counts.values()),
        "single_image_landmarks": sum(c == 1 for c in train_counts.values()),
        "per_landmark": [
            {"landmark_id": lm, "name": plan.landmark(lm).name, "train": c, "test": test_counts.get(lm, 0)}
            for lm, c in train_counts.items()
        ],
        "formats": formats,
        "broken": [
            {"split": r.split, "id": r.id, "url": r.url, "landmark_id": r.landmark_id, "reason": r.kind}
            for r in plan.train + plan.test
            if r.broken
        ],
        "files": sum(row.kind != "missing" for row in plan.train + plan.test),
        "bytes": total_bytes,
        "seconds": round(seconds, 2),
        "reused": False,
    }


def _finished_summary(out: Path, params: dict) -> dict | None:
    """The stored summary when ``out`` already holds a complete sample for ``params``."""
    try:
        stored = json.loads((out / "sample.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("params") != params:
        return None
    if not all((out / name).is_file() for name in _CSV_NAMES):
        return None
    images = out / "images"
    if sum(1 for p in images.iterdir() if _FILE_NAME.match(p.name)) < stored.get("files", 0):
        return None
    return {**stored, "out_dir": str(out), "reused": True}


def make_sample(
    out_dir: str | os.PathLike,
    n_landmarks: int = 30,
    n_train: int = 1500,
    n_test: int = 150,
    seed: int = 0,
    progress: bool = True,
    file_uris: bool = False,
    workers: int | None = None,
) -> dict:
    """Write the synthetic landmark sample into ``out_dir``; return its summary.

    Returns at once with the stored summary (``reused`` True) when ``out_dir`` already holds
    a complete sample for the same parameters; otherwise (re)writes it: the CSVs are removed
    first and written after the images, ``sample.json`` last, so that a killed run is redone
    and an existing ``train.csv`` always belongs to a complete sample.

    Args:
        out_dir: the folder for the CSVs and ``images/`` (created if missing).
        n_landmarks: number of landmarks (classes).
        n_train: rows of ``train.csv``, broken rows included.
        n_test: rows of ``test.csv``; about 5% show no landmark (empty label in the solution).
        seed: the same seed gives byte-identical files.
        progress: show a tqdm progress bar.
        file_uris: write absolute ``file://`` URIs instead of paths relative to the CSVs.
        workers: processes drawing images (default: the CPU count, at most 8).
    """
    out = Path(out_dir)
    params = {
        "n_landmarks": n_landmarks,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "file_uris": file_uris,
        "version": SAMPLE_VERSION,
    }
    if file_uris:  # the URIs name the folder: a moved folder is rewritten
        params["root"] = str(out.resolve())
    finished = _finished_summary(out, params)
    if finished is not None:
        return finished
    start = time.perf_counter()
    plan = plan_sample(n_landmarks, n_train, n_test, seed)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in ("sample.json", *_CSV_NAMES):  # until rewritten: an existing train.csv means complete
        (out / name).unlink(missing_ok=True)
    _remove_stale_images(images, plan)
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    total_bytes = _write_images(plan, images, workers, progress)
    _write_csvs(plan, out, file_uris)
    summary = _summary(plan, out, params, total_bytes, time.perf_counter() - start)
    files.write_json(out / "sample.json", summary, indent=1)
    return summary


# ----------------------------------------------------------------------------- command line


def _run_cli(args: argparse.Namespace) -> int:
    """``landmarks sample``: write the sample and print one line about it."""
    out = Path(args.dir) if args.dir is not None else paths.resolve(DEFAULT_DIR)
    try:
        summary = make_sample(
            out,
            n_landmarks=args.landmarks,
            n_train=args.train,
            n_test=args.test,
            seed=args.seed,
            progress=not args.quiet,
            file_uris=args.file_uris,
            workers=args.workers,
        )
    except ValueError as err:
        print(f"landmarks sample: error: {err}", file=sys.stderr)
        return 2
    state = "already complete" if summary["reused"] else f"written in {summary['seconds']:.1f} s"
    print(
        f"{out}: {summary['train_rows']} train rows ({summary['n_landmarks']} landmarks, "
        f"{sum(b['split'] == 'train' for b in summary['broken'])} broken), {summary['test_rows']} test rows "
        f"({summary['test_non_landmark']} without a landmark), {summary['bytes'] / 1e6:.1f} MB; {state}"
    )
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``landmarks sample [DIR] [--landmarks N] [--train N] [--test N] [--seed S]``."""
    parser = subparsers.add_parser(
        "sample",
        help="write the embedded synthetic landmark data set",
        description="Write a synthetic landmark data set in the Kaggle 2018 layout (train.csv, test.csv, "
        "test_solution.csv, landmarks.csv, images/). Nothing is downloaded.",
    )
    parser.add_argument(
        "dir",
        nargs="?",
        default=None,
        metavar="DIR",
        help=f"output folder (default: {DEFAULT_DIR} under the project root)",
    )
    parser.add_argument("--landmarks", type=int, default=30, help="number of landmarks (default 30)")
    parser.add_argument("--train", type=int, default=1500, help="train.csv rows (default 1500)")
    parser.add_argument("--test", type=int, default=150, help="test.csv rows (default 150)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--file-uris", action="store_true", help="write file:// URIs instead of relative paths")
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: CPU count, max 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_cli)
