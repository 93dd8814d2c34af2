"""A shipped model folder's VAE back from its ONNX graphs (training.onnx_weights), and
vae_train.init_from, which starts a VAE training run from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training import train_vae
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.errors import UserError
from training.onnx_weights import vae_state_from_model_folder
from training.run_log import read_log
from training.vae import VAE, Decode, EncodeMean

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(DEFAULT / name), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def default_vae() -> VAE:
    """models/default's VAE rebuilt in torch from the `colour` config (the one it was trained with)."""
    vae = VAE(load_config("colour").vae).eval()
    vae.load_state_dict(vae_state_from_model_folder(DEFAULT, vae))
    return vae


def test_recovered_vae_reproduces_the_onnx_graphs(default_vae):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    mean, colour = _session("encoder.onnx").run(None, {"image": images})
    with torch.no_grad():
        t_mean, t_colour = EncodeMean(default_vae)(torch.from_numpy(images))
    np.testing.assert_allclose(t_mean.numpy(), mean, atol=1e-4)
    np.testing.assert_allclose(t_colour.numpy(), colour, atol=1e-4)
    latent = rng.standard_normal(mean.shape).astype(np.float32)
    [image] = _session("decoder.onnx").run(None, {"latent": latent, "colour": colour})
    with torch.no_grad():
        t_image = Decode(default_vae)(torch.from_numpy(latent), torch.from_numpy(colour))
    np.testing.assert_allclose(t_image.numpy(), image, atol=1e-4)
    assert np.abs(image).max() > 0.1  # a real decode, not zeros matching zeros


def test_every_weight_is_recovered_not_left_at_init(default_vae):
    """Guard against a parameter that happens to fit by shape but was never read from the graph: no
    recovered tensor may equal a fresh VAE's (GroupNorm starts at ones/zeros, convs at random)."""
    fresh = VAE(load_config("colour").vae).state_dict()
    recovered = default_vae.state_dict()
    same = [k for k in fresh if fresh[k].numel() > 1 and torch.equal(fresh[k], recovered[k])]
    assert not same


def test_not_a_model_folder(tmp_path):
    shutil.copy(DEFAULT / "encoder.onnx", tmp_path)
    with pytest.raises(UserError, match="not a model folder"):
        vae_state_from_model_folder(tmp_path, VAE(load_config("colour").vae))


def test_a_vae_that_does_not_fit(tmp_path):
    with pytest.raises(UserError, match="does not fit this config") as e:
        vae_state_from_model_folder(DEFAULT, VAE(load_config("tiny").vae))
    assert "base_channels" in str(e.value)  # names the folder's own VAE config, to fix the run's


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "cars"
    cmd = [sys.executable, "-m", "training.render", "--set", "cars", "--out", str(out), "--train", "1"]
    cmd += ["--val", "1", "--test", "0", "--views", "4", "--size", "32", "--workers", "1", "--seed", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
    return out


def _train_one_step(cars: Path, out: Path, *sets: str) -> None:
    args = ["--config", "colour", "--data", str(cars), "--out", str(out), "--device", "cpu"]
    for s in ("vae_train.iterations=1", "vae_train.batch_size=4", "vae_train.log_every=1", *sets):
        args += ["--set", s]
    train_vae.main(args + ["--no-progress"])


def test_init_from_starts_training_from_the_model_folder(cars, tmp_path, default_vae):
    _train_one_step(cars, tmp_path / "init", f"vae_train.init_from={DEFAULT}")
    _train_one_step(cars, tmp_path / "scratch")
    recovered = default_vae.state_dict()
    init = load_checkpoint(tmp_path / "init/vae/checkpoint.safetensors").state_dict("model")
    scratch = load_checkpoint(tmp_path / "scratch/vae/checkpoint.safetensors").state_dict("model")
    # one warm-up step (lr 1e-3 / 500) moves a weight by ~2e-6: the run began at the shipped weights
    assert max(float((init[k] - recovered[k]).abs().max()) for k in recovered) < 1e-4
    assert max(float((scratch[k] - recovered[k]).abs().max()) for k in recovered) > 0.1
    # and the first step's loss shows it: a trained VAE reconstructs the cars, a random one cannot
    [first_init] = [r["loss"] for r in read_log(tmp_path / "init/vae/log.csv")]
    [first_scratch] = [r["loss"] for r in read_log(tmp_path / "scratch/vae/log.csv")]
    assert first_init < 0.5 * first_scratch


def test_init_from_a_folder_that_does_not_fit_is_a_one_line_error(cars, tmp_path, capsys):
    args = ["--config", "tiny", "--data", str(cars), "--out", str(tmp_path / "run"), "--device", "cpu"]
    args += ["--set", f"vae_train.init_from={DEFAULT}", "--set", "vae_train.iterations=1", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        train_vae.run_cli(train_vae.main, args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "does not fit this config" in err and str(DEFAULT) in err
