"""The virtual camera: an object off-centre in a wide image gives the model the same input, and so the
same views, as the same object centred in front of the training camera."""

import numpy as np
import pytest
from scene_render import SRN_F, SRN_SIZE, camera_info, render, turned

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.engine import Engine
from tinyldm_ros.image_preparation import model_poses, prepare_image
from tinyldm_ros.object_isolation import ObjectCues
from tinyldm_ros.package_paths import shipped
from tinyldm_ros.poses import invert_rigid, look_at, sphere_pose
from tinyldm_ros.virtual_camera import (
    MAX_OFF_AXIS_DEG,
    intrinsics_matrix,
    silhouette_direction,
    virtual_camera,
)
from training.objects.cars import sample_car
from training.tiny_renderer import Camera, TinyRenderer

WIDE = Camera(180.0, 200.0, 150.0, 400, 300)  # 96 deg horizontal: room to put the car off-centre


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def test_straight_ahead_is_the_input_camera_and_far_off_axis_is_refused() -> None:
    np.testing.assert_allclose(virtual_camera(np.array([0.0, 0.0, 1.0])), np.eye(4), atol=1e-12)
    view = virtual_camera(np.array([0.3, -0.2, 1.0]))
    assert view[:3, 2] @ np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0]) == pytest.approx(1.0)
    assert abs(view[1, 0]) < 1e-12  # no roll: the virtual x axis stays in the input's x-z plane
    tilt = np.radians(MAX_OFF_AXIS_DEG + 5)
    with pytest.raises(ValueError, match="off the optical axis"):
        virtual_camera(np.array([np.sin(tilt), 0.0, np.cos(tilt)]))


def test_silhouette_direction_does_not_depend_on_where_the_camera_points() -> None:
    """A disc of directions seen straight and 30 deg off-axis has the same (solid-angle) mean."""
    K = intrinsics_matrix(300.0, 300.0, 320.0, 240.0)
    centre = np.array([np.sin(np.radians(30)), 0.0, np.cos(np.radians(30))])
    v, u = np.mgrid[:480, :640] + 0.5
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    mask = rays @ centre > np.cos(np.radians(8))
    direction = silhouette_direction(mask, K)
    assert np.degrees(np.arccos(np.clip(direction @ centre, -1, 1))) < 0.05


@pytest.fixture(scope="module")
def scene():
    renderer = TinyRenderer()
    renderer.set_scene(sample_car(np.random.default_rng(7)))
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def engine():
    return Engine(shipped("models/default", marker="model.json"))


def _level_camera_looking_past(c2w: np.ndarray, right: float, up: float) -> np.ndarray:
    """A level camera (no roll about world +z) at c2w's centre aimed `right` / `up` metres past the
    car: the car sits off-centre, left / right and up / down, as on a robot's camera."""
    aim = c2w[:3, 0] * right + np.array([0.0, 0.0, up])
    return look_at(c2w[:3, 3], aim, up=(0.0, 0.0, 1.0))


# (yaw, pitch) turn the camera about its own axes, no up needed for yaw; (right, up) aim a level
# camera past the car with the world's up given. 25 deg / 0.6 m put the car near the wide image's edge.
@pytest.mark.parametrize(
    "yaw, pitch, right, up",
    [(25.0, 0.0, 0, 0), (-20.0, 0.0, 0, 0), (0, 0, 0.6, 0.0), (0, 0, -0.4, 0.35), (0, 0, 0.3, -0.4)],
)
def test_off_centre_car_gives_the_views_of_the_centred_car(scene, engine, yaw, pitch, right, up) -> None:
    """Tolerance: input crops within 35 dB PSNR of each other, the views within 30 dB (the two are
    different renders: the wide one at ~1.4x the training resolution, re-sampled by the warp)."""
    c2w = sphere_pose(1.3, 40.0, 20.0)
    srn = Camera(SRN_F, SRN_SIZE / 2, SRN_SIZE / 2, SRN_SIZE, SRN_SIZE)
    targets = np.stack([sphere_pose(1.3, 40.0 + a, 20.0) for a in (60.0, 150.0, 240.0)])
    prepared = {}
    off_c2w = turned(c2w, yaw, pitch) if yaw or pitch else _level_camera_looking_past(c2w, right, up)
    world_up = yaw == 0 and pitch == 0
    for name, cam_c2w, cam in (("centred", c2w, srn), ("off", off_c2w, WIDE)):
        rgb, mask, _ = render(scene, cam_c2w, cam)
        cues = ObjectCues(mask=numpy_to_image(mask.astype(np.uint8) * 255, "mono8"))
        up_in_camera = cam_c2w[:3, :3].T @ [0.0, 0.0, 1.0] if world_up else None
        image = prepare_image(numpy_to_image(rgb, "rgb8"), camera_info(cam), 32, 52.0, cues, up=up_in_camera)
        assert image.isolated_by == "mask" and not image.problems
        poses = model_poses(invert_rigid(cam_c2w) @ targets, image, 1.3, 1.3)
        prepared[name] = (image, poses)
    (centred, poses_c), (off, poses_o) = prepared["centred"], prepared["off"]
    # The same virtual camera in the world (up to the two silhouettes' rasterisation, ~0.2 deg): the
    # model gets the same poses...
    np.testing.assert_allclose(poses_o, poses_c, atol=5e-3)
    # ...and the same picture, up to the two renders' sampling
    assert psnr(off.crop, centred.crop) > 35.0, psnr(off.crop, centred.crop)
    views_c = engine.synthesize(centred.pixels, poses_c)
    views_o = engine.synthesize(off.pixels, poses_o)
    views_psnr = min(psnr(a, b) for a, b in zip(views_o, views_c, strict=True))
    print(f"crop {psnr(off.crop, centred.crop):.1f} dB, views {views_psnr:.1f} dB")
    assert views_psnr > 30.0


def test_without_the_virtual_camera_the_off_centre_crop_misses_the_car(scene) -> None:
    """The counterfactual: today's principal-point crop of the same wide image is another picture."""
    c2w = turned(sphere_pose(1.3, 40.0, 20.0), 25.0, 0.0)
    rgb, mask, _ = render(scene, c2w, WIDE)
    plain = prepare_image(numpy_to_image(rgb, "rgb8"), camera_info(WIDE), 32, 52.0)
    srn = Camera(SRN_F, SRN_SIZE / 2, SRN_SIZE / 2, SRN_SIZE, SRN_SIZE)
    rgb_c, mask_c, _ = render(scene, sphere_pose(1.3, 40.0, 20.0), srn)
    centred = prepare_image(
        numpy_to_image(rgb_c, "rgb8"),
        camera_info(srn),
        32,
        52.0,
        ObjectCues(mask=numpy_to_image(mask_c.astype(np.uint8), "mono8")),
    )
    assert psnr(plain.crop, centred.crop) < 20.0
