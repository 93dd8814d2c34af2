"""The runtime engine on real ONNX Runtime sessions: outputs, parity with the torch sampler,
determinism, threads and providers (bad input: test_engine_inputs.py)."""

import logging
import os
import threading

import numpy as np
import onnxruntime as ort
import pytest
from engine_helpers import FIXTURE, image, orbit_poses

from tinyldm_ros import schedule as S
from tinyldm_ros.engine import Engine, ProviderError, gpu_present

HAVE_GPU = gpu_present() and "CUDAExecutionProvider" in ort.get_available_providers()
NO_GPU_REASON = (
    "needs an NVIDIA GPU and onnxruntime's CUDAExecutionProvider "
    f"(GPU visible: {gpu_present()}, providers: {ort.get_available_providers()})"
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine():
    return Engine(FIXTURE, provider="cpu")


# ------------------------------------------------------------------------------------ outputs


def test_loads_and_reports(engine):
    assert engine.providers == ["CPUExecutionProvider"] and engine.device == "cpu"
    assert engine.info.image_size == 32 and engine.info.sampler.steps == 10


@pytest.mark.parametrize("n", [1, 3, 8])
def test_one_view_per_pose(engine, n):
    views = engine.synthesize(image(), orbit_poses(n))
    assert views.shape == (n, 32, 32, 3) and views.dtype == np.uint8
    t = engine.last_timing
    assert t.views == n and t.steps == 10 and t.denoiser_calls == 10
    assert t.encode_ms > 0 and t.denoise_ms > 0 and t.decode_ms > 0
    parts = t.preprocess_ms + t.encode_ms + t.denoise_ms + t.decode_ms + t.postprocess_ms
    assert parts <= t.total_ms + 1e-6


def test_single_pose_4x4_is_accepted(engine):
    assert engine.synthesize(image(), np.eye(4)).shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "img",
    [
        image(480, 640),  # VGA camera frame: centre-cropped and area-resized
        image(64, 48, 4),  # RGBA
        image(40, 40, 1),  # mono with a channel axis
        image(40, 40)[:, :, 0],  # mono HxW
        image(50, 70, 3, np.uint16),
        image(32, 32, 3, np.float32),
    ],
    ids=["vga", "rgba", "mono1", "mono", "uint16", "float"],
)
def test_any_image_size_and_type(engine, img):
    assert engine.synthesize(img, orbit_poses(2)).shape == (2, 32, 32, 3)


def test_crop_box_selects_the_region(engine):
    big = np.zeros((100, 200, 3), np.uint8)
    big[10:42, 150:182] = image()
    a = engine.synthesize(big, orbit_poses(2), crop_box=(150, 10, 32))
    b = engine.synthesize(image(), orbit_poses(2))
    np.testing.assert_array_equal(a, b)


def test_deterministic_for_a_seed(engine):
    poses = orbit_poses(4)
    a = engine.synthesize(image(), poses, seed=7)
    b = engine.synthesize(image(), poses, seed=7)
    c = engine.synthesize(image(), poses, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_temperature_scales_the_initial_noise(engine):
    x_T, _ = engine.draw_noise(3, 10, seed=4)
    cold, _ = engine.draw_noise(3, 10, seed=4, temperature=0.5)
    np.testing.assert_array_equal(cold, x_T * np.float32(0.5))
    assert engine.info.sampler.temperature == 1.0  # the fixture's model.json: the default
    poses = orbit_poses(3)
    assert not np.array_equal(
        engine.synthesize(image(), poses, temperature=0.5), engine.synthesize(image(), poses)
    )
    # Temperature 0 with eta 0: x_T = 0 whatever the seed, so the views are the same for every seed.
    zero = [engine.synthesize(image(), poses, seed=s, temperature=0.0) for s in (0, 1, 2)]
    np.testing.assert_array_equal(zero[0], zero[1])
    np.testing.assert_array_equal(zero[0], zero[2])
    # and what the pieces give from an all-zero x_T
    z_cond = engine.encode(engine.prepare(image()))
    ctx = engine.make_context(z_cond, engine.check_poses(poses))
    z0 = engine.denoise(ctx, np.zeros_like(x_T), steps=engine.info.sampler.steps, guidance=1.0)
    from tinyldm_ros.preprocess import postprocess

    np.testing.assert_array_equal(postprocess(engine.decode(z0)), zero[0])


def test_warmup_builds_once_what_a_call_needs():
    engine = Engine(FIXTURE, provider="cpu", workers=2, warmup=False)
    assert not engine.is_warm(5)
    engine.warmup(5)
    assert engine.is_warm(5) and not engine.is_warm(5, guidance=2.0) and not engine.is_warm(7)
    # groups of 3 and 2 targets, one per worker, with the shared encoder
    assert {("encoder", 1), ("decoder", 3), ("decoder", 2), ("denoiser", 3), ("denoiser", 2)} <= set(
        engine.specialised
    )
    timing = engine.last_timing
    engine.warmup(5)  # already warm: no call
    assert engine.last_timing is timing
    engine.warmup(5, guidance=2.0)
    assert engine.last_timing is not timing and ("denoiser", 6) in engine.specialised


def test_batch_equals_single_calls(engine):
    """All poses of a call are one batch: view 0 of a batch is the single-view result (the noise of
    view 0 is the first draw of the same generator), up to kernel rounding."""
    poses = orbit_poses(5)
    batch = engine.synthesize(image(), poses, seed=3)
    single = engine.synthesize(image(), poses[:1], seed=3)
    assert np.abs(batch[0].astype(int) - single[0].astype(int)).max() <= 1
    # changing the batch size back and forth reuses the specialised sessions and buffers correctly
    again = engine.synthesize(image(), poses, seed=3)
    np.testing.assert_array_equal(batch, again)


def test_steps_guidance_eta_change_the_result(engine):
    base = engine.synthesize(image(), orbit_poses(2), steps=10)
    assert engine.synthesize(image(), orbit_poses(2), steps=1).shape == base.shape
    assert engine.synthesize(image(), orbit_poses(2), steps=1000).shape == base.shape
    assert not np.array_equal(engine.synthesize(image(), orbit_poses(2), steps=4), base)
    assert not np.array_equal(engine.synthesize(image(), orbit_poses(2), guidance=3.0), base)
    assert not np.array_equal(engine.synthesize(image(), orbit_poses(2), eta=1.0), base)


def test_pieces_compose_to_synthesize(engine):
    poses = orbit_poses(3)
    views = engine.synthesize(image(), poses, seed=5, guidance=2.0)
    x_T, step_noise = engine.draw_noise(3, 10, seed=5)
    assert step_noise is None  # eta = 0: only the initial noise is drawn
    z_cond = engine.encode(engine.prepare(image()))
    ctx = engine.make_context(z_cond, engine.check_poses(poses))
    assert ctx.shape == (3, 32)
    np.testing.assert_array_equal(ctx[:, 16:], poses.reshape(3, 16).astype(np.float32))
    z0 = engine.denoise(ctx, x_T, steps=10, guidance=2.0)
    from tinyldm_ros.preprocess import postprocess

    np.testing.assert_array_equal(postprocess(engine.decode(z0)), views)


def test_ddim_plan_is_schedule_ddim_step(engine):
    """The engine's fused per-step coefficients reproduce tinyldm_ros.schedule.ddim_step exactly."""
    rng = np.random.default_rng(0)
    for eta in (0.0, 0.5):
        ts, coefs = engine.ddim_plan(10, eta)
        np.testing.assert_array_equal(ts, engine.schedule.timesteps(10, "trailing"))
        for t, prev, (c_x, c_eps, c_noise) in zip(ts, S.previous_timesteps(ts), coefs, strict=True):
            x, eps, noise = rng.standard_normal((3, 16))
            a, ap = engine.schedule.alpha_bar(int(t)), engine.schedule.alpha_bar(int(prev))
            want = S.ddim_step(x, eps, a, ap, eta, noise)
            np.testing.assert_allclose(c_x * x + c_eps * eps + c_noise * noise, want, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------ parity with PyTorch


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A freshly exported tiny model together with the torch modules it came from."""
    torch = pytest.importorskip("torch")
    from training.export import export_model_folder
    from training.unet import UNet, UNetConfig
    from training.vae import VAE, VAEConfig

    torch.manual_seed(123)
    vae, unet = VAE(VAEConfig.tiny()).eval(), UNet(UNetConfig.tiny()).eval()
    out = tmp_path_factory.mktemp("export") / "parity"
    export_model_folder(vae, unet, out, schedule=S.ScheduleConfig(), latent_scale=0.8, log=lambda *a: None)
    return Engine(out, provider="cpu"), vae, unet


@pytest.mark.parametrize(("steps", "guidance", "eta"), [(10, 1.0, 0.0), (4, 3.0, 0.0), (20, 1.0, 0.7)])
def test_parity_with_torch_sampler(exported, steps, guidance, eta):
    """Same image, poses and noise (drawn by Engine.draw_noise) through the torch modules and
    tinyldm_ros.schedule's DDIM step vs the engine: same latents and images."""
    import torch

    from training.sampler import DDIMScheduler, sample

    engine, vae, unet = exported
    poses = orbit_poses(3)
    img = image(seed=4)
    views = engine.synthesize(img, poses, steps=steps, seed=11, guidance=guidance, eta=eta)
    x_T, step_noise = engine.draw_noise(3, steps, seed=11, eta=eta)
    scale = engine.info.latent_scale
    with torch.no_grad():
        cond = torch.from_numpy(engine.prepare(img))
        z_cond = vae.encode(cond)[0] * scale
        ctx = torch.cat(
            [z_cond.reshape(1, -1).expand(3, -1), torch.from_numpy(poses).float().reshape(3, 16)], 1
        )
        sched = DDIMScheduler(S.ScheduleConfig.from_dict(engine.info.schedule), eta=eta)
        if eta == 0.0:
            z0 = sample(unet, ctx, sched, steps, guidance=guidance, x_T=torch.from_numpy(x_T))
        else:  # the ancestral noise of each step is the engine's draw, in step order
            from training.sampler import guided_noise

            sched.set_timesteps(steps)
            z0 = torch.from_numpy(x_T)
            for i, t in enumerate(sched.timesteps.tolist()):
                eps = guided_noise(unet, z0, t, ctx, guidance)
                a, ap = sched._alpha_bars(t)
                z0 = S.ddim_step(z0, eps, a, ap, eta, torch.from_numpy(step_noise[i]))
        ref = vae.decode(z0 / scale).numpy()
    z_engine = engine.denoise(
        engine.make_context(engine.encode(engine.prepare(img)), poses), x_T, steps, guidance, eta, step_noise
    )
    np.testing.assert_allclose(z_engine, z0.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(engine.decode(z_engine), ref, atol=1e-4)
    ref_u8 = np.round(np.clip((ref.transpose(0, 2, 3, 1) + 1) * 127.5, 0, 255))
    assert np.abs(views.astype(int) - ref_u8).max() <= 1


# ---------------------------------------------------------------------------------- threads


def test_concurrent_callers_are_serialised(engine):
    poses = orbit_poses(2)
    expected = {seed: engine.synthesize(image(), poses, seed=seed) for seed in range(6)}
    results, errors = {}, []

    def work(seed):
        try:
            for _ in range(3):
                results.setdefault(seed, []).append(engine.synthesize(image(), poses, seed=seed))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for seed, outs in results.items():
        for out in outs:
            np.testing.assert_array_equal(out, expected[seed])


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_worker_threads_give_the_views_of_one_batch(n):
    """Split across worker threads, each group with its own buffers and noise slice, the views are
    exactly those of one batch on one thread, with and without guidance and eta noise."""
    one = Engine(FIXTURE, provider="cpu", workers=1, warmup=False)
    poses = orbit_poses(n)
    for workers in (2, 3):
        split = Engine(FIXTURE, provider="cpu", workers=workers, warmup=False)
        assert split.workers == workers
        for kwargs in ({}, {"guidance": 2.0, "eta": 0.5}):
            np.testing.assert_array_equal(
                split.synthesize(image(), poses, seed=7, **kwargs),
                one.synthesize(image(), poses, seed=7, **kwargs),
            )
        assert split.last_timing.views == n and split.last_timing.denoise_ms > 0


def test_workers_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            Engine(FIXTURE, provider="cpu", workers=bad, warmup=False)
    assert Engine(FIXTURE, provider="cpu", warmup=False).workers == min(2, os.cpu_count() or 1)


# --------------------------------------------------------------------------------- providers


def test_unknown_provider_name_and_bad_threads():
    with pytest.raises(ValueError, match="provider must be one of"):
        Engine(FIXTURE, provider="metal")
    with pytest.raises(ValueError, match="intra_op_threads"):
        Engine(FIXTURE, intra_op_threads=0)


def test_auto_provider_says_which(caplog):
    with caplog.at_level(logging.INFO, logger="tinyldm_ros.engine"):
        e = Engine(FIXTURE, provider="auto", warmup=False)
    assert any("provider auto ->" in r.getMessage() for r in caplog.records)
    if HAVE_GPU:
        assert e.providers[0] == "CUDAExecutionProvider"
    else:
        assert e.providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_requested_without_gpu_is_loud(provider):
    if HAVE_GPU:
        pytest.skip("a GPU is present: this checks the no-GPU error")
    with pytest.raises(ProviderError, match=f"provider '{provider}' requested"):
        Engine(FIXTURE, provider=provider, warmup=False)


@pytest.mark.skipif(not HAVE_GPU, reason=NO_GPU_REASON)
@pytest.mark.parametrize("cuda_graph", [True, False], ids=["cuda-graph", "plain-launches"])
def test_cuda_runs_on_gpu_and_matches_cpu(engine, cuda_graph):
    gpu = Engine(FIXTURE, provider="cuda", cuda_graph=cuda_graph, warmup_views=(1, 4))
    assert gpu.providers[0] == "CUDAExecutionProvider" and gpu.device == "cuda"
    for n, seed, guidance in ((4, 2, 1.0), (4, 3, 1.0), (1, 2, 1.0), (4, 2, 2.5)):
        poses = orbit_poses(n)
        a = gpu.synthesize(image(seed=seed), poses, seed=seed, guidance=guidance)
        b = engine.synthesize(image(seed=seed), poses, seed=seed, guidance=guidance)
        # a replayed CUDA graph must see each call's new inputs, not the captured ones
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2, (n, seed, guidance)


def test_runtime_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, tinyldm_ros.engine, tinyldm_ros.model_folder;"
        f"tinyldm_ros.engine.Engine({str(FIXTURE)!r}, provider='cpu').synthesize("
        "__import__('numpy').zeros((8, 8, 3), 'uint8'), __import__('numpy').eye(4));"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
