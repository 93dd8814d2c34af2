"""training.evaluate_real end to end: the shipped model through the runtime Engine on a tree in the
real SRN release layout (512 px RGBA, intrinsics.txt at 512, per-view intrinsics/, gaps in the view
numbers), built here from our renderer so it always runs, and on the real SRN cars where present."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import evaluate_real
from training.cameras import random_hemisphere_poses
from training.evaluate_real import METRIC_NAMES, ROWS
from training.objects.cars import sample_car
from training.srn_dataset import load_split
from training.srn_format import format_pose
from training.tiny_renderer import Camera, TinyRenderer

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"
RELEASE_INTRINSICS = "525. 256. 256. 0.\n0. 0. 0.\n1.\n512 512\n"  # as the SRN release writes it


def real_srn_root() -> Path | None:
    """The real SRN cars (ShapeNet terms: never copied into the project). CI clones the repo next to
    shared/; a git worktree one level deeper finds it one level up; TINYLDM_REAL_SRN overrides."""
    candidates = [os.environ.get("TINYLDM_REAL_SRN", "")]
    candidates += [str(p / "shared" / "real_srn") for p in (ROOT.parent, ROOT.parents[1])]
    return next((Path(c) for c in candidates if c and (Path(c) / "cars_val").is_dir()), None)


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory) -> Path:
    """2 procedural cars x 3 views in the release layout; background RGB black but alpha 0, so only
    a reader that composites alpha over white sees SRN's white background."""
    root = tmp_path_factory.mktemp("release")
    cam = Camera(525.0, 256.0, 256.0, 512, 512)
    with TinyRenderer() as renderer:
        for k in range(2):
            rng = np.random.default_rng(k)
            renderer.set_scene(sample_car(rng))
            inst = root / "cars_val" / f"cars512_fixture-{k}"
            for d in ("rgb", "pose", "intrinsics"):
                (inst / d).mkdir(parents=True)
            (inst / "intrinsics.txt").write_text(RELEASE_INTRINSICS)
            for v, c2w in zip((3, 17, 42), random_hemisphere_poses(rng, 3, 1.3, 5.0, 60.0), strict=True):
                rgb, mask = renderer.render(c2w, cam, with_mask=True)
                alpha = np.where(mask >= 0, 255, 0).astype(np.uint8)
                rgba = np.dstack([np.where(alpha[..., None] > 0, rgb, 0), alpha])
                Image.fromarray(rgba, "RGBA").save(inst / "rgb" / f"{v:06d}.png")
                (inst / "pose" / f"{v:06d}.txt").write_text(format_pose(c2w))
                (inst / "intrinsics" / f"{v:06d}.txt").write_text(
                    "525.0 0.0 256.0 0.0 525.0 256.0 0.0 0.0 1.0\n"
                )
    return root


def _check_report(out: Path, names: list[str], pairs: int) -> dict:
    report = json.loads((out / "eval.json").read_text())
    assert [c["name"] for c in report["per_car"]] == names
    for entry in report["per_car"] + [report["per_car_mean"]]:
        for row in ROWS:
            assert set(entry[row]) == set(METRIC_NAMES)
            assert all(math.isfinite(v) for v in entry[row].values()), entry
            assert 0.0 < entry[row]["psnr"] < 100.0 and -1.0 <= entry[row]["ssim"] <= 1.0
            assert entry[row]["ciede2000"] >= 0.0
    assert all(c["pairs"] == pairs for c in report["per_car"])
    # the per-car mean weighs each car once
    for row in ROWS:
        mean = np.mean([c[row]["psnr"] for c in report["per_car"]])
        assert report["per_car_mean"][row]["psnr"] == pytest.approx(mean)
    with Image.open(out / "sweep.png") as im:
        assert im.size[0] > 0 and im.size[1] > 0 and im.mode == "RGB"
    assert "per-car mean" in (out / "eval.md").read_text()
    return report


def test_release_layout_reads_at_model_size(release_tree):
    cars = load_split(release_tree, "val", 32)
    assert [c.name for c in cars] == ["cars512_fixture-0", "cars512_fixture-1"]
    for car in cars:
        assert car.images.shape == (3, 32, 32, 3)
        assert (car.images[:, 0, 0] == 255).all()  # transparent background composited over white
        assert car.images.min() < 128  # the car survived the area downsample
        assert car.intrinsics.f == pytest.approx(525.0 * 32 / 512)


def test_evaluate_real_cli_on_release_layout(release_tree, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["--model", str(MODEL), "--data", str(release_tree), "--split", "val", "--out", str(out)]
    assert evaluate_real.main(args) == 0
    # 3 views: each of the first 2 conditions the other 2 (--cond-views 4 stops at n - 1)
    report = _check_report(out, ["cars512_fixture-0", "cars512_fixture-1"], pairs=4)
    assert report["split"] == "val" and report["protocol"]["cond_views"] == 4
    assert "cars512_fixture-1" in capsys.readouterr().out


def test_evaluate_real_one_conditioning_view(release_tree, tmp_path):
    out = tmp_path / "eval"
    args = ["--model", str(MODEL), "--data", str(release_tree), "--cond-view", "2", "--out", str(out)]
    assert evaluate_real.main(args) == 0
    # view 2 of each car conditions views 0 and 1
    report = _check_report(out, ["cars512_fixture-0", "cars512_fixture-1"], pairs=2)
    assert report["protocol"]["cond_view"] == 2
    args[args.index("2")] = "3"  # the cars have views 0-2 only
    assert evaluate_real.main(args) == 2


def test_evaluate_real_forces_a_sampler(release_tree, tmp_path, capsys):
    out = tmp_path / "eval"
    base = ["--model", str(MODEL), "--data", str(release_tree), "--out", str(out)]
    assert evaluate_real.main([*base, "--sampler", "ddim"]) == 0
    assert json.loads((out / "eval.json").read_text())["protocol"]["sampler"] == "ddim"
    # the report names what ran: the student at the folder's defaults, DDIM at other steps
    assert evaluate_real.main(base) == 0
    assert json.loads((out / "eval.json").read_text())["protocol"]["sampler"] == "one_step"
    assert evaluate_real.main([*base, "--steps", "2"]) == 0
    assert json.loads((out / "eval.json").read_text())["protocol"]["sampler"] == "ddim"
    paper = ROOT / "models" / "paper"  # no one-step student to force
    assert evaluate_real.main(["--model", str(paper), *base[2:], "--sampler", "one_step"]) == 2
    assert "has no one-step sampler" in capsys.readouterr().err


def test_evaluate_real_errors(release_tree, tmp_path, capsys):
    out = str(tmp_path / "eval")
    assert evaluate_real.main(["--model", str(MODEL), "--data", str(tmp_path), "--out", out]) == 2
    assert "split directory not found" in capsys.readouterr().err
    args = ["--model", str(tmp_path), "--data", str(release_tree), "--out", out]
    assert evaluate_real.main(args) == 2
    assert capsys.readouterr().err.startswith("evaluate_real:")
    args = ["--model", str(MODEL), "--data", str(release_tree), "--out", out, "--cond-views", "0"]
    assert evaluate_real.main(args) == 2
    assert not (tmp_path / "eval").exists()  # nothing written on an error


@pytest.mark.skipif(real_srn_root() is None, reason="real SRN cars not found (../shared/real_srn)")
def test_real_srn_cars(tmp_path):
    root = real_srn_root()
    cars = load_split(root, "val", 32)
    assert len(cars) == 2
    for car in cars:
        assert car.images.shape == (6, 32, 32, 3)
        np.testing.assert_allclose(np.linalg.norm(car.c2w[:, :3, 3], axis=1), 1.3, atol=1e-5)
        assert car.intrinsics.f == pytest.approx(525.0 * 32 / 512)
        assert (car.images[:, 0, 0] == 255).all()  # SRN's white background
    out = tmp_path / "eval"
    args = ["--model", str(MODEL), "--data", str(root), "--split", "val", "--out", str(out)]
    assert evaluate_real.main(args) == 0
    _check_report(out, [c.name for c in cars], pairs=4 * 5)
