"""Beyond the paper: the ablation configs, the 4x4x4 latent through export and the engine, and colour
conditioning (vae.colour_cond): the summary, the decoder, export and the runtime engine carrying the
conditioning image's colour to the decoder. (Training with it: test_training.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tinyldm_ros.engine import Engine, InputError  # noqa: E402
from tinyldm_ros.model_folder import ModelFolderError, load_model_info  # noqa: E402
from tinyldm_ros.preprocess import postprocess  # noqa: E402
from tinyldm_ros.schedule import ScheduleConfig  # noqa: E402
from training import export as E  # noqa: E402
from training.unet import UNet, UNetConfig  # noqa: E402
from training.vae import COLOUR_VALUES, VAE, VAEConfig, colour_summary  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ABLATION = {  # config -> the only fields in which it differs from `paper` (training/configs/README.md)
    "latent4": {"vae.latent_channels": 4, "unet.latent_channels": 4, "unet.context_dim": 80},
    "colour": {"vae.colour_cond": True},
    "latent4_colour": {
        "vae.latent_channels": 4,
        "unet.latent_channels": 4,
        "unet.context_dim": 80,
        "vae.colour_cond": True,
    },
}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("name", sorted(ABLATION))
def test_ablation_configs_change_only_what_they_say(name: str):
    from training.config import load_config, to_dict

    paper, cfg = _flat(to_dict(load_config("paper"))), _flat(to_dict(load_config(name)))
    diff = {k: v for k, v in cfg.items() if v != paper[k] and k != "name"}
    assert diff == ABLATION[name]


def test_latent4_exports_and_runs_in_the_engine(tmp_path: Path):
    from training.config import load_config

    cfg = load_config("tiny", [f"{k}={v}" for k, v in ABLATION["latent4"].items()])
    torch.manual_seed(0)
    E.export_model_folder(
        VAE(cfg.vae).eval(),
        UNet(cfg.unet).eval(),
        tmp_path / "latent4",
        schedule=ScheduleConfig(num_timesteps=100),
        latent_scale=1.0,
        log=lambda *a: None,
    )
    engine = Engine(tmp_path / "latent4", provider="cpu", warmup=False)
    assert engine.info.latent_shape == [4, 4, 4] and engine.info.context.size == 80
    views = engine.synthesize(np.zeros((32, 32, 3), np.uint8), np.repeat(np.eye(4)[None], 3, 0), steps=3)
    assert views.shape == (3, 32, 32, 3)


def test_other_views_are_of_the_same_object_and_never_the_view_itself():
    from training.train_vae import other_views

    offsets = torch.tensor([0, 3, 4, 8])  # objects of 3, 1 and 4 views
    idx = torch.arange(8).repeat(50)
    got = other_views(idx, offsets, torch.Generator().manual_seed(0))
    obj = torch.searchsorted(offsets, idx, right=True)
    assert torch.equal(torch.searchsorted(offsets, got, right=True), obj)
    assert torch.equal(got == idx, idx == 3)  # only the single-view object gets itself
    assert set(got[idx == 4].tolist()) == {5, 6, 7}


def test_colour_from_is_checked():
    from training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="colour_from must be self or other_view"):
        load_config("tiny", ["vae_train.colour_from=target"])


def colour_vae(seed: int = 0, random_colour_layers: bool = True) -> VAE:
    torch.manual_seed(seed)
    vae = VAE(VAEConfig(**{**vars(VAEConfig.tiny()), "colour_cond": True})).eval()
    if random_colour_layers:  # zero at init; a trained decoder's are not
        with torch.no_grad():
            for lin in (vae.decoder.colour_in, vae.decoder.colour_out):
                lin.weight.normal_(0, 0.5)
    return vae


def test_colour_summary_is_the_object_pixels_mean_and_std():
    x = torch.ones(2, 3, 4, 4)  # white background everywhere
    x[0, :, 0, 0] = torch.tensor([-1.0, 0.0, 0.5])
    x[0, :, 0, 1] = torch.tensor([-0.5, 0.0, 0.1])
    got = colour_summary(x)
    assert got.shape == (2, COLOUR_VALUES)
    torch.testing.assert_close(got[0, :3], torch.tensor([-0.75, 0.0, 0.3]))
    torch.testing.assert_close(got[0, 3:], torch.tensor([0.25, 0.0, 0.2]), atol=1e-3, rtol=0)
    # no object pixel at all: zeros, not a division by zero
    torch.testing.assert_close(got[1], torch.tensor([0.0, 0.0, 0.0, 1e-3, 1e-3, 1e-3]))


def test_colour_decoder_starts_as_the_paper_decoder_and_needs_the_colour():
    paper = VAE(VAEConfig.tiny()).eval()
    coloured = colour_vae(random_colour_layers=False)
    missing = coloured.load_state_dict(paper.state_dict(), strict=False)
    assert sorted(missing.missing_keys) == sorted(
        f"decoder.colour_{w}.{p}" for w in ("in", "out") for p in ("weight", "bias")
    )
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = paper.encode(x)[0]
        torch.testing.assert_close(coloured.decode(z, coloured.colour(x)), paper.decode(z))
        with pytest.raises(ValueError, match="colour-conditioned"):
            coloured.decode(z)
        # one colour row serves the whole batch
        one = coloured.colour(x[:1])
        torch.testing.assert_close(coloured.decode(z, one), coloured.decode(z, one.expand(3, -1)))


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    from test_export import write_srn_instance

    root = tmp_path_factory.mktemp("colour")
    data = write_srn_instance(root / "data")
    images, poses = E.load_real_views(data, 32)
    torch.manual_seed(1)
    E.export_model_folder(
        colour_vae(),
        UNet(UNetConfig.tiny()).eval(),
        root / "models" / "colour",
        schedule=ScheduleConfig(num_timesteps=200),
        latent_scale=1.3,
        real_images=images,
        real_poses=poses,
        log=lambda *a: None,
    )
    return root / "models" / "colour"


def test_export_carries_the_colour_through_the_contract(colour_folder: Path):
    info = load_model_info(colour_folder)
    assert info.colour_values == COLOUR_VALUES
    # both graphs verified against PyTorch, the colour output included, and the whole pipeline
    assert any(k.startswith("encoder/real/colour") for k in info.verification)
    assert any(k.startswith("decoder/real") for k in info.verification)
    assert any(k.startswith("pipeline/") for k in info.verification)
    assert "colour float32 [B,6]" in (colour_folder / "README.md").read_text()


def test_engine_decodes_with_the_conditioning_images_colour(colour_folder: Path):
    engine = Engine(colour_folder, provider="cpu", warmup=False)
    rng = np.random.default_rng(0)
    red, blue = (np.full((32, 32, 3), 255, np.uint8) for _ in range(2))
    red[8:24, 8:24] = (200, 30, 30)
    blue[8:24, 8:24] = (30, 30, 200)
    z, colour = engine.encode_with_colour(engine.prepare(red))
    assert colour.shape == (1, COLOUR_VALUES)
    _, colour_blue = engine.encode_with_colour(engine.prepare(blue))
    z = z + rng.standard_normal(z.shape).astype(np.float32)
    assert not np.allclose(engine.decode(z, colour), engine.decode(z, colour_blue))
    with pytest.raises(InputError, match="colour-conditioned"):
        engine.decode(z)
    # synthesize() is its pieces, with the input's colour reaching the decoder
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    views = engine.synthesize(red, poses, steps=4, seed=3)
    x_T, _ = engine.draw_noise(2, 4, 3)
    z0 = engine.denoise(engine.make_context(engine.encode(engine.prepare(red)), poses), x_T, 4)
    np.testing.assert_array_equal(views, postprocess(engine.decode(z0, colour)))


def test_negative_colour_values_is_a_clear_error(colour_folder: Path, tmp_path: Path):
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(colour_folder, folder)
    d = json.loads((folder / "model.json").read_text())
    d["colour_values"] = -1
    (folder / "model.json").write_text(json.dumps(d))
    with pytest.raises(ModelFolderError, match=r"colour_values must be an integer in \[0, 1024\], got -1"):
        load_model_info(folder)


def test_node_runs_a_colour_conditioned_model_unchanged(colour_folder: Path, request):
    """The node knows nothing of colour conditioning: the engine and model.json carry it."""
    pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
    pytest.importorskip("tinyldm_ros.msg", reason="tinyldm_ros interfaces not built (run `make setup`)")
    request.getfixturevalue("ros_context")
    from node_harness import Harness, random_image, wait_for
    from sensor_msgs.msg import Image

    from tinyldm_ros.conversions import image_to_numpy

    h = Harness("/nvs_colour", model_dir=str(colour_folder), orbit_azimuths_deg=[90.0], steps=2)
    try:
        assert h.node.engine.info.colour_values == COLOUR_VALUES
        views = h.record(Image, "views/orbit_az90_el0")
        h.wait_outputs_matched()
        h.publish_image(random_image())
        assert wait_for(lambda: views, 10.0), "no view came back"
        array, _ = image_to_numpy(views[0][1])
        assert array.shape == (32, 32, 3)
    finally:
        h.close()
