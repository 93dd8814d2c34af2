"""training.srn_dataset: reads a hand-written real-format SRN sample, pairs, and names bad files."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyldm_ros.poses import relative_transform
from training.srn_dataset import (
    PairDataset,
    all_images,
    list_instances,
    load_instance,
    load_split,
    make_pairs,
    read_views,
    sample_pairs,
)

SAMPLE = Path(__file__).parent / "data" / "srn_sample"
INSTANCE = "1a0bc9ab92c915167ae33d942430658c"

# The two poses as typed into the sample's pose files (SRN Cars: radius 1.3, looking at the origin).
POSE0 = np.array(
    [[0.0, 0.5, -0.8660254, 1.1258330], [1.0, 0, 0, 0], [0, -0.8660254, -0.5, 0.65], [0, 0, 0, 1]]
)
POSE1 = np.array([[-1.0, 0, 0, 0], [0, 0, -1.0, 1.3], [0, -1.0, 0, 0], [0, 0, 0, 1]])


def test_reads_the_real_format_sample():
    [inst] = load_split(SAMPLE, "train", 32, workers=1, progress=False)
    assert inst.name == INSTANCE and inst.num_views == 2
    assert inst.images.shape == (2, 32, 32, 3) and inst.images.dtype == np.uint8
    np.testing.assert_allclose(inst.c2w, np.stack([POSE0, POSE1]))
    k = inst.intrinsics
    assert (k.f, k.cx, k.cy, k.height, k.width) == (131.25 / 4, 16.0, 16.0, 32, 32)
    # SRN geometry: cameras 1.3 from the origin, optical axis (z) through the origin.
    for c2w in inst.c2w:
        assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(1.3, abs=1e-6)
        np.testing.assert_allclose(c2w[:3, 3] + 1.3 * c2w[:3, 2], 0.0, atol=1e-6)
    # View 0 is RGB on white; view 1 is RGBA with a transparent background -> white after reading.
    assert (inst.images[:, 0, 0] == 255).all()
    assert tuple(inst.images[0, 16, 10]) == (200, 30, 30)  # 128 px red block, box-averaged
    assert tuple(inst.images[1, 16, 14]) == (30, 60, 200)
    # 128 -> 64 keeps the exact box average too
    assert load_instance(SAMPLE / "train" / INSTANCE, 64).images.shape == (2, 64, 64, 3)


def test_pairs_carry_the_relative_pose():
    instances = load_split(SAMPLE, "train", 32, workers=1, progress=False)
    b = sample_pairs(instances, 16, np.random.default_rng(0))
    assert b.cond_image.shape == (16, 3, 32, 32) and b.cond_image.dtype == np.float32
    assert b.cond_image.min() >= -1.0 and b.cond_image.max() <= 1.0
    assert (b.cond_view != b.target_view).all()
    np.testing.assert_allclose(b.rel_pose, relative_transform(b.cond_pose, b.target_pose), atol=1e-6)
    one = make_pairs(instances, np.array([0]), np.array([0]), np.array([1]))
    np.testing.assert_allclose(one.rel_pose[0], np.linalg.inv(POSE0) @ POSE1, atol=1e-6)
    np.testing.assert_allclose(one.intrinsics[0], [[32.8125, 0, 16], [0, 32.8125, 16], [0, 0, 1]])
    ds = PairDataset(instances, length=5, seed=3)
    assert len(ds) == 5
    np.testing.assert_array_equal(ds[2]["rel_pose"], PairDataset(instances, 5, seed=3)[2]["rel_pose"])
    assert all_images(instances).shape == (2, 32, 32, 3)


@pytest.fixture
def inst(tmp_path) -> Path:
    shutil.copytree(SAMPLE, tmp_path / "srn")
    return tmp_path / "srn" / "train" / INSTANCE


def _expect(path: Path, error, match: str):
    with pytest.raises(error, match=match) as e:
        load_instance(path, 32)
    return str(e.value)


def test_missing_png_is_named(inst):
    (inst / "rgb" / "000001.png").unlink()
    assert "1 images in rgb/ but 2 poses" in _expect(inst, ValueError, "poses")


def test_corrupt_png_is_named(inst):
    (inst / "rgb" / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert "000001.png" in _expect(inst, ValueError, "cannot read PNG")


def test_non_rigid_pose_is_named(inst):
    (inst / "pose" / "000001.txt").write_text("2 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    assert "000001.txt" in _expect(inst, ValueError, "orthonormal")


def test_short_pose_is_named(inst):
    (inst / "pose" / "000000.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0\n")
    assert "000000.txt" in _expect(inst, ValueError, "16 numbers")


def test_inconsistent_intrinsics_are_named(inst):
    (inst / "intrinsics.txt").write_text("131.25 64. 64. 0.\n0. 0. 0.\n1.\n256 256\n")
    assert "intrinsics.txt" in _expect(inst, ValueError, "inconsistent intrinsics")
    (inst / "intrinsics.txt").write_text("131.25 64.\n")
    assert "intrinsics.txt" in _expect(inst, ValueError, "not an SRN intrinsics")
    (inst / "intrinsics.txt").unlink()
    _expect(inst, FileNotFoundError, "intrinsics.txt")


def test_mismatched_view_names(inst):
    (inst / "pose" / "000001.txt").rename(inst / "pose" / "000007.txt")
    assert "000001.png has no pose" in _expect(inst, ValueError, "no pose")


def test_real_srn_split_names(tmp_path):
    # The SRN download names its splits cars_train / cars_val / cars_test.
    shutil.copytree(SAMPLE / "train", tmp_path / "cars_train")
    [path] = list_instances(tmp_path, "train")
    assert path == tmp_path / "cars_train" / INSTANCE


def test_empty_or_missing_split(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no instances"):
        list_instances(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="val"):
        load_split(tmp_path, "val", 32)


def test_read_views_needs_no_intrinsics(inst):
    """Images and poses only (export's checks on real data): the same as load_instance, also where
    intrinsics.txt is missing, and the first max_views of them."""
    full = load_instance(inst, 32)
    (inst / "intrinsics.txt").unlink()
    images, c2w = read_views(inst, 32)
    np.testing.assert_array_equal(images, full.images)
    np.testing.assert_array_equal(c2w, full.c2w)
    images, c2w = read_views(inst, 32, max_views=1)
    assert images.shape == (1, 32, 32, 3) and c2w.shape == (1, 4, 4)
    with pytest.raises(FileNotFoundError, match="intrinsics"):
        load_instance(inst, 32)
