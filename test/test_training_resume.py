"""`--resume` with `--set` overrides: the checkpoint's state, the new config's hyper-parameters.

Real (tiny) UNet trainings through `training.trainer.train` on synthetic latents.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_training_objective import make_latents  # noqa: E402

from training import train_unet
from training.checkpoint import checkpoint_extra, load_checkpoint
from training.cli import run_cli
from training.config import apply_overrides, load_config
from training.distributed import setup
from training.trainer import train

BASE = ["unet_train.batch_size=8", "unet_train.sample_every=0", "unet_train.log_every=1"]


def run(tmp_path: Path, overrides: list[str], resume: bool) -> Path:
    cfg = apply_overrides(load_config("tiny"), BASE + overrides)
    latents, _, _ = make_latents(tmp_path)
    info = setup(False, "cpu")
    stage = train_unet.build_stage(cfg, latents, info, vae=None)
    return train(stage, cfg, tmp_path / "unet", info, resume=resume, show_progress=False)


def test_resume_applies_new_optimizer_hyper_parameters(tmp_path: Path):
    run(tmp_path, ["unet_train.iterations=2", "unet_train.weight_decay=0.0"], resume=False)
    path = run(
        tmp_path,
        ["unet_train.iterations=3", "unet_train.weight_decay=0.25", "unet_train.adam_betas=[0.5, 0.9]"],
        resume=True,
    )
    groups = json.loads(load_checkpoint(path).meta["optimizer"])["param_groups"]
    assert [(g["weight_decay"], tuple(g["betas"])) for g in groups] == [(0.25, (0.5, 0.9))]


def test_ema_switched_on_at_resume_starts_from_the_resumed_weights(tmp_path: Path):
    path = run(tmp_path, ["unet_train.iterations=2", "unet_train.ema_decay=0.0"], resume=False)
    w2 = load_checkpoint(path).state_dict("model")
    assert not load_checkpoint(path).has("ema")
    path = run(tmp_path, ["unet_train.iterations=3", "unet_train.ema_decay=0.999"], resume=True)
    ckpt = load_checkpoint(path)
    w3, ema = ckpt.state_dict("model"), ckpt.state_dict("ema")
    d = min(0.999, (1 + 2) / (10 + 2))  # the EMA's warm-up decay at update 2 (training.trainer.EMA)
    for k in w3:
        assert torch.allclose(ema[k], d * w2[k] + (1 - d) * w3[k], atol=1e-6), k


def test_resume_refuses_latents_with_another_scale(tmp_path: Path, capsys):
    latents, _, _ = make_latents(tmp_path)
    args = ["--config", "tiny", "--out", str(tmp_path), "--latents", str(latents.path), "--no-progress"]
    args += ["--set", "unet_train.iterations=1"] + [x for s in BASE for x in ("--set", s)]
    train_unet.main(args)
    tensors = {k: v for k, v in latents.tensors.items()}
    save_file(tensors, str(latents.path), metadata={**latents.meta, "latent_scale": "1.75"})
    with pytest.raises(SystemExit) as e:
        run_cli(train_unet.main, [*args, "--resume", "--set", "unet_train.iterations=2"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "latent_scale 1.75" in err and "2.5" in err and "Traceback" not in err


def test_checkpoints_carry_the_wall_time_of_every_sitting(tmp_path: Path):
    first = checkpoint_extra(load_checkpoint(run(tmp_path, ["unet_train.iterations=2"], resume=False)))
    second = checkpoint_extra(load_checkpoint(run(tmp_path, ["unet_train.iterations=4"], resume=True)))
    assert 0 < first["wall_time_s"] < second["wall_time_s"] < first["wall_time_s"] + 600
    assert second["params"] == first["params"]  # the stage's own metadata is kept beside it
