"""Training CLIs end to end on a few rendered cars: overfitting, SIGKILL + resume, NaN guard, DDP, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training import encode_latents, sample, train_unet, train_vae
from training.checkpoint import checkpoint_extra, load_checkpoint
from training.encode_latents import Latents
from training.nvs import generate, make_context
from training.run_lock import LOCK_NAME, run_lock
from training.run_log import read_log
from training.unet import UNet
from training.vae import VAE
from training.views import load_views, to_model_range

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the machine is shared, and runs compared for bit-equality must use the same count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    """A handful of views: 1 training car x 8 views (+1 val, +1 test car), 32 px, by training.render."""
    out = tmp_path_factory.mktemp("data") / "cars"
    cmd = [sys.executable, "-m", "training.render", "--set", "cars", "--out", str(out), "--train", "1"]
    cmd += ["--val", "1", "--test", "1", "--views", "8", "--test-views", "8", "--size", "32", "--seed", "0"]
    subprocess.run(cmd + ["--workers", "1"], check=True, cwd=ROOT, env=_env(), capture_output=True)
    return out


def _run(main, *args: str) -> None:
    main.main([str(a) for a in args] + ["--no-progress"])


def _synthesize(vae: VAE, unet: UNet, cfg, scale: float, images, c2w, cond, target, pose_of) -> torch.Tensor:
    x_cond = to_model_range(images[cond])
    with torch.no_grad():
        ctx = make_context(vae.encode(x_cond)[0] * scale, c2w[cond], c2w[pose_of])
        return vae.decode(generate(unet, ctx, cfg, seed=0) / scale).clamp(-1, 1)


def test_tiny_overfits_below_copy_input_baseline(cars: Path, tmp_path: Path):
    """The `tiny` config, as committed, learns the handful of views: from one view and the relative
    pose it synthesizes the others well below the copy-input error, and clearly better with the right
    pose than with another view's pose (so it uses the pose, not just an average of the car)."""
    out = tmp_path / "run"
    _run(train_vae, "--config", "tiny", "--data", cars, "--out", out)
    _run(encode_latents, "--out", out)
    z, _, _ = Latents(out / "latents.safetensors").split("train")
    assert abs(float(z.std()) - 1.0) < 1e-4  # latent_scale makes the training latents unit-variance
    _run(train_unet, "--config", "tiny", "--out", out)

    vae_c = load_checkpoint(out / "vae/checkpoint.safetensors")
    unet_c = load_checkpoint(out / "unet/checkpoint.safetensors")
    cfg = unet_c.config
    assert (vae_c.step, unet_c.step) == (cfg.vae_train.iterations, cfg.unet_train.iterations)
    vae, unet = VAE(cfg.vae).eval(), UNet(cfg.unet).eval()
    vae.load_state_dict(vae_c.inference_state_dict())
    unet.load_state_dict(unet_c.inference_state_dict())
    scale = float(checkpoint_extra(unet_c)["latent_scale"])

    views = load_views(cars, "train", 32, progress=False)
    n = views.num_views
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]  # every ordered pair of distinct views
    cond, target = [a for a, _ in pairs], [b for _, b in pairs]
    wrong = [next(c for c in range(a + b, a + b + n) if c % n not in (a, b)) % n for a, b in pairs]
    x_target = to_model_range(views.images[target])
    args = (vae, unet, cfg, scale, views.images, views.c2w, cond, target)
    err = float((_synthesize(*args, target) - x_target).abs().mean())
    err_wrong_pose = float((_synthesize(*args, wrong) - x_target).abs().mean())
    err_copy = float((to_model_range(views.images[cond]) - x_target).abs().mean())
    print(
        f"L1: synthesized {err:.4f}, with another view's pose {err_wrong_pose:.4f}, copy-input {err_copy:.4f}"
    )
    assert err < 0.8 * err_copy
    assert err < 0.9 * err_wrong_pose

    png = tmp_path / "grid.png"
    _run(
        sample,
        "--out",
        out,
        "--data",
        cars,
        "--split",
        "test",
        "--instances",
        "1",
        "--views",
        "3",
        "--png",
        png,
    )
    assert png.stat().st_size > 0
    last = f"step_{cfg.unet_train.iterations:07d}.png"
    assert (out / "unet/samples" / last).is_file() and (out / "vae/samples").is_dir()


def _losses(run: Path, stage: str = "vae") -> dict[int, float]:
    return {int(r["step"]): r["loss"] for r in read_log(run / stage / "log.csv")}


def test_sigkill_then_resume_matches_uninterrupted_run(cars: Path, tmp_path: Path):
    common = ["--config", "tiny", "--data", cars, "--set", "vae_train.iterations=100000"]
    common += ["--set", "vae_train.checkpoint_every=3", "--set", "vae_train.log_every=1"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    _run(train_vae, *common, "--out", ref, "--until", "12")

    cmd = [
        sys.executable,
        "-m",
        "training.train_vae",
        *map(str, common),
        "--out",
        str(killed),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "vae/checkpoint.safetensors"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(ckpt).step
    assert 3 <= killed_at < 12

    _run(train_vae, *common, "--out", killed, "--resume", "--until", "12")
    want, got = _losses(ref), _losses(killed)
    assert sorted(got) == list(range(1, 13))  # rows logged after the checkpoint by the killed run are dropped
    assert got == want  # bit-identical, including the first step after the restart
    ref_w = load_checkpoint(ref / "vae/checkpoint.safetensors").tensors
    got_w = load_checkpoint(ckpt).tensors
    for k in ref_w:
        if not k.startswith("rng."):
            assert torch.equal(ref_w[k], got_w[k]), k


def test_nan_loss_stops_naming_step_and_checkpoint(cars: Path, tmp_path: Path, capsys):
    args = ["--config", "tiny", "--data", cars, "--out", tmp_path, "--set", "vae_train.lr=1e30"]
    args += [
        "--set",
        "vae_train.grad_clip=0",
        "--set",
        "vae_train.warmup_steps=0",
        "--set",
        "vae_train.checkpoint_every=1",
    ]
    with pytest.raises(SystemExit) as e:
        train_vae.run_cli(train_vae.main, [str(a) for a in args] + ["--no-progress"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    step = load_checkpoint(tmp_path / "vae/checkpoint.safetensors").step
    assert f"at step {step + 1}" in err and f"checkpoint.safetensors (step {step})" in err, err
    assert "Traceback" not in err


def test_ddp_world_size_one_gloo_matches_single_process(cars: Path, tmp_path: Path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    args = [
        "--config",
        "tiny",
        "--data",
        cars,
        "--set",
        "vae_train.iterations=4",
        "--set",
        "vae_train.log_every=1",
    ]
    _run(train_vae, *args, "--out", tmp_path / "plain")
    _run(train_vae, *args, "--out", tmp_path / "ddp", "--ddp", "--device", "cpu")
    assert not torch.distributed.is_initialized()
    assert _losses(tmp_path / "ddp") == _losses(tmp_path / "plain")


def test_torchrun_two_ranks_on_cpu(cars: Path, tmp_path: Path):
    """Two gloo ranks on the CPU: batches split over the ranks, metrics all-reduced, one checkpoint."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "training.train_unet", "--config", "tiny", "--out", str(tmp_path), "--device", "cpu"]
    cmd += ["--set", "unet_train.iterations=4", "--set", "unet_train.log_every=1", "--no-progress"]
    _run(train_vae, "--config", "tiny", "--data", cars, "--out", tmp_path, "--set", "vae_train.iterations=2")
    _run(encode_latents, "--out", tmp_path)
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x2 (DDP)" in proc.stdout
    losses = _losses(tmp_path, "unet")
    assert sorted(losses) == [1, 2, 3, 4] and all(np.isfinite(v) for v in losses.values())
    assert load_checkpoint(tmp_path / "unet/checkpoint.safetensors").step == 4


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--data", "{empty}"], "does not exist"),
        (["--data", "{nosplit}"], "no instances"),
        (["--data", "{cars}", "--set", "data.image_size=30"], "data.image_size=30"),
        (["--data", "{cars}", "--set", "data.image_size=36", "--set", "vae.image_size=36"], "divisible by 8"),
        (["--data", "{cars}", "--set", "vae_train.lrr=1"], "vae_train.lrr"),
        (["--data", "{cars}", "--set", "vae_train.iterations=many"], "expected an integer"),
    ],
)
def test_bad_input_is_a_one_line_error(cars: Path, tmp_path: Path, capsys, extra, needle):
    (tmp_path / "nosplit" / "train").mkdir(parents=True)
    subs = {"{empty}": str(tmp_path / "missing"), "{nosplit}": str(tmp_path / "nosplit"), "{cars}": str(cars)}
    args = ["--config", "tiny", "--out", str(tmp_path / "run"), *[subs.get(a, a) for a in extra]]
    with pytest.raises(SystemExit) as e:
        train_vae.run_cli(train_vae.main, args + ["--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert needle in err and "Traceback" not in err, err


def test_existing_run_needs_resume(cars: Path, tmp_path: Path, capsys):
    args = [
        "--config",
        "tiny",
        "--data",
        str(cars),
        "--out",
        str(tmp_path),
        "--set",
        "vae_train.iterations=1",
    ]
    _run(train_vae, *args)
    with pytest.raises(SystemExit):
        train_vae.run_cli(train_vae.main, args + ["--no-progress"])
    assert "pass --resume" in capsys.readouterr().err
    assert np.isfinite(_losses(tmp_path)[1])


def test_colour_conditioned_vae_trains_encodes_evaluates_and_exports(cars: Path, tmp_path: Path):
    """`vae.colour_cond` with the 4x4x4 latent through every CLI: the latents file keeps the colour
    summaries, the UNet's sample grid and the evaluation decode with the conditioning view's colour,
    and the export verifies."""
    from tinyldm_ros.engine import Engine
    from training import evaluate, export

    out = tmp_path / "run"
    # with the 4x4x4 latent too (latent4_colour): its latents are strided views of the moments
    sets = ["--set", "vae.colour_cond=true", "--set", "vae.latent_channels=4"]
    sets += ["--set", "unet.latent_channels=4", "--set", "unet.context_dim=80"]
    vae_sets = sets + ["--set", "vae_train.iterations=20", "--set", "vae_train.sample_every=20"]
    _run(train_vae, "--config", "tiny", "--data", cars, "--out", out, *vae_sets)
    _run(encode_latents, "--out", out)
    latents = Latents(out / "latents.safetensors")
    z, _, _ = latents.split("train")
    assert latents.colour("train").shape == (len(z), 6)
    # a decoder-only fine-tune on other views' colour keeps the encoder, hence the latents, as they are
    ft = ["--set", "vae_train.iterations=25", "--set", "vae_train.colour_from=other_view"]
    ft += ["--set", "vae_train.train_encoder=false"]
    before = load_checkpoint(out / "vae/checkpoint.safetensors").inference_state_dict()
    _run(train_vae, "--config", "tiny", "--data", cars, "--out", out, "--resume", *vae_sets, *ft)
    after = load_checkpoint(out / "vae/checkpoint.safetensors")
    assert after.step == 25 and after.config.vae_train.colour_from == "other_view"
    state = after.inference_state_dict()
    assert all(torch.equal(state[k], before[k]) for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert any(not torch.equal(state[k], before[k]) for k in before if k.startswith("decoder."))
    unet_sets = sets + ["--set", "unet_train.iterations=20", "--set", "unet_train.sample_every=20"]
    _run(train_unet, "--config", "tiny", "--out", out, *unet_sets)
    assert (out / "unet/samples/step_0000020.png").is_file()
    evaluate.main(
        ["--run", str(out), "--data", str(cars), "--samplers", "ddim-2", "--sweep-sampler", "ddim-2"]
    )
    report = json.loads((out / "eval/eval.json").read_text())
    assert np.isfinite(report["methods"]["ddim-2"]["psnr"]["mean"])
    model = tmp_path / "model"
    args = ["--vae", out / "vae/checkpoint.safetensors", "--unet", out / "unet/checkpoint.safetensors"]
    assert export.main([str(a) for a in [*args, "--out", model, "--data", cars / "test"]]) == 0
    engine = Engine(model, provider="cpu", warmup=False)
    assert engine.info.colour_values == 6 and engine.info.latent_shape == [4, 4, 4]
    assert engine.synthesize(np.full((40, 30, 3), 90, np.uint8), np.eye(4)[None]).shape == (1, 32, 32, 3)


def test_a_second_training_on_one_out_is_refused_until_the_first_ends(cars: Path, tmp_path: Path, capsys):
    # Before: both runs on a fresh --out passed the "checkpoint exists" check and wrote into one log.
    out = tmp_path / "run"
    common = ["--config", "tiny", "--data", str(cars), "--set", "vae_train.iterations=100000"]
    cmd = [sys.executable, "-m", "training.train_vae", *common, "--out", str(out), "--no-progress"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = out / LOCK_NAME
        deadline = time.time() + 60
        while not (lock.is_file() and lock.read_text()) and time.time() < deadline:
            assert first.poll() is None, "the first training ended early"
            time.sleep(0.05)
        for module in (train_vae, train_unet):
            with pytest.raises(SystemExit) as e:
                module.run_cli(module.main, [*common, "--out", str(out), "--no-progress"])
            assert e.value.code == 2
            err = capsys.readouterr().err
            assert f"is in use by another training (train_vae, pid {first.pid}" in err, err
        assert first.poll() is None  # the first one was left alone
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with run_lock(out, "test"):  # a killed holder leaves no stale lock behind
        assert str(os.getpid()) in (out / LOCK_NAME).read_text()
