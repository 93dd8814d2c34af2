"""Metrics and the evaluation core on hand-made views and a tiny random model."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from skimage.color import deltaE_ciede2000, rgb2lab  # noqa: E402

from tinyldm_ros.schedule import ScheduleConfig  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training import metrics  # noqa: E402
from training.cameras import spiral_poses  # noqa: E402
from training.srn_dataset import SRNInstance  # noqa: E402
from training.srn_format import Intrinsics  # noqa: E402
from training.unet import UNet, UNetConfig  # noqa: E402
from training.vae import VAE, VAEConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_psnr_and_ssim_follow_their_definitions():
    rng = np.random.default_rng(0)
    truth = rng.integers(20, 200, (3, 32, 32, 3), dtype=np.uint8)
    shifted = truth + np.uint8(10)  # MSE = 100 exactly
    np.testing.assert_allclose(metrics.psnr(shifted, truth), 10 * np.log10(255**2 / 100.0))
    assert np.all(metrics.psnr(truth, truth) == metrics.PSNR_CAP_DB)
    np.testing.assert_allclose(metrics.ssim(truth, truth), 1.0)
    noisy = np.clip(truth + rng.normal(0, 30, truth.shape), 0, 255).astype(np.uint8)
    assert np.all(metrics.ssim(noisy, truth) < 0.9)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(truth.astype(np.float32), truth.astype(np.float32))
    with pytest.raises(ValueError, match="one shape"):
        metrics.ssim(truth[:2], truth)


def test_ciede2000_counts_object_pixels_of_either_image_only():
    truth = np.full((2, 8, 8, 3), 255, np.uint8)
    pred = truth.copy()
    truth[0, 1, 1] = (200, 0, 0)  # object only in the ground truth
    pred[0, 5, 5] = (0, 0, 200)  # object only in the prediction
    de = metrics.ciede2000(pred, truth)
    white = rgb2lab(np.ones((1, 1, 3)))
    red, blue = rgb2lab(np.array([[[200, 0, 0]]]) / 255.0), rgb2lab(np.array([[[0, 0, 200]]]) / 255.0)
    expected = (deltaE_ciede2000(red, white) + deltaE_ciede2000(white, blue)).item() / 2  # mean over 2 pixels
    assert de[0] == pytest.approx(expected)
    assert np.isnan(de[1])  # all background: no object pixels
    mask = metrics.object_mask(pred, truth)
    assert mask[0].sum() == 2 and mask[1].sum() == 0
    np.testing.assert_allclose(metrics.ciede2000(truth[:1], truth[:1]), 0.0)


def _disc_instance(name: str, colour: tuple[int, int, int], views: int = 9) -> SRNInstance:
    """White images with a disc whose position follows the camera azimuth (cheap, pose-dependent)."""
    c2w = spiral_poses(views, turns=1.0)
    yy, xx = np.mgrid[:32, :32]
    images = np.full((views, 32, 32, 3), 255, np.uint8)
    for v, pose in enumerate(c2w):
        az = np.arctan2(pose[1, 3], pose[0, 3])
        cx, cy = 16 + 8 * np.cos(az), 16 + 8 * np.sin(az)
        images[v][(xx - cx) ** 2 + (yy - cy) ** 2 < 30] = colour
    return SRNInstance(name, Path(name), images, c2w, Intrinsics(32.8, 16.0, 16.0, 32, 32))


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return ev.Models(VAE(VAEConfig.tiny()).eval(), UNet(UNetConfig.tiny()).eval(), 1.7, ScheduleConfig())


@pytest.fixture(scope="module")
def instances():
    return [_disc_instance("red", (220, 30, 30)), _disc_instance("blue", (30, 30, 220))]


def test_object_chroma_tells_paint_from_greys():
    img = np.full((3, 8, 8, 3), 255, np.uint8)
    img[0, 2:6, 2:6] = (180, 180, 185)  # silver
    img[1, 2:6, 2:6] = (200, 20, 20)  # red paint
    chroma = metrics.object_chroma(img)
    assert chroma[0] < 3.0 < 40.0 < chroma[1] and chroma[2] == 0.0  # all background: 0, not NaN


def test_azimuth_offsets_of_a_spiral():
    c2w = spiral_poses(9, turns=1.0)  # azimuths 0, 45, ..., 360
    np.testing.assert_allclose(
        ev.azimuth_offset(c2w[0], c2w), [0, 45, 90, 135, 180, 135, 90, 45, 0], atol=1e-6
    )


def test_evaluate_core_on_a_tiny_model(tiny_models, instances, tmp_path):
    cfg = ev.EvalConfig(samplers=("ddpm-4", "ddim-2"), cond_view=0, targets_per_object=5, batch_size=4)
    result = ev.evaluate(tiny_models, instances, cfg)
    n = 2 * 5
    assert result.pairs.instance.tolist() == [0] * 5 + [1] * 5
    assert np.all(result.pairs.target_view != result.pairs.cond_view)
    assert set(result.per_pair) == {"copy_input", "vae_roundtrip", "ddpm-4", "ddim-2"}
    for values in result.per_pair.values():
        assert all(v.shape == (n,) for v in values.values())
    # the copy-input baseline is exactly the metric of (conditioning image, target image)
    cond = np.stack([instances[i].images[0] for i in result.pairs.instance])
    truth = np.stack(
        [instances[i].images[v] for i, v in zip(result.pairs.instance, result.pairs.target_view, strict=True)]
    )
    np.testing.assert_allclose(result.per_pair["copy_input"]["psnr"], metrics.psnr(cond, truth))
    # same seed, same numbers; deterministic DDIM does not depend on how the pairs are batched
    again = ev.evaluate(tiny_models, instances, cfg)
    for method in result.per_pair:
        np.testing.assert_array_equal(again.per_pair[method]["psnr"], result.per_pair[method]["psnr"])
    rebatched = ev.evaluate(tiny_models, instances, ev.EvalConfig(**{**vars(cfg), "batch_size": 16}))
    for method in ("vae_roundtrip", "ddim-2"):
        np.testing.assert_allclose(
            rebatched.per_pair[method]["psnr"], result.per_pair[method]["psnr"], rtol=1e-3
        )

    summary = ev.summarize(result, cfg, {"note": "test"})
    assert summary["num_pairs"] == n and summary["num_objects"] == 2
    assert sum(summary["by_azimuth"]["count"]) == n
    assert summary["methods"]["copy_input"]["psnr"]["mean"] == pytest.approx(
        result.per_pair["copy_input"]["psnr"].mean()
    )
    # the far-view check: pairs >= 45 deg, the gain is paired with copy-input on the same pairs
    far = result.pairs.azimuth_offset >= 45.0
    assert summary["far"]["pairs"] == far.sum() > 0
    gain = summary["far"]["methods"]["ddim-2"]["psnr_gain_over_copy_input"]
    diff = result.per_pair["ddim-2"]["psnr"][far] - result.per_pair["copy_input"]["psnr"][far]
    assert gain["mean"] == pytest.approx(diff.mean()) and gain["std"] == pytest.approx(diff.std())
    assert summary["far"]["methods"]["ddim-2"]["beats_copy_input_fraction"] == pytest.approx(
        (diff > 0).mean()
    )
    assert "psnr_gain_over_copy_input" not in summary["far"]["methods"]["copy_input"]
    # the painted-car means: pairs whose input's chroma reaches the threshold
    np.testing.assert_allclose(result.input_chroma, metrics.object_chroma(cond))
    painted = result.input_chroma >= cfg.colourful_chroma
    col = summary["colourful"]
    assert col["pairs"] == painted.sum() and col["min_chroma"] == cfg.colourful_chroma
    if painted.any():
        assert col["methods"]["ddim-2"]["ciede2000"]["mean"] == pytest.approx(
            result.per_pair["ddim-2"]["ciede2000"][painted].mean()
        )
    sweep = ev.sweep_grid(
        tiny_models, instances, ev.EvalConfig(cond_view=0, sweep_angles=4, sweep_sampler="ddim-2")
    )
    assert sweep.dtype == np.uint8 and sweep.shape == (3 * (2 * 34 + 2), 3 * (9 * 34 + 4), 3)
    paths = ev.write_report(summary, tmp_path, sweep)
    assert json.loads(paths["json"].read_text())["methods"]["ddim-2"]["ssim"]["count"] == n
    table = paths["markdown"].read_text()
    assert "| vae_roundtrip |" in table and "| ddpm-4 |" in table
    assert "at least 45° of azimuth" in table
    assert paths["azimuth"].stat().st_size > 0 and paths["sweep"].stat().st_size > 0


def test_temperature_scales_the_initial_noise(tiny_models, instances):
    """temperature 0 starts DDIM from x_T = 0: the views no longer depend on the seed; 1 is the
    plain draw. evaluate() uses it, and the report says which."""
    obj = instances[0]
    cond, c2w_c, c2w_t = obj.images[[0, 0, 0]], obj.c2w[[0, 0, 0]], obj.c2w[[1, 2, 3]]
    views = {
        (t, seed): ev.synthesize(tiny_models, cond, c2w_c, c2w_t, "ddim-2", seed=seed, temperature=t)
        for t in (0.0, 1.0)
        for seed in (0, 1)
    }
    np.testing.assert_array_equal(views[0.0, 0], views[0.0, 1])
    assert not np.array_equal(views[1.0, 0], views[1.0, 1])
    base = {"samplers": ("ddim-2",), "cond_view": 0, "targets_per_object": 3, "batch_size": 8}
    results = {
        t: ev.evaluate(tiny_models, instances, ev.EvalConfig(**base, temperature=t)) for t in (0.0, 1.0)
    }
    assert not np.array_equal(
        results[0.0].per_pair["ddim-2"]["psnr"], results[1.0].per_pair["ddim-2"]["psnr"]
    )
    cfg = ev.EvalConfig(**base, temperature=0.0)
    summary = ev.summarize(results[0.0], cfg, {})
    assert summary["config"]["temperature"] == 0.0
    assert "temperature 0.0" in ev.markdown_report(summary)


def test_sweep_views_walk_around_the_object(instances):
    views = ev.sweep_views(instances[0], 0, 4)
    offsets = ev.azimuth_offset(instances[0].c2w[0], instances[0].c2w[views])
    np.testing.assert_allclose(offsets, [0, 90, 180, 90], atol=1e-6)


def test_bad_sampler_names_fail_before_any_work(tiny_models, instances):
    with pytest.raises(ValueError, match="ddpm-<steps> or ddim-<steps>"):
        ev.evaluate(tiny_models, instances, ev.EvalConfig(samplers=("euler-10",)))
    with pytest.raises(ValueError, match="2000 steps > the 1000"):
        ev.evaluate(tiny_models, instances, ev.EvalConfig(samplers=("ddim-2000",)))


def test_cli_reports_missing_checkpoints_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ev.cli(["--run", str(tmp_path / "nope"), "--data", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_cli_on_a_real_tiny_run(tmp_path, capsys):
    """render -> train VAE -> encode latents -> train UNet (a few steps each) -> evaluate CLI."""
    from training import encode_latents, render, train_unet, train_vae

    data, run = tmp_path / "cars", tmp_path / "run"
    render.main(["--out", str(data), "--train", "2", "--val", "1", "--test", "2", "--views", "5"]
                + ["--test-views", "9", "--render-size", "64", "--workers", "1"])  # fmt: skip
    common = ["--config", "tiny", "--out", str(run), "--data", str(data), "--device", "cpu", "--no-progress"]
    for stage in ("vae_train", "unet_train"):
        common += ["--set", f"{stage}.iterations=2", "--set", f"{stage}.sample_every=0"]
    train_vae.main(common)
    encode_latents.main(["--out", str(run), "--device", "cpu"])
    train_unet.main(common)
    out = tmp_path / "eval"
    argv = ["--run", str(run), "--data", str(data), "--out", str(out), "--samplers", "ddim-2", "ddpm-3"]
    argv += [
        "--targets-per-object",
        "3",
        "--sweep-angles",
        "4",
        "--sweep-sampler",
        "ddim-2",
        "--device",
        "cpu",
    ]
    assert ev.main([*argv, "--no-progress"]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["num_objects"] == 2 and summary["num_pairs"] == 6
    assert summary["meta"]["unet_step"] == 2 and summary["meta"]["split"] == "test"
    assert set(summary["methods"]) == {"copy_input", "vae_roundtrip", "ddim-2", "ddpm-3"}
    assert (out / "sweep.png").is_file() and (out / "azimuth.png").is_file()
    assert "| ddpm-3 |" in capsys.readouterr().out
