"""What the engine refuses to call a view: poses too far away for the model, and views that are not
images (non-finite values, or one colour everywhere). Such input used to give all-black views with
success; now the caller gets the reason. Numpy only."""

from __future__ import annotations

import numpy as np

# Training pairs are cameras on one sphere around the object: relative translations of at most
# 2 training radii. Far beyond that the network's activations overflow float32 and every view comes
# out black. 100 radii is generous for any sensible target and far below the overflow.
MAX_TRANSLATION_RADII = 100.0


class ViewsError(RuntimeError):
    """The engine ran but its views are not usable images (not an input error of the caller's)."""


def check_translations(poses: np.ndarray, training_radius: float) -> None:
    """ValueError naming the first relative pose (N, 4, 4), in training units, whose translation is
    longer than MAX_TRANSLATION_RADII training radii."""
    lengths = np.linalg.norm(np.asarray(poses, dtype=np.float64)[:, :3, 3], axis=1)
    limit = MAX_TRANSLATION_RADII * training_radius
    far = np.flatnonzero(~(lengths <= limit))  # also NaN
    if far.size:
        i = int(far[0])
        raise ValueError(
            f"relative_poses[{i}]: translation {lengths[i]:.3g} training units is beyond "
            f"{MAX_TRANSLATION_RADII:g} training radii ({limit:g}): the model cannot place a camera "
            "that far (check object_distance and the pose's units: metres)"
        )


def check_views(images: np.ndarray, views: np.ndarray) -> None:
    """ViewsError when the decoder's float `images` (B, 3, H, W) hold NaN / inf or a uint8 view of
    `views` (B, H, W, 3) is a single colour."""
    bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if bad.any():
        raise ViewsError(
            f"view {int(np.flatnonzero(bad)[0])} of {len(images)} has NaN or infinite values "
            "(the model overflowed on this input)"
        )
    flat = views.reshape(len(views), -1)
    constant = flat.min(axis=1) == flat.max(axis=1)
    if constant.any():
        i = int(np.flatnonzero(constant)[0])
        raise ViewsError(
            f"view {i} of {len(views)} is one colour everywhere (value {int(flat[i, 0])}): not an "
            "image (the model saturated on this input)"
        )
