"""A camera image message made ready for the engine: decode, crop the training camera's field of view,
resize to the model's size. `prepare_image` is the one entry point; the node logs what it reports.

With object cues (tinyldm_ros.object_isolation: mask / ROI / detection, depth) and camera_info, the
crop is the virtual camera aimed at the object (tinyldm_ros.virtual_camera, pixels by
tinyldm_ros.object_crop), white outside the object; `view` then says how that camera is turned, and
target poses must be re-expressed in it (`model_poses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.camera_model import training_fov_box
from tinyldm_ros.conversions import image_to_numpy, to_rgb
from tinyldm_ros.object_crop import virtual_crop
from tinyldm_ros.object_isolation import ObjectCues, Problem, isolate
from tinyldm_ros.preprocess import CropBox, centre_crop_box, crop_and_resize, float01_to_uint8
from tinyldm_ros.targets import to_model_units
from tinyldm_ros.virtual_camera import intrinsics_matrix, relative_to_virtual

# PreparedImage.centre_crop_because when there is no camera_info to crop the training field of view by
NO_CAMERA_INFO = "no camera_info"


@dataclass(frozen=True)
class PreparedImage:
    pixels: np.ndarray  # float32 (S, S, 3) in [0, 1]: the engine's input
    crop: np.ndarray  # the same as uint8: the views message's input_crop and the mosaic
    box: CropBox  # the square (x0, y0, side) of the message's image that was cropped
    # "" when the box is the training field of view around camera_info's principal point; else why
    # the image was centre-cropped instead (NO_CAMERA_INFO, or what is wrong with the camera_info)
    centre_crop_because: str = ""
    # The virtual camera the crop is from, in the input camera's frame (identity: the input camera)
    view: np.ndarray = field(default_factory=lambda: np.eye(4))
    object_distance: float | None = None  # metres, from depth; None: use the parameter
    isolated_by: str = ""  # "mask", "roi", "detection" or "" (nothing isolated)
    problems: list[Problem] = field(default_factory=list)  # unusable cues


def prepare_image(
    msg: Image,
    camera_info: CameraInfo | None,
    image_size: int,
    training_fov_deg: float,
    cues: ObjectCues | None = None,
    feather_px: float = 0.0,
    up: np.ndarray | None = None,
) -> PreparedImage:
    """Decode `msg` (ImageConversionError when it cannot be read), crop the square the training
    camera would have seen (centre square without usable camera_info), resize to image_size; with
    `cues`, aim that camera at the object (no roll about `up`, the world's up in the image's frame;
    None: the camera's own) and whiten the rest."""
    array, order = image_to_numpy(msg)
    rgb = to_rgb(array, order)
    box, because = crop_box(msg, camera_info, training_fov_deg)
    problems: list[Problem] = []
    if cues is not None and cues.any():
        if not because:
            k = camera_info.k
            K = intrinsics_matrix(k[0], k[4] if k[4] > 0 else k[0], k[2], k[5])
            rgb8 = rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
            iso = isolate(cues, msg.width, msg.height, K, up, rgb8)
            if iso.alpha is not None or not np.allclose(iso.view, np.eye(4)):
                pixels = virtual_crop(rgb8, K, iso.view, image_size, training_fov_deg, iso.alpha, feather_px)
                crop = float01_to_uint8(pixels)
                return PreparedImage(pixels, crop, box, "", iso.view, iso.distance, iso.source, iso.problems)
            problems = iso.problems
            distance = iso.distance
        else:
            problems = [Problem("object_cues", f"object cues ignored: {because}")]
            distance = None
    else:
        distance = None
    pixels = crop_and_resize(rgb, image_size, box)
    return PreparedImage(
        pixels, float01_to_uint8(pixels), box, because, object_distance=distance, problems=problems
    )


def crop_box(msg: Image, camera_info: CameraInfo | None, training_fov_deg: float) -> tuple[CropBox, str]:
    """The training field of view around the principal point, or the centre square and why."""
    if camera_info is None or camera_info.width == 0:
        return centre_crop_box(msg.height, msg.width), NO_CAMERA_INFO
    try:
        return training_fov_box(msg.width, msg.height, camera_info, training_fov_deg), ""
    except ValueError as e:
        return centre_crop_box(msg.height, msg.width), str(e)


def model_poses(
    poses: np.ndarray, image: PreparedImage, training_radius: float, object_distance: float
) -> np.ndarray:
    """Target poses (camera-to-input-camera, metres) as the model takes them: relative to the camera
    the crop is from, translations scaled so the object distance becomes the training radius."""
    return to_model_units(relative_to_virtual(poses, image.view), training_radius, object_distance)
