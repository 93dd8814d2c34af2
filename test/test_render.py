"""training.render: real TinyRenderer renders of small sets (geometry, round trip, splits,
determinism, bad input)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyldm_ros.preprocess import to_uint8_rgb
from training import render
from training.objects import OBJECT_SETS
from training.objects.parts import Part
from training.objects.pybullet_objects import split_of
from training.render import RenderSpec, render_dataset
from training.srn_dataset import load_split
from training.srn_format import read_intrinsics, read_pose

# Known 3-D points: the object centre and two off-axis "corners", as small pure-colour spheres.
MARKERS = {
    0: ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 1.0)),
    1: ((0.3, -0.2, 0.15), (0.0, 1.0, 0.0, 1.0)),
    2: ((-0.25, 0.2, -0.1), (0.0, 0.0, 1.0, 1.0)),
}


def _markers(rng, split):
    return [Part("sphere", (0.025,), pos, rgba=rgba) for pos, rgba in MARKERS.values()]


def _small(**kw) -> RenderSpec:
    base = dict(train=2, val=1, test=1, views=3, test_views=4, size=32)
    base.update(kw)
    return RenderSpec(**base)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_written_pose_and_intrinsics_project_known_points_onto_rendered_pixels(tmp_path, monkeypatch):
    monkeypatch.setitem(OBJECT_SETS, "markers", _markers)
    spec = RenderSpec(object_set="markers", train=1, val=0, test=0, views=8, size=128)
    out = render_dataset(spec, tmp_path / "m")
    inst = out / "train" / "markers_train_00000"
    k = read_intrinsics(inst / "intrinsics.txt")
    assert (k.f, k.cx, k.cy, k.height, k.width) == (131.25, 64.0, 64.0, 128, 128)
    for v in range(spec.views):
        img = np.asarray(Image.open(inst / "rgb" / f"{v:06d}.png")).astype(int)
        c2w = read_pose(inst / "pose" / f"{v:06d}.txt")
        w2c = np.linalg.inv(c2w)
        for channel, (pos, _) in MARKERS.items():
            others = np.delete(img, channel, axis=2).max(axis=2)
            mask = (img[..., channel] > 60) & (img[..., channel] > 2 * others)
            assert mask.sum() >= 4, f"view {v}: marker {pos} not visible"
            ys, xs = np.nonzero(mask)
            seen = np.array([xs.mean(), ys.mean()]) + 0.5  # pixel (i, j) covers [j, j+1)
            p = w2c[:3, :3] @ pos + w2c[:3, 3]
            assert p[2] > 0, "marker behind the camera: pose is not OpenCV z-forward"
            expected = np.array([k.f * p[0] / p[2] + k.cx, k.f * p[1] / p[2] + k.cy])
            np.testing.assert_allclose(seen, expected, atol=1.0, err_msg=f"view {v}, marker {pos}")


def test_render_read_round_trip_and_downsampling(tmp_path):
    out = render_dataset(_small(), tmp_path / "cars", preview=True)
    assert (out / "preview.png").is_file() and (out / "render.json").is_file()
    assert not list(tmp_path.glob(".*partial*"))
    train = load_split(out, "train", 32, workers=1, progress=False)
    test = load_split(out, "test", 32, workers=1, progress=False)
    assert [i.name for i in train] == ["cars_train_00000", "cars_train_00001"]
    assert train[0].images.shape == (3, 32, 32, 3) and test[0].images.shape == (4, 32, 32, 3)
    k = train[0].intrinsics
    assert (k.f, k.cx, k.cy) == pytest.approx((131.25 / 4, 16.0, 16.0))
    png = np.asarray(Image.open(out / "train" / "cars_train_00000" / "rgb" / "000001.png"))
    np.testing.assert_array_equal(train[0].images[1], png)
    radii = np.linalg.norm(np.concatenate([i.c2w for i in train + test])[:, :3, 3], axis=1)
    np.testing.assert_allclose(radii, 1.3)
    # The object is visible (not all white) and the border is background (white).
    assert (train[0].images < 200).any(axis=-1).mean() > 0.05
    assert (train[0].images[:, 0] == 255).all()
    # Stored 32 px views are exactly the area-downsampled 128 px renders.
    big = render_dataset(_small(size=128, val=0, test=0), tmp_path / "big")
    big_png = np.asarray(Image.open(big / "train" / "cars_train_00000" / "rgb" / "000001.png"))
    np.testing.assert_array_equal(to_uint8_rgb(big_png, 32), png)


def test_deterministic_for_a_seed_whatever_the_workers(tmp_path):
    a = render_dataset(_small(), tmp_path / "a", workers=1)
    b = render_dataset(_small(), tmp_path / "b", workers=2)
    c = render_dataset(_small(seed=1), tmp_path / "c", workers=1)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    assert fa.keys() == fc.keys()
    assert fa["train/cars_train_00000/rgb/000000.png"] != fc["train/cars_train_00000/rgb/000000.png"]


def test_splits_are_disjoint_by_object(tmp_path):
    out = render_dataset(_small(object_set="objects", train=3, val=2, test=2), tmp_path / "o")
    names = {s: {p.name for p in (out / s).iterdir()} for s in ("train", "val", "test")}
    assert not (
        names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"]
    )
    # `objects` splits by mesh file: the meshes each split draws from never overlap.
    for split in ("train", "val", "test"):
        for i in range(_small().count(split)):
            parts = OBJECT_SETS["objects"](render.instance_rng(_small(object_set="objects"), split, i), split)
            mesh = parts[0].tag
            assert split_of(mesh) == split
    views = load_split(out, "test", 32, workers=1, progress=False)[0]
    assert views.num_views == 4 and (views.images < 200).any()


def _run(args, capsys):
    code = render.main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "boats"], "unknown object set"),
        (["--radius", "0"], "radius"),
        (["--views", "1"], "views"),
        (["--train", "-1"], "train"),
        (["--workers", "0"], "workers"),
    ],
)
def test_cli_rejects_bad_input(tmp_path, capsys, args, message):
    small = ["--out", str(tmp_path / "x"), "--train", "1", "--val", "0", "--test", "0", "--views", "2"]
    code, err = _run([*small, *args], capsys)  # later flags override earlier ones
    assert code == 2 and message in err
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".*"))


def test_cli_refuses_non_empty_output_and_overwrites_on_request(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    small = ["--out", str(out), "--train", "1", "--val", "0", "--test", "0", "--views", "2", "--workers", "1"]
    code, err = _run(small, capsys)
    assert code == 2 and "--overwrite" in err and (out / "keep.txt").read_text() == "mine"
    code, _ = _run([*small, "--overwrite"], capsys)
    assert code == 0 and not (out / "keep.txt").exists()
    assert len(list((out / "train" / "cars_train_00000" / "rgb").iterdir())) == 2


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    def broken(rng, split):
        raise RuntimeError("object generator failed")

    monkeypatch.setitem(OBJECT_SETS, "broken", broken)
    with pytest.raises(RuntimeError, match="generator failed"):
        render_dataset(RenderSpec(object_set="broken", train=1, val=0, test=0, views=2), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_cars_are_centred_varied_and_car_coloured():
    from training.objects.cars import CAR_COLOURS, bounds, sample_car, sample_colour

    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(30):
        parts = sample_car(rng)
        lo, hi = bounds(parts)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
        sizes.append(hi - lo)
        assert {"body", "cabin", "wheel", "windshield", "headlight"} <= {p.tag for p in parts}
    sizes = np.array(sizes)
    assert sizes[:, 0].min() > 0.85 and sizes[:, 0].max() < 1.15  # length ~1 at radius 1.3
    assert (sizes[:, 0] > sizes[:, 1]).all() and (sizes[:, 0] > sizes[:, 2]).all()  # long, low, narrow
    assert sizes.std(axis=0).min() > 0.01  # proportions vary
    names = [sample_colour(rng)[0] for _ in range(3000)]
    common = np.mean([n in ("white", "black", "grey", "silver") for n in names])
    assert 0.6 < common < 0.8  # the neutral colours dominate, as on real roads
    assert len(set(names)) == len(CAR_COLOURS)  # and the rare ones still occur
