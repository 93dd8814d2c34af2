"""tinyldm_ros.preprocess: crops, exact area resize, dtype/alpha handling, inverse, errors."""

import numpy as np
import pytest

from tinyldm_ros.preprocess import (
    area_resize,
    centre_crop_box,
    crop,
    intrinsics_after_crop_resize,
    postprocess,
    preprocess,
    square_box_around,
    to_float_rgb,
    to_uint8_rgb,
    uint8_to_model,
)


def _box_mean_reference(x, size):
    """Exact area average by explicit loops in float64 (integer factor)."""
    k = x.shape[0] // size
    out = np.zeros((size, size, x.shape[2]))
    for i in range(size):
        for j in range(size):
            out[i, j] = x[i * k : (i + 1) * k, j * k : (j + 1) * k].astype(np.float64).mean(axis=(0, 1))
    return out


def test_integer_factor_is_exact_box_average():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    ref = _box_mean_reference(img, 32) / 255.0
    got = (preprocess(img, 32).transpose(1, 2, 0) + 1.0) / 2.0
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_fractional_factor_matches_supersampled_average():
    # 48 -> 32 is a 1.5x shrink: replicate each pixel 2x (exact) and box-average 3x3.
    rng = np.random.default_rng(1)
    img = rng.random((48, 48, 3)).astype(np.float32)
    ref = _box_mean_reference(img.repeat(2, 0).repeat(2, 1), 32)
    np.testing.assert_allclose(area_resize(img, 32), ref, atol=1e-6)
    # Area resize preserves the mean (energy) of the image.
    assert area_resize(img, 20).mean() == pytest.approx(img.mean(), abs=1e-6)


def test_shrinking_is_anti_aliased():
    # A one-pixel checkerboard must become flat grey, not an aliased pattern.
    checker = ((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)
    out = preprocess(checker, 32)
    np.testing.assert_allclose(out, 0.0, atol=1e-6)
    # Fractional factor (3.125): only partly covered pixels can unbalance a box; nearest-neighbour
    # sampling would give +-1.
    out = preprocess(checker[:100, :100], 32)
    assert np.abs(out).max() < 0.1


def test_alpha_is_composited_on_white():
    img = np.zeros((4, 4, 4), np.uint8)
    img[..., 0] = 255  # red ...
    img[0, :, 3] = 255  # ... opaque in row 0
    img[1, :, 3] = 0  # transparent in row 1
    img[2:, :, 3] = 128
    x = to_float_rgb(img)
    np.testing.assert_allclose(x[0], [[1, 0, 0]] * 4)
    np.testing.assert_allclose(x[1], 1.0)
    np.testing.assert_allclose(x[2], [[1, 1 - 128 / 255, 1 - 128 / 255]] * 4, atol=1e-6)


@pytest.mark.parametrize(
    "img, value",
    [
        (np.full((8, 8), 255, np.uint8), 1.0),
        (np.zeros((8, 8, 3), np.uint8), -1.0),
        (np.full((8, 8, 1), 65535, np.uint16), 1.0),
        (np.full((8, 8, 3), 2.0, np.float32), 1.0),  # floats are clipped to [0, 1]
        (np.full((8, 8, 3), 0.5, np.float64), 0.0),
        (np.ones((8, 8), bool), 1.0),
    ],
)
def test_dtypes_and_channels_map_to_minus_one_one(img, value):
    out = preprocess(img, 4)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, value, atol=1e-6)


def test_uint8_round_trip_and_batch_helpers_agree():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    x = preprocess(img, 32)
    np.testing.assert_array_equal(postprocess(x), img)
    np.testing.assert_array_equal(postprocess(x[None])[0], img)
    np.testing.assert_array_equal(uint8_to_model(img[None])[0], x)
    np.testing.assert_array_equal(to_uint8_rgb(img, 32), img)


def test_centre_crop_and_crop_outside_is_white():
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 100
    assert centre_crop_box(60, 100) == (20, 0, 60)
    np.testing.assert_array_equal(to_uint8_rgb(img, 60), 100)
    box = square_box_around(5.0, 30.0, 20)
    assert box == (-5, 20, 20)
    out = crop(img, box)
    assert out.shape == (20, 20, 3)
    np.testing.assert_array_equal(out[:, :5], 255)  # outside the image
    np.testing.assert_array_equal(out[:, 5:], 0)


def test_intrinsics_follow_the_crop_and_resize():
    # A bright pixel at a known 3-D point must stay where the new intrinsics project it.
    f, cx, cy = 300.0, 330.0, 250.0
    point = np.array([0.1, -0.05, 1.0])
    u, v = f * point[0] / point[2] + cx, f * point[1] / point[2] + cy
    img = np.zeros((480, 640, 3), np.uint8)
    img[int(v) - 4 : int(v) + 4, int(u) - 4 : int(u) + 4] = 255
    box = square_box_around(cx, cy, 256)
    f2, cx2, cy2 = intrinsics_after_crop_resize(f, cx, cy, box, 32)
    u2, v2 = f2 * point[0] / point[2] + cx2, f2 * point[1] / point[2] + cy2
    out = preprocess(img, 32, box)[0] + 1.0
    ys, xs = np.indices(out.shape)
    centroid = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum() + 0.5
    np.testing.assert_allclose(centroid, [u2, v2], atol=0.1)


@pytest.mark.parametrize(
    "img, match",
    [
        (np.zeros((0, 5, 3), np.uint8), "zero size"),
        (np.zeros((5, 5, 2), np.uint8), "channels"),
        (np.zeros((5, 5, 5), np.uint8), "channels"),
        (np.zeros((5,), np.uint8), "HxW"),
        (np.zeros((5, 5, 3), np.int8), "dtype"),
    ],
)
def test_bad_images_raise(img, match):
    with pytest.raises(ValueError, match=match):
        preprocess(img, 4)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="size"):
        preprocess(np.zeros((8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="side"):
        square_box_around(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        postprocess(np.zeros((4, 4)))


def test_runtime_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tinyldm_ros.poses, tinyldm_ros.preprocess; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
