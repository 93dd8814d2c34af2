"""Export: in-memory modules -> verified model folder; real-input verification; failures leave no
half-written folder; the CLI's user errors."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tinyldm_ros.model_folder import FORMAT_VERSION, Provenance, validate_model_folder  # noqa: E402
from tinyldm_ros.schedule import ScheduleConfig  # noqa: E402
from training import export as E  # noqa: E402
from training.unet import UNet, UNetConfig  # noqa: E402
from training.vae import VAE, VAEConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_modules(seed=0):
    torch.manual_seed(seed)
    return VAE(VAEConfig.tiny()).eval(), UNet(UNetConfig.tiny()).eval()


def write_srn_instance(root: Path, n: int = 4) -> Path:
    """A minimal SRN-layout object: rgb/*.png (64x64) and pose/*.txt (c2w, row-major)."""
    from PIL import Image

    from tinyldm_ros.poses import look_at

    inst = root / "test" / "car0"
    (inst / "rgb").mkdir(parents=True)
    (inst / "pose").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        a = 2 * np.pi * i / n
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(inst / "rgb" / f"{i:06d}.png")
        c2w = look_at([1.3 * np.cos(a), 1.3 * np.sin(a), 0.5], [0, 0, 0])
        np.savetxt(inst / "pose" / f"{i:06d}.txt", c2w.reshape(1, 16))
    return root / "test"


@pytest.fixture(scope="module")
def export_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = write_srn_instance(root / "data")
    images, poses = E.load_real_views(data, 32)
    vae, unet = tiny_modules()
    report = E.export_model_folder(
        vae,
        unet,
        root / "models" / "tiny",
        schedule=ScheduleConfig(num_timesteps=500, beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
        latent_scale=1.7,
        training_radius=1.2,
        provenance=Provenance(dataset=str(data), vae_iterations=12, unet_iterations=34, wall_time_s=5.0),
        metrics={"psnr_ddim10": 12.5},
        real_images=images,
        real_poses=poses,
        log=lambda *a: None,
    )
    return report, images, poses


def test_export_writes_a_valid_folder(export_report):
    report, images, poses = export_report
    out = report.out_dir
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "decoder.onnx",
        "denoiser.onnx",
        "encoder.onnx",
        "model.json",
    ]
    info = validate_model_folder(out)
    assert info.format_version == FORMAT_VERSION
    assert info.latent_scale == pytest.approx(1.7) and info.training_radius == pytest.approx(1.2)
    assert info.schedule["num_timesteps"] == 500 and info.schedule["beta_schedule"] == "linear"
    assert info.provenance.vae_iterations == 12 and info.provenance.unet_parameters > 0
    assert info.metrics == {"psnr_ddim10": 12.5}
    assert images.shape == (4, 3, 32, 32) and poses.shape == (4, 4, 4)


def test_every_graph_is_verified_on_random_and_real_inputs(export_report):
    report, _, _ = export_report
    diffs = report.max_abs_diff
    for role in ("encoder", "denoiser", "decoder"):
        for inputs in ("random_b1", "random_b5", "real"):
            assert 0 <= diffs[f"{role}/{inputs}"] <= E.TOLERANCE
    assert any(k.startswith("pipeline/ddim10") for k in diffs)
    assert json.loads((report.out_dir / "model.json").read_text())["verification"] == diffs


def test_model_card_states_the_facts(export_report):
    report, _, _ = export_report
    card = (report.out_dir / "README.md").read_text()
    info = report.info
    for fact in ("latent_scale = 1.7", "num_timesteps", "DDIM-10", "opencv", "1.2", "psnr_ddim10", "12.5"):
        assert fact in card, fact
    assert f"| UNet iterations | {info.provenance.unet_iterations} |" in card
    for name, value in info.verification.items():
        assert f"| {name} | {value:.3g} |" in card


def test_failed_verification_keeps_the_old_folder(tmp_path, export_report):
    import shutil

    report, _, _ = export_report
    out = tmp_path / "model"
    shutil.copytree(report.out_dir, out)
    before = (out / "model.json").read_text()
    vae, unet = tiny_modules(2)
    with pytest.raises(
        E.ExportError, match=r"\w+/\w+: max abs difference ONNX vs PyTorch .* > tolerance 1e-12"
    ):
        E.export_model_folder(
            vae, unet, out, schedule=ScheduleConfig(), latent_scale=1.0, tol=1e-12, log=lambda *a: None
        )
    assert (out / "model.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind


def test_real_views_need_the_srn_layout(tmp_path):
    with pytest.raises(E.ExportError, match="no rgb/\\*.png views"):
        E.load_real_views(tmp_path, 32)


def test_cli_user_errors_exit_2_without_traceback(tmp_path, capsys):
    pytest.importorskip("training.checkpoint", reason="needs training.checkpoint (trainer)")
    code = E.main(
        ["--vae", str(tmp_path / "no_vae.safetensors"), "--unet", "x", "--out", str(tmp_path / "m")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "export failed" in err and "no_vae.safetensors" in err and "Traceback" not in err


def write_checkpoints(
    tmp_path: Path, seed: int, vae_extra: dict | None = None, unet_extra: dict | None = None
):
    """Trainer checkpoints of tiny modules (VAE at step 3, UNet at step 5, latent scale 2.5); the config."""
    ckpt = pytest.importorskip("training.checkpoint", reason="needs training.checkpoint (trainer)")
    from training.config import load_config

    cfg = load_config("tiny")
    vae, unet = tiny_modules(seed)
    ckpt.save_checkpoint(
        tmp_path / "vae.safetensors", stage="vae", step=3, config=cfg, model=vae, extra=vae_extra
    )
    unet_extra = {"latent_scale": 2.5, **(unet_extra or {})}
    ckpt.save_checkpoint(
        tmp_path / "unet.safetensors", stage="unet", step=5, config=cfg, model=unet, extra=unet_extra
    )
    return cfg


def test_cli_exports_trainer_checkpoints(tmp_path, capsys):
    cfg = write_checkpoints(tmp_path, 3)
    out = tmp_path / "models" / "cli"
    args = ["--vae", str(tmp_path / "vae.safetensors"), "--unet", str(tmp_path / "unet.safetensors")]
    args += ["--out", str(out), "--machine", "test machine", "--steps", "8"]
    assert E.main(args) == 0
    assert "checked with the runtime loader" in capsys.readouterr().out
    info = validate_model_folder(out)
    assert info.latent_scale == 2.5 and info.sampler.steps == 8
    assert info.schedule == ScheduleConfig(**vars(cfg.diffusion)).to_dict()
    p = info.provenance
    assert (p.vae_iterations, p.unet_iterations, p.machine) == (3, 5, "test machine")
    assert p.export_command.startswith("python -m training.export --vae ") and "--steps 8" in p.export_command


def test_cli_carries_the_notes_into_the_card(tmp_path, capsys):
    write_checkpoints(tmp_path, 3)
    notes = tmp_path / "notes.md"
    notes.write_text("## Training data\n\n| source | licence |\n| --- | --- |\n| a pack | CC0 |\n")
    out = tmp_path / "models" / "noted"
    args = ["--vae", str(tmp_path / "vae.safetensors"), "--unet", str(tmp_path / "unet.safetensors")]
    assert E.main([*args, "--out", str(out), "--notes", str(notes)]) == 0
    capsys.readouterr()
    assert validate_model_folder(out).provenance.notes == notes.read_text().strip()
    card = (out / "README.md").read_text()
    # verbatim, between the provenance and the metrics
    assert card.index("| a pack | CC0 |") < card.index("## Metrics")
    assert card.index("## Provenance") < card.index("## Training data")


def test_cli_ships_the_evaluation_report_and_the_training_time(tmp_path, capsys):
    write_checkpoints(tmp_path, 4, vae_extra={"wall_time_s": 7.0}, unet_extra={"wall_time_s": 3.0})
    from training import evaluate as ev

    # an evaluation report as training.evaluate writes it, from known per-pair numbers
    offsets = np.array([10.0, 50.0, 90.0, 170.0])
    copy = {"psnr": np.array([14.0, 10.0, 9.0, 12.0]), "ssim": np.full(4, 0.4), "ciede2000": np.full(4, 30.0)}
    model = {
        "psnr": np.array([13.0, 13.0, 12.0, 11.0]),
        "ssim": np.full(4, 0.6),
        "ciede2000": np.full(4, 20.0),
    }
    pairs = ev.Pairs(np.zeros(4, int), np.zeros(4, int), np.arange(1, 5), offsets)
    result = ev.EvalResult(pairs, {"copy_input": copy, "ddim-10": model}, {"copy_input": 0.0, "ddim-10": 1.0})
    summary = ev.summarize(result, ev.EvalConfig(samplers=("ddim-10",)), {"split": "test"})
    ev.write_report(summary, tmp_path / "eval")

    out = tmp_path / "models" / "evaluated"
    args = ["--vae", str(tmp_path / "vae.safetensors"), "--unet", str(tmp_path / "unet.safetensors")]
    assert E.main([*args, "--out", str(out), "--eval", str(tmp_path / "eval"), "--guidance", "1"]) == 0
    capsys.readouterr()
    info = validate_model_folder(out)
    assert {"eval.json", "eval.md", "azimuth.png"} <= {p.name for p in out.iterdir()}
    far = info.metrics["far"]
    assert far["pairs"] == 3 and far["psnr_gain_over_copy_input"]["ddim-10"] == pytest.approx(5 / 3, abs=1e-4)
    assert info.metrics["methods"]["ddim-10"]["psnr"] == pytest.approx(12.25)
    assert info.provenance.wall_time_s == pytest.approx(10.0)  # both stages' sittings
    card = (out / "README.md").read_text()
    assert "| ddim-10 | 12.25 | 0.600 | 20.00 | 12.00 | +1.67 |" in card and "[eval.md](eval.md)" in card

    code = E.main([*args, "--out", str(tmp_path / "m2"), "--eval", str(tmp_path / "nothing_here")])
    assert code == 2 and "no eval.json" in capsys.readouterr().err

    # the report must be of the sampler the model ships with
    code = E.main([*args, "--out", str(tmp_path / "m3"), "--eval", str(tmp_path / "eval")])
    assert (
        code == 2
        and "evaluated at guidance 1 but the model's default guidance is 3" in capsys.readouterr().err
    )
    cold = ev.summarize(result, ev.EvalConfig(samplers=("ddim-10",), temperature=0.0), {"split": "test"})
    ev.write_report(cold, tmp_path / "eval_cold")
    cold_args = [*args, "--eval", str(tmp_path / "eval_cold"), "--guidance", "1"]
    code = E.main([*cold_args, "--out", str(tmp_path / "m4")])
    assert code == 2 and "evaluated at temperature 0 but the model's default temperature is 1" in (
        capsys.readouterr().err
    )
    assert E.main([*cold_args, "--out", str(tmp_path / "m5"), "--temperature", "0"]) == 0
    assert validate_model_folder(tmp_path / "m5").sampler.temperature == 0.0
    assert "temperature 0," in (tmp_path / "m5" / "README.md").read_text()
