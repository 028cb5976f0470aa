"""The training augmentation of the input pipeline (``landmarklib.augment``), tested by its effect on images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landmarklib import augment, data
from landmarklib.nets import pipeline

from conftest import write_tiny_folder

STUDY = augment.Augmentation("study")
PHOTO = augment.Augmentation("photo")


def gradient_image(size: int = 32) -> np.ndarray:
    """An image whose every pixel differs from its mirror images (red: x, green: y, blue: a mix)."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (3 * x + y) * 255 // (4 * (size - 1))], -1).astype(
        np.uint8
    )


def resample(image: np.ndarray, matrix: np.ndarray, shift: tuple) -> np.ndarray:
    return np.asarray(augment._resample(image, matrix, shift))


def draws(aug: augment.Augmentation, n: int = 400, size: int = 32) -> list[tuple[np.ndarray, tuple]]:
    return [aug.geometry(augment.rng(7, 0, row), (size, size)) for row in range(n)]


def test_identity_geometry_leaves_the_image_as_it_is():
    image = gradient_image()
    np.testing.assert_array_equal(np.asarray(augment._resample(image, np.eye(2), (0.0, 0.0))), image)


def test_a_known_transform_moves_the_pixels_where_it_says():
    image = gradient_image()
    mirrored = resample(image, np.diag([-1.0, 1.0]), (0.0, 0.0))
    np.testing.assert_array_equal(mirrored, image[:, ::-1])
    upside_down = resample(image, np.diag([1.0, -1.0]), (0.0, 0.0))
    np.testing.assert_array_equal(upside_down, image[::-1])
    # a quarter turn: output (x, y) takes the input at (y, -x) about the centre: numpy's rot90 clockwise
    quarter = resample(image, np.array([[0.0, 1.0], [-1.0, 0.0]]), (0.0, 0.0))
    np.testing.assert_array_equal(quarter, np.rot90(image, -1))
    # a shift of 4 pixels to the right in the input: the output's column x shows the input's x + 4
    shifted = resample(image, np.eye(2), (4.0, 0.0))
    np.testing.assert_array_equal(shifted[:, :-4], image[:, 4:])
    # beyond the edge: the reflected image (Keras' "reflect": d c b a | a b c d), not black
    np.testing.assert_array_equal(shifted[:, -4:], image[:, ::-1][:, :4])


def test_zooming_out_fills_with_the_reflected_image_never_black():
    image = np.full((32, 32, 3), 200, np.uint8)
    image[:, :16] = 100
    out = resample(image, np.diag([1.2, 1.2]), (0.0, 0.0))
    assert out.min() >= 100 and set(np.unique(out)) <= set(range(100, 201))


def test_study_draws_cover_its_ranges_flips_rotation_and_zoom():
    angles, zooms, flips_x, flips_y = [], [], [], []
    for matrix, shift in draws(STUDY):
        assert shift == (0.0, 0.0)
        zoom = math.sqrt(abs(np.linalg.det(matrix)))
        zooms.append(zoom)
        # matrix / zoom = flips @ rotation = [[fx cos, -fx sin], [fy sin, fy cos]], cos > 0 (|angle| <= 36 degrees)
        flips_x.append(matrix[0, 0] < 0)
        flips_y.append(matrix[1, 1] < 0)
        angles.append(math.degrees(math.atan2(abs(matrix[1, 0]), abs(matrix[1, 1]))))
    assert 0.8 <= min(zooms) < 0.82 and 1.18 < max(zooms) <= 1.2
    assert max(angles) <= 36.0 + 1e-6 and max(angles) > 34.0  # 0.1 of a turn either way
    assert 0.4 < np.mean(flips_x) < 0.6 and 0.4 < np.mean(flips_y) < 0.6


def test_photo_draws_cover_its_crop_and_shift_and_flip_only_horizontally():
    zooms, shifts, flips = [], [], []
    for matrix, shift in draws(PHOTO):
        assert matrix[0, 1] == matrix[1, 0] == 0  # no rotation
        assert matrix[1, 1] > 0  # never upside down
        flips.append(matrix[0, 0] < 0)
        zooms += [abs(matrix[0, 0]), matrix[1, 1]]
        shifts += [shift[0] / (abs(matrix[0, 0]) * 32), shift[1] / (matrix[1, 1] * 32)]
    cut = PHOTO.crop_scale
    assert 1 - cut <= min(zooms) < 1 - cut + 0.02 and 0.98 < max(zooms) <= 1.0
    assert -cut / 2 <= min(shifts) < -cut / 2 + 0.02 and cut / 2 - 0.02 < max(shifts) <= cut / 2
    assert 0.4 < np.mean(flips) < 0.6
    vertical = augment.Augmentation("photo", vertical_flips=True)
    assert any(m[1, 1] < 0 for m, _ in draws(vertical, 50))


def test_photo_jitter_moves_brightness_and_contrast_within_their_ranges():
    flat = np.full((16, 16, 3), 128, np.uint8)  # no contrast to change, no geometry to see
    levels = [int(PHOTO.image(flat, augment.rng(1, 0, row))[0, 0, 0]) for row in range(300)]
    assert 128 - 0.15 * 255 - 1 <= min(levels) < 128 - 0.12 * 255
    assert 128 + 0.12 * 255 < max(levels) <= 128 + 0.15 * 255 + 1
    two_tone = np.zeros((16, 16, 3), np.uint8)
    two_tone[:, :] = 100
    two_tone[:8] = 150  # half and half: the contrast factor shows as the spread between the halves
    plain = augment.Augmentation("photo", crop_scale=0.0)
    spreads = []
    for row in range(300):
        out = plain.image(two_tone, augment.rng(2, 0, row)).astype(int)
        spreads.append((out[:8].mean() - out[8:].mean()) / 50)
    assert 0.85 - 0.03 <= min(spreads) < 0.9 and 1.1 < max(spreads) <= 1.15 + 0.03
    still = augment.Augmentation("photo", crop_scale=0.0, jitter=0.0)
    image = gradient_image()
    outs = [still.image(image, augment.rng(3, 0, row)) for row in range(20)]
    assert all(np.array_equal(o, image) or np.array_equal(o, image[:, ::-1]) for o in outs)
    assert any(np.array_equal(o, image) for o in outs) and any(np.array_equal(o, image[:, ::-1]) for o in outs)


def test_the_jitter_table_is_the_arithmetic_on_every_pixel():
    from PIL import Image

    image = np.random.default_rng(4).integers(0, 256, (24, 20, 3)).astype(np.uint8)
    for delta, factor in [(30.0, 1.1), (-25.5, 0.87), (0.0, 1.0), (38.25, 1.15)]:
        x = np.clip(image.astype(np.float64) + delta, 0, 255)
        mean = x.mean(axis=(0, 1), keepdims=True)
        expected = np.rint(np.clip((x - mean) * factor + mean, 0, 255)).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(augment._jitter(Image.fromarray(image), delta, factor)), expected)


def test_a_draw_depends_on_seed_epoch_and_row_only():
    image = gradient_image()
    batch = np.stack([image] * 4)
    once = STUDY.batch(batch, seed=5, epoch=2, rows=[10, 11, 12, 13])
    again = STUDY.batch(batch[::-1].copy(), seed=5, epoch=2, rows=[13, 12, 11, 10])
    np.testing.assert_array_equal(once, again[::-1])
    assert not np.array_equal(once, STUDY.batch(batch, seed=5, epoch=3, rows=[10, 11, 12, 13]))
    assert not np.array_equal(once[0], once[1])


def test_batches_augment_training_images_the_same_with_any_number_of_threads(tmp_path):
    folder = write_tiny_folder(tmp_path / "train", per_class=5)
    split = data.load_split(folder, val_fraction=0.2, seed=1)

    def epoch_images(workers: int, augmentation) -> list[np.ndarray]:
        batches = pipeline.batches(
            split.train, 32, 4, shuffle=True, seed=3, workers=workers, dtype="uint8", augmentation=augmentation
        )
        return [batches[i][0] for i in range(len(batches))]

    plain = epoch_images(1, None)
    one, four = epoch_images(1, PHOTO), epoch_images(4, PHOTO)
    for a, b, p in zip(one, four, plain):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.uint8 and a.shape == p.shape and not np.array_equal(a, p)


@pytest.mark.parametrize("kind", augment.KINDS)
def test_a_bad_kind_or_crop_scale_is_refused(kind):
    with pytest.raises(ValueError, match="kind"):
        augment.Augmentation("rotate")
    with pytest.raises(ValueError, match="crop_scale"):
        augment.Augmentation(kind, crop_scale=1.0)
