"""The one-step sampler end to end on the tiny fixture model: a real (tiny) distillation of its
temperature-0 DDIM, the export into the folder, and the engine's choice between student and DDIM."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tinyldm_ros.engine import Engine, SettingsError
from tinyldm_ros.model_folder import ModelFolderError, load_model_info

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "tiny_model"
SAMPLE = HERE / "data" / "srn_sample" / "train"


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """(teacher folder, folder with the student, run folder)."""
    from training.distill import main as distill
    from training.export_student import main as export

    tmp = tmp_path_factory.mktemp("one_step")
    teacher = tmp / "teacher"
    shutil.copytree(FIXTURE, teacher)
    info = json.loads((teacher / "model.json").read_text())
    info["sampler"].update(temperature=0.0, steps=4)
    (teacher / "model.json").write_text(json.dumps(info))
    data = tmp / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        for inst in SAMPLE.iterdir():
            (data / split / inst.name).symlink_to(inst.resolve())
    run = tmp / "run"
    common = [
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        "--out",
        str(run),
        "--no-progress",
        "--threads",
        "1",
    ]
    sets = ["--set", "data.train_pairs=256", "--set", "data.val_pairs=16", "--set", "train.batch_size=32"]
    sets += [
        "--set",
        "train.log_every=20",
        "--set",
        "train.checkpoint_every=20",
        "--set",
        "student.hidden=32",
    ]
    # two sittings: --until then --resume, as a long run would be done
    distill([*common, *sets, "--set", "train.iterations=60", "--until", "20"])
    assert not (run / "metrics.json").exists()
    distill([*common, "--resume"])
    student = tmp / "student"
    shutil.copytree(teacher, student)
    export(["--student", str(run / "checkpoint.safetensors"), "--model", str(student)])
    return teacher, student, run


def test_int8_decoder_serves_the_one_step_path_only(distilled, tmp_path):
    from training.export_student import main as export

    teacher, _, run = distilled
    folder = tmp_path / "int8"
    shutil.copytree(teacher, folder)
    export(["--student", str(run / "checkpoint.safetensors"), "--model", str(folder), "--int8-decoder"])
    info = load_model_info(folder)
    assert info.one_step.decoder == "decoder_int8.onnx"
    assert info.one_step.verification["decoder_int8/psnr_vs_float_db"] >= 35.0
    # quantised layers take their weights from a DequantizeLinear; the output layer keeps its float ones
    graph = onnx.load(str(folder / "decoder_int8.onnx")).graph
    layers = [n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    floats = {t.name for t in graph.initializer}
    assert layers[-1].input[1] in floats
    assert any(n.input[1] not in floats for n in layers[:-1])
    image = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    eng, ref = Engine(folder, workers=1), Engine(teacher, workers=1)
    eng.synthesize(image, poses)
    assert eng.specialised.count(("one_step_decoder", 2)) == 1
    np.testing.assert_array_equal(eng.synthesize(image, poses, sampler="ddim"), ref.synthesize(image, poses))
    # re-exporting without the flag (e.g. after re-distilling) drops the int8 decoder, file and entry
    export(["--student", str(run / "checkpoint.safetensors"), "--model", str(folder)])
    assert load_model_info(folder).one_step.decoder == ""
    assert not (folder / "decoder_int8.onnx").exists()


def test_distillation_learns_the_teacher(distilled):
    _, _, run = distilled
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iterations"] == 60
    history = metrics["history"]
    assert [h["step"] for h in history] == [20, 40, 60]
    # the student got closer to the teacher than where it started
    assert history[-1]["val_latent_rmse"] < history[0]["val_latent_rmse"]
    assert metrics["val"]["student_vs_teacher"]["psnr"] > 0


def test_progressive_method_runs_its_stages(distilled, tmp_path):
    from training.distill import main as distill

    teacher, _, run = distilled
    out = tmp_path / "prog"
    out.mkdir()
    for f in ("pairs_train.npz", "pairs_val.npz"):
        (out / f).symlink_to(run / f)
    distill(
        ["--teacher", str(teacher), "--out", str(out), "--method", "progressive", "--no-progress",
         "--set", "data.train_pairs=256", "--set", "data.val_pairs=16", "--set", "train.iterations=40",
         "--set", "train.batch_size=32", "--set", "train.log_every=20", "--set", "student.hidden=32",
         "--set", "train.warmup_steps=5"]
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "progressive" and metrics["iterations"] == 40
    assert np.isfinite(metrics["val"]["latent_rmse"])


def test_engine_runs_the_student_by_default_and_ddim_when_asked(distilled):
    teacher, student, _ = distilled
    info = load_model_info(student)
    assert info.sampler.name == "one_step" and info.one_step.file == "one_step.onnx"
    assert info.one_step.verification["one_step/random_b5"] < 1e-4
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    poses = np.repeat(np.eye(4)[None], 3, axis=0)
    poses[:, 0, 3] = [0.0, 0.3, -0.3]
    eng, ref = Engine(student, workers=2), Engine(teacher, workers=1)
    views = eng.synthesize(image, poses)
    assert eng.last_timing.sampler == "one_step" and eng.last_timing.denoiser_calls == 1
    # sampler="ddim" at the defaults is the teacher itself, bit for bit
    ddim = eng.synthesize(image, poses, sampler="ddim")
    assert eng.last_timing.sampler == "ddim" and eng.last_timing.denoiser_calls == 4
    np.testing.assert_array_equal(ddim, ref.synthesize(image, poses))
    assert views.shape == ddim.shape
    # other settings are diffusion samples the student never learnt: DDIM runs them
    for kw in ({"steps": 2}, {"temperature": 0.5}, {"guidance": 2.0}):
        eng.synthesize(image, poses, **kw)
        assert eng.last_timing.sampler == "ddim", kw
    with pytest.raises(SettingsError) as e:
        eng.synthesize(image, poses, steps=2, sampler="one_step")
    assert e.value.field == "sampler"
    with pytest.raises(SettingsError):
        ref.synthesize(image, poses, sampler="one_step")  # the teacher has no student
    with pytest.raises(SettingsError):
        eng.synthesize(image, poses, sampler="ddpm")


def test_model_json_one_step_fields_are_checked(distilled, tmp_path):
    _, student, _ = distilled
    good = json.loads((student / "model.json").read_text())

    def load(mutate):
        folder = tmp_path / "m"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(student, folder)
        d = json.loads(json.dumps(good))
        mutate(d)
        (folder / "model.json").write_text(json.dumps(d))
        return load_model_info(folder)

    with pytest.raises(ModelFolderError, match="go together"):
        load(lambda d: d.pop("one_step"))
    with pytest.raises(ModelFolderError, match="go together"):
        load(lambda d: d["sampler"].update(name="ddim"))
    with pytest.raises(ModelFolderError, match="deterministic"):
        load(lambda d: d["sampler"].update(temperature=0.5))
    with pytest.raises(ModelFolderError, match="one_step.file"):
        load(lambda d: d["one_step"].update(file="decoder.onnx"))
    with pytest.raises(ModelFolderError, match="missing"):
        load(lambda d: d["one_step"].update(file="absent.onnx"))
    with pytest.raises(ModelFolderError, match="unknown field"):
        load(lambda d: d["one_step"].update(extra=1))
