"""The engine never returns a black, NaN or one-colour view as a success, and refuses poses too far
for the model, on the real fixture model and real arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyldm_ros.engine import Engine, InputError
from tinyldm_ros.numbers import NumberError, checked_number
from tinyldm_ros.preprocess import postprocess
from tinyldm_ros.view_checks import MAX_TRANSLATION_RADII, ViewsError, check_views

TINY_MODEL = Path(__file__).resolve().parent / "fixtures" / "tiny_model"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(TINY_MODEL, intra_op_threads=1, workers=1)


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("x", [1e38, 1e6, float(MAX_TRANSLATION_RADII) * 1.3 * 1.01])
def test_a_pose_too_far_for_the_model_is_refused_naming_it(engine: Engine, x: float) -> None:
    # 1e38 used to give all-black views with success
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, 0, 3] = x
    with pytest.raises(InputError, match=r"relative_poses\[1\]: translation .* beyond 100 training radii"):
        engine.synthesize(_image(), poses)


def test_a_pose_within_the_bound_gives_real_images(engine: Engine) -> None:
    pose = np.eye(4)
    pose[0, 3] = 0.99 * MAX_TRANSLATION_RADII * engine.info.training_radius
    views = engine.synthesize(_image(), pose[None], steps=2)
    assert views.shape == (1, 32, 32, 3) and views.min() < views.max()


def test_nan_and_one_colour_views_are_not_views() -> None:
    images = np.random.default_rng(1).uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
    check_views(images, postprocess(images))  # real-looking views pass
    nan = images.copy()
    nan[2, 0, 3, 3] = np.nan
    with pytest.raises(ViewsError, match="view 2 of 3 has NaN"):
        check_views(nan, postprocess(np.nan_to_num(nan)))
    saturated = images.copy()
    saturated[1] = 7.0  # finite, but clipped to one colour: what an overflowing decoder gives
    with pytest.raises(ViewsError, match=r"view 1 of 3 is one colour everywhere \(value 255\)"):
        check_views(saturated, postprocess(saturated))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "x must be a number, got True"),
        ("1", "x must be a number, got '1'"),
        (float("nan"), "x must be finite"),
        (float("inf"), "x must be finite"),
        (0.0, r"x must be a number in \(0, 10\]"),
        (11, r"x must be a number in \(0, 10\]"),
    ],
)
def test_the_number_rule(value: object, match: str) -> None:
    with pytest.raises(NumberError, match=match) as e:
        checked_number("x", value, 0.0, 10.0, low_open=True)
    assert e.value.field == "x"
    assert checked_number("x", np.float32(2.5), 0.0, 10.0) == 2.5
    assert checked_number("n", np.int64(3), 1, 5, integer=True) == 3
    with pytest.raises(NumberError, match="n must be an integer, got 3.0"):
        checked_number("n", 3.0, 1, 5, integer=True)
