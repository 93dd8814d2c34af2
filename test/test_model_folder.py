"""The model folder contract: model.json schema, loader errors, ONNX signature checks."""

import json
import shutil
from pathlib import Path

import pytest

from tinyldm_ros.model_folder import (
    FORMAT_VERSION,
    ModelFolderError,
    ModelInfo,
    load_model_info,
    save_model_info,
    validate_model_folder,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny_model"


@pytest.fixture
def folder(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(FIXTURE, dst)
    return dst


def edit_json(folder: Path, **changes) -> None:
    d = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        node = d
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    (folder / "model.json").write_text(json.dumps(d))


def test_fixture_is_valid_and_current():
    info = validate_model_folder(FIXTURE)
    assert info.format_version == FORMAT_VERSION
    assert info.image_size == 32 and info.latent_shape == [1, 4, 4] and info.latent_size == 16
    assert (
        info.context.size == 32 and info.context.cond_latent == [0, 16] and info.context.rel_pose == [16, 32]
    )
    assert info.num_train_timesteps == info.schedule["num_timesteps"] == 1000
    assert info.pose_convention == "opencv" and info.prediction_type == "epsilon"
    assert info.sampler.name == "ddim" and info.sampler.steps == 10
    assert info.provenance.random_weights
    assert info.verification and max(info.verification.values()) <= 1e-4
    card = (FIXTURE / "README.md").read_text()
    assert "Random weights" in card and "latent_scale" in card and "DDIM-10" in card


def test_round_trip(tmp_path):
    info = load_model_info(FIXTURE)
    save_model_info(info, tmp_path)
    again = ModelInfo.from_dict(json.loads((tmp_path / "model.json").read_text()))
    assert again == info
    assert list(json.loads((tmp_path / "model.json").read_text()))[0] == "format_version"


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist.*training.export"):
        load_model_info(tmp_path / "nope")


def test_missing_model_json(folder):
    (folder / "model.json").unlink()
    with pytest.raises(ModelFolderError, match="model.json: missing"):
        load_model_info(folder)


def test_corrupt_json(folder):
    (folder / "model.json").write_text('{"format_version": 1, "name": ')
    with pytest.raises(ModelFolderError, match="corrupt JSON"):
        load_model_info(folder)


@pytest.mark.parametrize("name", ["encoder.onnx", "denoiser.onnx", "decoder.onnx"])
def test_missing_onnx(folder, name):
    (folder / name).unlink()
    with pytest.raises(ModelFolderError, match=f"{name}: missing"):
        load_model_info(folder)


def test_corrupt_onnx(folder):
    (folder / "denoiser.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(ModelFolderError, match="denoiser.onnx: not a loadable ONNX model"):
        validate_model_folder(folder)


def test_other_format_version_says_how_to_re_export(folder):
    edit_json(folder, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ModelFolderError) as e:
        load_model_info(folder)
    msg = str(e.value)
    assert f"format version {FORMAT_VERSION + 1}" in msg and f"reads version {FORMAT_VERSION}" in msg
    assert "Re-export" in msg and "python test/fixtures/make_tiny_model.py" in msg  # the recorded command


def test_old_format_without_recorded_command_names_the_generic_command(folder):
    d = {"format_version": 0, "name": "old"}
    (folder / "model.json").write_text(json.dumps(d))
    with pytest.raises(ModelFolderError, match=r"python -m training.export --vae .* --unet .* --out"):
        load_model_info(folder)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"latent_scale": 0.0}, r"latent_scale must be a number in \(0, 1e\+06\], got 0.0"),
        ({"latent_scale": "1"}, "latent_scale must be a number, got '1'"),
        # json `true` is not 1, and a huge radius or scale overflows into black views
        ({"latent_scale": True}, "latent_scale must be a number, got True"),
        ({"latent_scale": 1e300}, r"latent_scale must be a number in \(0, 1e\+06\]"),
        ({"training_radius": True}, "training_radius must be a number, got True"),
        ({"training_radius": 1e300}, r"training_radius must be a number in \(0, 1000\]"),
        ({"training_radius": float("nan")}, "training_radius must be finite"),
        ({"image_size": True}, "image_size must be an integer, got True"),
        ({"colour_values": True}, "colour_values must be an integer, got True"),
        ({"latent_shape": [True, 4, 4]}, "latent_shape must be an integer, got True"),
        ({"sampler__steps": True}, "sampler.steps must be an integer"),
        ({"schedule__num_timesteps": "1000"}, "schedule: num_timesteps must be an integer, got '1000'"),
        ({"schedule__num_timesteps": True}, "schedule: num_timesteps must be an integer, got True"),
        ({"schedule__beta_start": "0.001"}, "schedule: beta_start must be a number"),
        ({"image_size": -3}, "image_size"),
        ({"latent_shape": [1, 4]}, "latent_shape"),
        ({"prediction_type": "v_prediction"}, "prediction_type"),
        ({"pose_convention": "opengl"}, "pose_convention"),
        ({"training_radius": 0}, "training_radius"),
        ({"sampler__steps": 5000}, r"sampler.steps must be an integer in \[1, 1000\]"),
        ({"sampler__spacing": "linspace"}, "sampler.spacing"),
        ({"sampler__guidance": -1}, "sampler.guidance"),
        ({"sampler__temperature": 1.5}, r"sampler.temperature must be in \[0, 1\]"),
        ({"sampler__temperature": True}, "sampler.temperature"),
        ({"context__size": 30}, "context.size"),
        ({"schedule__beta_schedule": "quadratic"}, "schedule: beta_schedule"),
        ({"surprise": 1}, r"unknown field\(s\) \['surprise'\]"),
    ],
)
def test_invalid_fields_are_named(folder, changes, match):
    edit_json(folder, **changes)
    with pytest.raises(ModelFolderError, match=match):
        load_model_info(folder)


def test_missing_required_field(folder):
    d = json.loads((folder / "model.json").read_text())
    del d["latent_scale"]
    (folder / "model.json").write_text(json.dumps(d))
    with pytest.raises(ModelFolderError, match="latent_scale"):
        load_model_info(folder)


def _rename_input(path: Path, old: str, new: str) -> None:
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(path))
    for node in m.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
    for i in m.graph.input:
        if i.name == old:
            i.name = new
    onnx.save(m, str(path))


def test_wrong_onnx_input_name(folder):
    _rename_input(folder / "denoiser.onnx", "timestep", "t")
    with pytest.raises(ModelFolderError, match=r"denoiser input names \['latent', 't', 'context'\]"):
        validate_model_folder(folder)


def test_wrong_onnx_shape(folder):
    edit_json(folder, image_size=64)  # the graphs are for 32x32
    with pytest.raises(ModelFolderError, match=r"encoder input 'image' has shape .*32, 32.*expected.*64, 64"):
        validate_model_folder(folder)


def test_fixed_batch_axis_is_rejected(folder):
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(folder / "decoder.onnx"))
    dim = m.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1
    onnx.save(m, str(folder / "decoder.onnx"))
    with pytest.raises(ModelFolderError, match="fixed batch axis"):
        validate_model_folder(folder)


def test_folder_without_sampler_temperature_loads_with_temperature_1(folder):
    """sampler.temperature came after format version 1's first folders; those keep sampling as before."""
    d = json.loads((folder / "model.json").read_text())
    d["sampler"].pop("temperature", None)
    (folder / "model.json").write_text(json.dumps(d))
    assert load_model_info(folder).sampler.temperature == 1.0
    edit_json(folder, sampler__temperature=0.0)
    assert load_model_info(folder).sampler.temperature == 0.0
