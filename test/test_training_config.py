"""Training configs (YAML <-> dataclasses, overrides, errors); batch order, pairing and context maths."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tinyldm_ros.poses import look_at, relative_transform
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import (
    CONFIG_DIR,
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_json,
    config_to_json,
    dump_config,
    load_config,
    to_dict,
)
from training.nvs import make_context
from training.run_log import RunLog
from training.views import EpochOrder, pair_targets

CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def test_both_configs_exist():
    assert {"paper", "tiny"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_file_round_trips_exactly(name: str):
    path = CONFIG_DIR / f"{name}.yaml"
    cfg = load_config(name)
    assert dump_config(cfg) == path.read_text()  # YAML -> dataclass -> YAML, byte for byte
    assert to_dict(cfg) == yaml.safe_load(path.read_text())  # every field is spelled out in the file
    assert config_from_json(config_to_json(cfg)) == cfg  # the checkpoint metadata form


def test_paper_config_has_the_paper_numbers():
    cfg = load_config("paper")
    assert (cfg.vae_train.iterations, cfg.unet_train.iterations) == (50_000, 20_000)
    assert (cfg.vae_train.l1_weight, cfg.vae_train.kl_weight) == (1.0, 5.0)
    assert cfg.unet_train.loss == "l1" and cfg.unet.context_dim == 32


def test_unknown_key_names_key_and_file(tmp_path: Path):
    data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    data["unet_train"]["learning_rate"] = 1e-3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unet_train\.learning_rate"):
        load_config(str(path))
    data = {"nmae": "x"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'nmae'"):
        load_config(str(path))


def test_overrides_are_typed_by_the_dataclass():
    cfg = load_config("tiny", ["unet_train.lr=1e-4", "vae.channel_mult=[1,2,2,2]", "data.max_instances=3"])
    assert cfg.unet_train.lr == 1e-4 and isinstance(cfg.unet_train.lr, float)
    assert cfg.vae.channel_mult == (1, 2, 2, 2)
    assert cfg.data.max_instances == 3
    assert apply_overrides(cfg, ["data.max_instances=null"]).data.max_instances is None
    with pytest.raises(ConfigError, match="vae_train.iterations: expected an integer"):
        load_config("tiny", ["vae_train.iterations=lots"])
    with pytest.raises(ConfigError, match="unknown key 'vae_train.lrate'"):
        load_config("tiny", ["vae_train.lrate=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config("tiny", ["vae_train.lr"])


@pytest.mark.parametrize("root", ["123", "yes", "null", "1e-3", "[a]"])
def test_string_fields_take_the_override_text_as_is(root: str):
    """--data / --set data.root=... is a path, whatever YAML would make of its name."""
    cfg = load_config("tiny", [f"data.root={root}"])
    assert cfg.data.root == root


def test_csv_log_keeps_its_history_if_the_rewrite_on_resume_dies(tmp_path: Path, monkeypatch):
    log = RunLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        log.log(step, {"loss": float(step)})
    before = (tmp_path / "log.csv").read_text()

    def killed(self, rows):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(KeyboardInterrupt):
        RunLog(tmp_path, start_step=2, tensorboard=False)
    assert (tmp_path / "log.csv").read_text() == before


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["data.image_size=64"], "data.image_size=64 but the VAE is built for vae.image_size=32"),
        (["vae.image_size=36", "data.image_size=36"], "not divisible by 8"),
        (["unet.context_dim=20"], "unet.context_dim=20"),
        (["vae_train.amp=maybe"], "amp must be bf16, fp16 or fp32"),
        (["diffusion.beta_schedule=wavy"], "beta_schedule"),
        (["sample.temperature=1.5"], r"sample\.temperature must be in \[0, 1\], got 1\.5"),
    ],
)
def test_inconsistent_configs_are_clear_errors(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config("tiny", overrides)


def test_missing_config_lists_the_builtin_ones():
    with pytest.raises(ConfigError, match="paper.*tiny|tiny.*paper"):
        load_config("nonexistent")


@pytest.mark.parametrize("world", [1, 2, 4])
def test_epoch_order_covers_every_item_once_per_epoch(world: int):
    n, batch = 37, 8
    orders = [EpochOrder(n, batch, seed=3, rank=r, world_size=world) for r in range(world)]
    steps = 2 * n // batch + 3
    stream = torch.cat([torch.cat([o.batch(s) for o in orders]) for s in range(steps)])
    for e in range(len(stream) // n):
        assert sorted(stream[e * n : (e + 1) * n].tolist()) == list(range(n))
    assert torch.equal(orders[0].batch(5), EpochOrder(n, batch, 3, 0, world).batch(5))  # a function of step


def test_pairs_are_distinct_views_of_one_object():
    offsets = np.array([0, 3, 4, 10])
    instance_of = np.repeat(np.arange(3), np.diff(offsets))
    cond = torch.arange(10).repeat(20)
    target = pair_targets(cond, offsets, instance_of, torch.Generator().manual_seed(0), distinct=True)
    assert np.array_equal(instance_of[target.numpy()], instance_of[cond.numpy()])
    single = cond == 3  # the object with one view can only pair with itself
    assert torch.all(target[single] == 3) and torch.all(target[~single] != cond[~single])
    assert len(set(target[cond == 4].tolist())) == 5  # every other view of the 6-view object is drawn


def test_context_is_latent_then_row_major_relative_pose():
    a = look_at(np.array([1.3, 0.0, 0.4]), np.zeros(3))
    b = look_at(np.array([0.0, 1.3, 0.2]), np.zeros(3))
    z = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    ctx = make_context(z, a[None], b[None])
    assert ctx.shape == (1, 32) and ctx.dtype == torch.float32
    assert torch.equal(ctx[0, :16], torch.arange(16.0))
    np.testing.assert_allclose(ctx[0, 16:].numpy(), relative_transform(a, b).reshape(16), atol=1e-6)


def test_checkpoint_round_trip(tmp_path: Path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    cfg = load_config("tiny")
    path = save_checkpoint(
        tmp_path / "c.safetensors", stage="vae", step=7, config=cfg, model=model, optimizer=opt
    )
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed into place
    ckpt = load_checkpoint(path, stage="vae")
    assert ckpt.step == 7 and ckpt.config == cfg and isinstance(ckpt.config, TrainConfig)
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.state_dict("model")[k], v)
    with pytest.raises(ValueError, match="'vae' checkpoint, expected a 'unet'"):
        load_checkpoint(path, stage="unet")


def test_checkpoint_save_removes_temporaries_of_killed_writers(tmp_path: Path):
    target = tmp_path / "c.safetensors"
    # a writer SIGKILLed mid-write leaves its temporary file behind
    code = (
        "import os, signal, sys; p = sys.argv[1]; "
        "open(f'{p}/.c.safetensors.tmp{os.getpid()}', 'wb').write(b'x' * 1000); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert proc.returncode == -signal.SIGKILL
    live = tmp_path / f".c.safetensors.tmp{os.getppid()}"  # a writer that is still running
    live.write_bytes(b"y")
    assert len(list(tmp_path.glob(".c.safetensors.tmp*"))) == 2
    save_checkpoint(target, stage="vae", step=1, config=load_config("tiny"), model=torch.nn.Linear(2, 2))
    assert sorted(tmp_path.glob(".c.safetensors.tmp*")) == [live]
    assert load_checkpoint(target).step == 1
