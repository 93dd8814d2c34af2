"""training.export_unet: the exported layout of the UNet computes the trained UNet's function."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from training.export import export_onnx
from training.export_unet import ExportUNet, dense_map, is_flat
from training.unet import UNet, UNetConfig

CONFIGS = {
    "paper": UNetConfig.paper(),  # 4x4 (4-D) -> 2x2 -> 1x1 (flat)
    "tiny": UNetConfig.tiny(),
    "latent8_depth2_res2": UNetConfig(latent_size=8, transformer_depth=2, num_res_blocks=2),
    "all_flat": UNetConfig(latent_size=2, channel_mult=(1, 2)),  # conv_in / conv_out as Gemms too
    "latent6": UNetConfig(latent_size=6, channel_mult=(1, 2)),  # 6x6 (4-D) <-> 3x3 (flat)
    "no_downsampling": UNetConfig(channel_mult=(1,)),
    "two_latent_channels": UNetConfig(latent_channels=2, context_dim=48),
}


def random_unet(cfg: UNetConfig, seed: int = 0) -> UNet:
    """Every parameter random (the zero-initialised output layers of a fresh UNet would hide errors)."""
    torch.manual_seed(seed)
    unet = UNet(cfg).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(0.0, 0.2)
    return unet


def inputs(cfg: UNetConfig, batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, torch.randn(batch, cfg.context_dim, generator=g)


@pytest.mark.parametrize("name", CONFIGS)
def test_same_function_as_the_unet(name):
    cfg = CONFIGS[name]
    unet = random_unet(cfg)
    exported = ExportUNet(unet)
    for batch in (1, 3):
        x, t, ctx = inputs(cfg, batch)
        with torch.no_grad():
            ref, got = unet(x, t, ctx), exported(x, t, ctx)
        assert ref.abs().max() > 0.1  # a real signal, not two zeros
        torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-4)


def test_dense_map_is_the_conv():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    W, b = dense_map(conv, (3, 2, 2))
    assert W.shape == (5 * 4, 3 * 4)
    x = torch.randn(4, 3, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(x.flatten(1) @ W.T + b, conv(x).flatten(1), atol=1e-6, rtol=1e-5)
        up = dense_map(lambda z: conv(F.interpolate(z, scale_factor=2.0)), (3, 1, 1))
        torch.testing.assert_close(
            x[:, :, :1, :1].flatten(1) @ up[0].T + up[1],
            conv(F.interpolate(x[:, :, :1, :1], scale_factor=2.0)).flatten(1),
        )


def test_flat_levels_are_the_small_maps():
    assert [s for s in (1, 2, 3, 4, 8) if is_flat(s)] == [1, 2, 3]


def _ort_nodes(path, batch: int) -> int:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_free_dimension_override_by_name("batch", batch)
    so.optimized_model_filepath = str(path) + ".opt.onnx"
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return len(onnx.load(so.optimized_model_filepath).graph.node)


def test_onnx_graph_matches_and_is_smaller(tmp_path):
    """The point of the layout: fewer ops for ONNX Runtime to dispatch per denoiser call (the paper
    config at batch 1: ~720 -> ~500 after ORT's own optimisations), same outputs."""
    cfg = CONFIGS["paper"]
    unet = random_unet(cfg)
    x, t, ctx = inputs(cfg, 2)
    names, out = ["latent", "timestep", "context"], ["noise"]
    export_onnx(unet, (x, t, ctx), tmp_path / "plain.onnx", names, out)
    export_onnx(ExportUNet(unet), (x, t, ctx), tmp_path / "layout.onnx", names, out)
    x, t, ctx = inputs(cfg, 5, seed=2)
    with torch.no_grad():
        ref = unet(x, t, ctx).numpy()
    sess = ort.InferenceSession(str(tmp_path / "layout.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"latent": x.numpy(), "timestep": t.numpy(), "context": ctx.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4)
    plain, layout = _ort_nodes(tmp_path / "plain.onnx", 1), _ort_nodes(tmp_path / "layout.onnx", 1)
    assert layout < 0.8 * plain, (layout, plain)
