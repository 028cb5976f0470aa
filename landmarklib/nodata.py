"""When a notebook has no images to work on: one line naming the cause, never a traceback.

A fetch that reached no host leaves a folder whose manifest lists only failed rows. Notebooks
03-05 (and notebook 06's test-set part) need images; without them they stop with ``NoData``,
whose message is one line such as

    no images in data/processed/study-2018/train: 5000 of 5000 rows failed: host unreachable (5000)

IPython shows that line instead of a traceback (``NoData._render_traceback_``), and
``landmarks report`` marks the notebook "stopped" with the line, goes on with the next
notebooks, and shows it in its summary and in ``index.html``.

    NoData                 the exception
    require_images         raise NoData unless a folder holds a usable labelled image
    require_split          data.load_split, or NoData when too few images are left to train on
"""

from __future__ import annotations

import dataclasses
import os

from . import catalog, config, data, files, manifest, paths

_shown = files.display_path  # a folder as the line names it: relative to the project root when inside it


class NoData(Exception):
    """A notebook cannot go on: an earlier stage left it no images. The message is one line."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting a traceback: the notebook shows one line.
        return [f"{type(self).__name__}: {self}"]


def require_images(folder: str | os.PathLike) -> None:
    """Raise ``NoData`` unless ``folder`` holds at least one labelled image (``data.read_folder``)."""
    folder = paths.resolve(folder)
    if not folder.is_dir():
        raise NoData(f"no images in {_shown(folder)}: the folder does not exist (notebook 02 not run?)")
    rows, _ = data.read_folder(folder)
    if rows.empty:
        raise NoData(manifest.no_images_reason(folder, shown_as=_shown(folder)))


def require_split(settings, **changes):
    """``data.load_split(settings)``, or ``NoData`` naming why there is nothing to train and validate on.

    Args:
        settings: a ``config.SplitConfig`` (or a folder: the other settings at their defaults).
        changes: settings that differ from ``settings`` (``min_images=10``).

    Raises:
        NoData: no labelled image in the folder; no landmark with ``min_images`` images; or
            no validation image (every kept landmark has a single image).
    """
    if not isinstance(settings, config.SplitConfig):
        settings = config.SplitConfig(train_dir=str(settings))
    settings = dataclasses.replace(settings, **changes)
    require_images(settings.train_dir)
    folder = paths.resolve(settings.train_dir)
    rows, _ = data.read_folder(folder)
    min_images = settings.min_images
    if catalog.filter_min_images(rows, min_images).empty:
        most = int(rows["landmark_id"].value_counts().max())
        raise NoData(
            f"too few images in {_shown(folder)}: no landmark has min_images={min_images} images "
            f"({len(rows):,} images of {rows['landmark_id'].nunique():,} landmarks, at most {most} each)"
        )
    split = data.load_split(settings)
    if split.val.empty:
        raise NoData(
            f"too few images in {_shown(folder)} for a validation split: {len(split.train):,} images of "
            f"{len(split.landmark_ids):,} landmarks, none with two or more images"
        )
    return split
