"""The tiny VAE and UNet: shapes, parameter counts, loss, guided sampling, ONNX export."""

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training import params  # noqa: E402
from training.sampler import DDIMScheduler, DDPMScheduler, guided_noise, sample  # noqa: E402
from training.unet import UNet, UNetConfig  # noqa: E402
from training.vae import VAE, Decode, EncodeMean, VAEConfig, count_parameters, vae_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("cfg", [VAEConfig.paper(), VAEConfig.tiny()], ids=["paper", "tiny"])
def test_vae_shapes(cfg):
    vae = VAE(cfg)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (2, 1, 4, 4) == (2, cfg.latent_channels, cfg.latent_size, 4)
    assert vae.decode(mean).shape == x.shape
    x_hat, m2, _ = vae(x, sample=False)
    torch.testing.assert_close(x_hat, vae.decode(mean))
    torch.testing.assert_close(m2, mean)
    gen = torch.Generator().manual_seed(1)
    assert not torch.allclose(vae(x, sample=True, generator=gen)[0], x_hat)


@pytest.mark.parametrize("cfg", [UNetConfig.paper(), UNetConfig.tiny()], ids=["paper", "tiny"])
def test_unet_shapes_and_batch_independence(cfg):
    unet = UNet(cfg).eval()
    x = torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 500, 999])
    ctx = torch.randn(3, cfg.context_dim)
    eps = unet(x, t, ctx)
    assert eps.shape == x.shape and eps.dtype == torch.float32
    # each sample only sees itself (CFG batches cond and uncond together)
    torch.testing.assert_close(unet(x[1:2], t[1:2], ctx[1:2]), eps[1:2], atol=1e-5, rtol=1e-5)
    # the context and the timestep both reach the output
    assert not torch.allclose(unet(x, t, torch.zeros_like(ctx)), eps)
    assert not torch.allclose(unet(x, t.flip(0), ctx), eps)


def test_paper_parameter_counts_are_within_5_percent():
    n_vae = count_parameters(VAE(VAEConfig.paper()))
    n_unet = count_parameters(UNet(UNetConfig.paper()))
    assert abs(n_vae - params.PAPER_VAE_PARAMS) <= params.TOLERANCE * params.PAPER_VAE_PARAMS
    assert abs(n_unet - params.PAPER_UNET_PARAMS) <= params.TOLERANCE * params.PAPER_UNET_PARAMS
    assert count_parameters(VAE(VAEConfig.tiny())) < 20_000
    assert count_parameters(UNet(UNetConfig.tiny())) < 40_000


def test_params_command_prints_totals(capsys):
    assert params.main(["--config", "paper"]) == 0
    out = capsys.readouterr().out
    assert params.main(["--config", "paper", "--set", "vae.base_channels=7"]) == 2
    assert "GroupNorm" in capsys.readouterr().err
    n_vae = count_parameters(VAE(VAEConfig.paper()))
    assert "vae total" in out and f"{n_vae:,d}" in out and f"{params.PAPER_UNET_PARAMS:,d}" in out
    rows = dict((name, n) for name, n, _ in params.param_table(VAEConfig.paper(), UNetConfig.paper()))
    assert (
        rows["vae.encoder"] + rows["vae.decoder"] + rows["vae.quant_conv"] + rows["vae.post_quant_conv"]
        == rows["vae total"]
    )


def test_vae_loss_normalisation():
    x = torch.rand(4, 3, 32, 32)
    x_hat = x + 0.1
    zeros = torch.zeros(4, 1, 4, 4)
    loss, parts = vae_loss(x, x_hat, zeros, zeros)
    assert parts["kl"] == 0.0
    torch.testing.assert_close(loss, torch.tensor(0.1))
    mean = torch.full((4, 1, 4, 4), 2.0)  # KL per element = 0.5 * 2^2 = 2 nats
    loss, parts = vae_loss(x, x, mean, zeros)
    torch.testing.assert_close(parts["kl"], torch.tensor(2.0))
    torch.testing.assert_close(loss, torch.tensor(5.0 * 2.0 * 16 / 3072))  # LDM: per-sample sums
    loss, _ = vae_loss(x, x, mean, zeros, kl_norm="mean")
    torch.testing.assert_close(loss, torch.tensor(10.0))
    with pytest.raises(ValueError, match="kl_norm"):
        vae_loss(x, x, mean, zeros, kl_norm="sum")


def test_configs_reject_sizes_the_model_cannot_take():
    with pytest.raises(ValueError, match="image_size 36 is not divisible by 8"):
        VAEConfig(image_size=36)
    with pytest.raises(ValueError, match="latent_size 6 is not divisible by 4"):
        UNetConfig(latent_size=6)
    with pytest.raises(ValueError, match="GroupNorm"):
        UNetConfig(model_channels=12)
    assert VAEConfig(channel_mult=[1, 2, 2, 4]) == VAEConfig.paper()  # lists from YAML


def _manual_loop(unet, ctx, scheduler, steps, x_T):
    scheduler.set_timesteps(steps)
    x = x_T
    for t in scheduler.timesteps.tolist():
        x = scheduler.step(unet(x, torch.full((x.shape[0],), t), ctx), t, x)
    return x


@torch.no_grad()
def test_guidance_one_is_the_plain_conditional_sampler():
    unet = UNet(UNetConfig.tiny()).eval()
    ctx = torch.randn(2, 32)
    x_T = torch.randn(2, 1, 4, 4)
    got = sample(unet, ctx, DDIMScheduler(), steps=5, guidance=1.0, x_T=x_T)
    torch.testing.assert_close(got, _manual_loop(unet, ctx, DDIMScheduler(), 5, x_T))


@torch.no_grad()
def test_batched_guidance_equals_separate_cond_and_uncond_calls():
    unet = UNet(UNetConfig.tiny()).eval()
    x = torch.randn(3, 1, 4, 4)
    ctx = torch.randn(3, 32)
    t = torch.full((3,), 321)
    cond, uncond = unet(x, t, ctx), unet(x, t, torch.zeros_like(ctx))
    torch.testing.assert_close(guided_noise(unet, x, 321, ctx, 3.0), uncond + 3.0 * (cond - uncond))
    # guidance 1 through the batched formula is the conditional prediction
    torch.testing.assert_close(guided_noise(unet, x, 321, ctx, 1.0 + 1e-12), cond, atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_sampling_is_seeded():
    unet = UNet(UNetConfig.tiny()).eval()
    ctx = torch.randn(2, 32)
    a = sample(unet, ctx, DDPMScheduler(), 8, 2.0, torch.Generator().manual_seed(7))
    b = sample(unet, ctx, DDPMScheduler(), 8, 2.0, torch.Generator().manual_seed(7))
    c = sample(unet, ctx, DDPMScheduler(), 8, 2.0, torch.Generator().manual_seed(8))
    assert a.shape == (2, 1, 4, 4) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def _export_and_compare(module, example, names, out_name, fresh_inputs):
    buf = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        example,
        buf,
        input_names=names,
        output_names=[out_name],
        dynamic_axes={n: {0: "batch"} for n in [*names, out_name]},
        opset_version=17,
        dynamo=False,  # the torch.export-based exporter needs onnxscript, which is not a dependency
    )
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: a.numpy() for n, a in zip(names, fresh_inputs, strict=True)})[0]
    with torch.no_grad():
        want = module(*fresh_inputs).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_paper_models_export_to_onnx_with_dynamic_batch():
    vae = VAE(VAEConfig.paper())
    unet = UNet(UNetConfig.paper())
    _export_and_compare(
        EncodeMean(vae), (torch.randn(2, 3, 32, 32),), ["image"], "mean", [torch.rand(5, 3, 32, 32) * 2 - 1]
    )
    _export_and_compare(
        Decode(vae), (torch.randn(2, 1, 4, 4),), ["latent"], "image", [torch.randn(3, 1, 4, 4)]
    )
    example = (torch.randn(2, 1, 4, 4), torch.tensor([1, 999]), torch.randn(2, 32))
    fresh = [torch.randn(7, 1, 4, 4), torch.randint(0, 1000, (7,)), torch.randn(7, 32)]
    _export_and_compare(unet, example, ["latent", "timestep", "context"], "noise", fresh)
