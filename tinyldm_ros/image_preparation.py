"""A camera image message made ready for the engine: decode, crop the training camera's field of view,
resize to the model's size. `prepare_image` is the one entry point; the node logs what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.camera_model import training_fov_box
from tinyldm_ros.conversions import image_to_numpy, to_rgb
from tinyldm_ros.preprocess import CropBox, centre_crop_box, crop_and_resize, float01_to_uint8

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


def prepare_image(
    msg: Image, camera_info: CameraInfo | None, image_size: int, training_fov_deg: float
) -> PreparedImage:
    """Decode `msg` (ImageConversionError when it cannot be read), crop the square the training
    camera would have seen (centre square without usable camera_info), resize to image_size."""
    array, order = image_to_numpy(msg)
    rgb = to_rgb(array, order)
    box, because = crop_box(msg, camera_info, training_fov_deg)
    pixels = crop_and_resize(rgb, image_size, box)
    return PreparedImage(pixels, float01_to_uint8(pixels), box, because)


def crop_box(msg: Image, camera_info: CameraInfo | None, training_fov_deg: float) -> tuple[CropBox, str]:
    """The training field of view around the principal point, or the centre square and why."""
    if camera_info is None or camera_info.width == 0:
        return centre_crop_box(msg.height, msg.width), NO_CAMERA_INFO
    try:
        return training_fov_box(msg.width, msg.height, camera_info, training_fov_deg), ""
    except ValueError as e:
        return centre_crop_box(msg.height, msg.width), str(e)
