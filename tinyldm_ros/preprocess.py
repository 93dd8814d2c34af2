"""The one place images are prepared for the model (numpy + OpenCV; used by the SRN reader, engine, node).

    image of any size / aspect / dtype / channel count
      -> square crop (centre crop, or a square of a given side around a given point)
      -> area (box-filter, anti-aliased) resize to the model size
      -> float32 (3, S, S) in [-1, 1]

Pixel coordinates are continuous with pixel (i, j) covering [j, j+1) x [i, i+1); so the centre of a
W-pixel-wide image is x = W/2 and intrinsics scale by plain multiplication when resizing (SRN Cars:
cx = 64 at 128 px, 16 at 32 px).  Alpha is composited on white, the background of SRN renders.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

CropBox = tuple[int, int, int]  # (x0, y0, side) in pixels of the source image


def _as_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"image must be HxW or HxWxC, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has zero size: shape {image.shape}")
    if image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must have 1, 3 or 4 channels (gray, RGB, RGBA), got {image.shape[2]}")
    return image


def _white(dtype: np.dtype) -> float | int:
    return np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Any HxW[xC] uint8/uint16/bool/float image -> float32 HxWx3 in [0, 1], alpha over white.

    Integer images are divided by their dtype's maximum; float images are taken as [0, 1] and
    clipped.
    """
    image = _as_hwc(image)
    if image.dtype == np.bool_:
        x = image.astype(np.float32)
    elif image.dtype in (np.uint8, np.uint16):
        x = image.astype(np.float32) * np.float32(1.0 / np.iinfo(image.dtype).max)
    elif np.issubdtype(image.dtype, np.floating):
        x = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported image dtype {image.dtype} (use uint8, uint16, bool or float)")
    c = x.shape[2]
    if c == 1:
        return np.repeat(x, 3, axis=2)
    if c == 4:
        alpha = x[:, :, 3:4]
        return x[:, :, :3] * alpha + (1.0 - alpha)
    return x


def centre_crop_box(height: int, width: int) -> CropBox:
    """The largest centred square: (x0, y0, side)."""
    side = min(height, width)
    if side <= 0:
        raise ValueError(f"image has zero size: {height}x{width}")
    return (width - side) // 2, (height - side) // 2, side


def square_box_around(cx: float, cy: float, side: int) -> CropBox:
    """The side x side square centred (to the nearest pixel) on the continuous point (cx, cy)."""
    side = int(side)
    if side <= 0:
        raise ValueError(f"crop side must be > 0, got {side}")
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise ValueError(f"crop centre must be finite, got ({cx}, {cy})")
    return int(np.floor(cx - side / 2 + 0.5)), int(np.floor(cy - side / 2 + 0.5)), side


def crop(image: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop `box` out of an HxW[xC] image of any dtype; parts outside the image are opaque white."""
    image = _as_hwc(image)
    x0, y0, side = box
    h, w = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:
        return image[y0 : y0 + side, x0 : x0 + side]
    out = np.full((side, side, image.shape[2]), _white(image.dtype), dtype=image.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


@lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix: output pixel j averages input [j*s, (j+1)*s), s = n_in / n_out."""
    return _area_weights_of(n_in, n_out, 0, n_in)


def _area_weights_of(n_in: int, n_out: int, i0: int, i1: int) -> np.ndarray:
    """Columns i0:i1 of _area_weights(n_in, n_out), without building the others."""
    s = n_in / n_out
    j = np.arange(n_out)[:, None]
    i = np.arange(i0, i1)[None, :]
    overlap = np.minimum((j + 1) * s, i + 1) - np.maximum(j * s, i)
    w = np.clip(overlap, 0.0, None) / s
    return w.astype(np.float32)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Box-filter resize of a float HxWxC image to size x size (each output pixel is the exact mean of
    the source area it covers; anti-aliased when shrinking). Shrinking is OpenCV's INTER_AREA, which
    is that mean; OpenCV's INTER_AREA interpolates when enlarging, so enlarging (tiny images) uses the
    exact area weights here."""
    image = _as_hwc(image)
    size = int(size)
    if size <= 0:
        raise ValueError(f"target size must be > 0, got {size}")
    h, w, c = image.shape
    if (h, w) == (size, size):
        return image.astype(np.float32, copy=False)
    x = image.astype(np.float32, copy=False)
    if h >= size and w >= size and c <= 4:
        out = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
        return out.reshape(size, size, c)  # OpenCV drops a single channel's axis
    rows = _area_weights(h, size) @ x.reshape(h, w * c)  # (size, w*c)
    rows = rows.reshape(size, w, c).transpose(0, 2, 1)  # (size, c, w)
    return np.ascontiguousarray((rows @ _area_weights(w, size).T).transpose(0, 2, 1))  # (size, size, c)


def crop_and_resize(image: np.ndarray, size: int, box: CropBox | None = None) -> np.ndarray:
    """Crop (default: centre square) and area-resize -> float32 (size, size, 3) in [0, 1]."""
    image = _as_hwc(image)
    if box is None:
        box = centre_crop_box(*image.shape[:2])
    x0, y0, side = box
    if x0 < 0 or y0 < 0 or x0 + side > image.shape[1] or y0 + side > image.shape[0]:
        return _padded_crop_and_resize(image, size, box)
    image = crop(image, box)
    if image.shape[2] == 4 or image.dtype not in (np.uint8, np.uint16):
        # Alpha compositing and float clipping are not linear: apply them before averaging.
        return area_resize(to_float_rgb(image), size)
    # Gray/RGB integers: averaging commutes with the scaling, so shrink first (the hot path).
    return to_float_rgb(area_resize(image, size).astype(np.float32) * np.float32(1.0 / _white(image.dtype)))


def _padded_crop_and_resize(image: np.ndarray, size: int, box: CropBox) -> np.ndarray:
    """crop_and_resize of a box that reaches past the image, without building the box: the white
    padding adds a known constant per output pixel, so only the image's part is averaged. Time and
    memory follow the image, not the box (a long-focal camera_info can ask for a box 4x the image)."""
    x0, y0, side = box
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 <= sx0 or sy1 <= sy0:
        return np.ones((int(size), int(size), 3), np.float32)
    region = image[sy0:sy1, sx0:sx1]
    if region.shape[2] == 4 or region.dtype not in (np.uint8, np.uint16):
        region = to_float_rgb(region)  # alpha / clipping first, as in crop_and_resize
    else:
        region = region.astype(np.float32) * np.float32(1.0 / _white(region.dtype))
    wy = _area_weights_of(side, size, sy0 - y0, sy1 - y0)  # (size, rows in the image)
    wx = _area_weights_of(side, size, sx0 - x0, sx1 - x0)  # (size, cols in the image)
    rh, rw, c = region.shape
    rows = (wy @ region.reshape(rh, rw * c)).reshape(size, rw, c).transpose(0, 2, 1)
    out = (rows @ wx.T).transpose(0, 2, 1)  # (size, size, c): the image's share of each pixel
    out += (1.0 - np.outer(wy.sum(axis=1), wx.sum(axis=1)))[:, :, None].astype(np.float32)  # white
    return to_float_rgb(np.ascontiguousarray(out, dtype=np.float32))


def preprocess(image: np.ndarray, size: int, box: CropBox | None = None) -> np.ndarray:
    """Model input: float32 (3, size, size) in [-1, 1] (see module docstring)."""
    x = crop_and_resize(image, size, box)
    return np.ascontiguousarray(x.transpose(2, 0, 1)) * np.float32(2.0) - np.float32(1.0)


def to_uint8_rgb(image: np.ndarray, size: int, box: CropBox | None = None) -> np.ndarray:
    """Like `preprocess` but returns uint8 (size, size, 3), for compact storage of training data."""
    return float01_to_uint8(crop_and_resize(image, size, box))


def float01_to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def uint8_to_model(images: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]; identical to `preprocess` on
    images already at the model size."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (..., H, W, 3), got {images.dtype} {images.shape}")
    x = np.moveaxis(images, -1, -3).astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return np.ascontiguousarray(x)


def postprocess(x: np.ndarray) -> np.ndarray:
    """Model output float (3, H, W) or (B, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) / (B, H, W, 3)."""
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected (3, H, W) or (B, 3, H, W), got shape {x.shape}")
    x = np.moveaxis(x, -3, -1)
    return np.round(np.clip((x.astype(np.float32) + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)


def intrinsics_after_crop_resize(
    f: float, cx: float, cy: float, box: CropBox, size: int
) -> tuple[float, float, float]:
    """Pinhole (f, cx, cy) of the image produced by cropping `box` and resizing to `size`."""
    x0, y0, side = box
    s = size / side
    return f * s, (cx - x0) * s, (cy - y0) * s
