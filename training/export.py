"""Export trained checkpoints to a model folder (ONNX graphs + model.json + model card), verified.

    python -m training.export --vae runs/paper/vae/checkpoint.safetensors \\
        --unet runs/paper/unet/checkpoint.safetensors \\
        --out models/default [--data data/cars/test] [--eval runs/paper/eval]

Each graph is checked against PyTorch on random inputs (batch 1 and a larger batch, so the dynamic
batch axis is exercised) and, with --data, on real images, poses and latents; the largest absolute
difference is reported and the export fails above --tol (1e-4). The whole pipeline (encode, DDIM,
decode) is then run by the runtime engine and compared with the torch sampler on identical noise.
Only when the folder loads through the runtime loader is it moved into place.

`export_model_folder()` does the same from in-memory modules (tests, the tiny fixture, benchmarks).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import platform
import shlex
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyldm_ros import schedule as S
from tinyldm_ros.model_folder import (
    FORMAT_VERSION,
    ONNX_FILES,
    ContextLayout,
    ModelFolderError,
    ModelInfo,
    Provenance,
    SamplerDefaults,
    export_command,
    save_model_info,
    validate_model_folder,
)
from tinyldm_ros.preprocess import postprocess, preprocess
from training.export_unet import ExportUNet
from training.vae import COLOUR_VALUES, Decode, EncodeMean

OPSET = 17
TOLERANCE = 1e-4
PIPELINE_TOLERANCE = 1e-3  # whole DDIM loop: float32 rounding compounds over the steps


class ExportError(RuntimeError):
    """Export or verification failed (the message names the graph and the difference)."""


# ------------------------------------------------------------------------------------------ graphs


def _outputs(module: nn.Module, args: tuple) -> tuple[torch.Tensor, ...]:
    """The module's outputs as a tuple, one per ONNX graph output (a graph may have one or several)."""
    outs = module(*args)
    return outs if isinstance(outs, tuple) else (outs,)


def export_onnx(
    module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str]
) -> None:
    """TorchScript-based exporter (the dynamo one needs onnxscript), batch axis dynamic everywhere.

    The exporter leaves some output dims symbolic (e.g. the channel dim after the VAE's chunk); they
    are pinned to the traced values so the graph states the contract's static shapes."""
    dynamic = {name: {0: "batch"} for name in input_names + output_names}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript exporter
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    import onnx

    with torch.no_grad():
        outs = _outputs(module, args)
    model = onnx.load(str(path))
    for graph_out, out in zip(model.graph.output, outs, strict=True):
        for dim, size in zip(graph_out.type.tensor_type.shape.dim[1:], out.shape[1:], strict=True):
            dim.Clear()
            dim.dim_value = size
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


# ------------------------------------------------------------------------------------ verification


@dataclass
class ExportReport:
    out_dir: Path
    info: ModelInfo
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        rows = [f"  {k:<34} {v:.3g}" for k, v in self.max_abs_diff.items()]
        return "max |onnx - torch|:\n" + "\n".join(rows)


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _compare(name: str, torch_out: torch.Tensor, ort_out: np.ndarray, tol: float, diffs: dict) -> None:
    ref = torch_out.detach().cpu().numpy()
    if ref.shape != ort_out.shape:
        raise ExportError(f"{name}: ONNX output shape {ort_out.shape} != PyTorch {ref.shape}")
    d = float(np.max(np.abs(ref - ort_out))) if ref.size else 0.0
    diffs[name] = d
    if not d <= tol:  # also catches NaN
        raise ExportError(f"{name}: max abs difference ONNX vs PyTorch {d:.3g} > tolerance {tol:g}")


def random_rigid(n: int, gen: torch.Generator, radius: float = 1.3) -> np.ndarray:
    """n random rigid transforms (rotation via QR, translation of length ~radius), float32."""
    A = torch.randn(n, 3, 3, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[:, None, :]
    Q[torch.det(Q) < 0, :, 0] *= -1
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3] = Q
    T[:, :3, 3] = torch.randn(n, 3, generator=gen, dtype=torch.float64) * radius
    return T.numpy().astype(np.float32)


def _inputs_random(info: ModelInfo, batch: int, gen: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    C, h, w = info.latent_shape
    S_ = info.image_size
    T = info.num_train_timesteps
    poses = torch.from_numpy(random_rigid(batch, gen)).reshape(batch, 16)
    return {
        "encoder": {"image": torch.rand(batch, 3, S_, S_, generator=gen) * 2 - 1},
        "denoiser": {
            "latent": torch.randn(batch, C, h, w, generator=gen),
            "timestep": torch.randint(0, T, (batch,), generator=gen, dtype=torch.int64),
            "context": torch.cat([torch.randn(batch, info.latent_size, generator=gen), poses], dim=1),
        },
        "decoder": {
            "latent": torch.randn(batch, C, h, w, generator=gen) / info.latent_scale,
            **_colour_input(info, batch, gen),
        },
    }


def _colour_input(info: ModelInfo, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A colour-conditioned decoder's second input: plausible summaries (means in [-1, 1], stds in [0, 1])."""
    if not info.colour_values:
        return {}
    half = info.colour_values // 2
    mean = torch.rand(batch, half, generator=gen) * 2 - 1
    std = torch.rand(batch, info.colour_values - half, generator=gen)
    return {"colour": torch.cat([mean, std], dim=1)}


@torch.no_grad()
def _inputs_real(
    info: ModelInfo, vae: nn.Module, images: np.ndarray, poses: np.ndarray | None, gen: torch.Generator
) -> dict[str, dict[str, torch.Tensor]]:
    """Real images; the denoiser sees noisy real latents with contexts built from real latents/poses."""
    x = torch.from_numpy(images)
    B = x.shape[0]
    mean = vae.encode(x)[0]
    z = mean * info.latent_scale
    if poses is not None:
        rel = np.linalg.inv(poses[0].astype(np.float64)) @ poses.astype(np.float64)
    else:
        rel = random_rigid(B, gen).astype(np.float64)
    rel_t = torch.from_numpy(rel.astype(np.float32)).reshape(B, 16)
    T = info.num_train_timesteps
    t = torch.linspace(0, T - 1, B).round().to(torch.int64)
    sched = S.NoiseSchedule(S.ScheduleConfig.from_dict(info.schedule))
    acp = torch.from_numpy(sched.alphas_cumprod[t.numpy()]).float().reshape(B, 1, 1, 1)
    noisy = S.add_noise(z, torch.randn(z.shape, generator=gen), acp)
    ctx = torch.cat([z[:1].reshape(1, -1).expand(B, -1), rel_t], dim=1)
    return {
        "encoder": {"image": x},
        "denoiser": {"latent": noisy, "timestep": t, "context": ctx},
        "decoder": {"latent": mean, **({"colour": vae.colour(x)} if info.colour_values else {})},
    }


def verification_inputs(
    info: ModelInfo,
    vae: nn.Module,
    real_images: np.ndarray | None,
    real_poses: np.ndarray | None,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """Input sets per graph: random at batch 1 and 5 (the dynamic axis), and real data if given."""
    gen = torch.Generator().manual_seed(seed)
    sets = {"random_b1": _inputs_random(info, 1, gen), "random_b5": _inputs_random(info, 5, gen)}
    if real_images is not None and len(real_images):
        sets["real"] = _inputs_real(info, vae, real_images, real_poses, gen)
    return sets


@torch.no_grad()
def verify_graph(
    path: Path, role: str, module: nn.Module, sets: dict[str, dict[str, dict[str, torch.Tensor]]], tol: float
) -> dict[str, float]:
    """Max abs difference of one ONNX graph vs its PyTorch module on every input set (fails above tol)."""
    sess = _ort_session(path)
    diffs: dict[str, float] = {}
    for set_name, inputs in sets.items():
        feeds = inputs[role]
        ort_outs = sess.run(None, {k: v.numpy() for k, v in feeds.items()})
        torch_outs = _outputs(module, tuple(feeds.values()))
        names = [o.name for o in sess.get_outputs()]
        for name, ref, got in zip(names, torch_outs, ort_outs, strict=True):
            suffix = "" if len(names) == 1 else f"/{name}"
            _compare(f"{role}/{set_name}{suffix}", ref, got, tol, diffs)
    return diffs


@torch.no_grad()
def verify_pipeline(
    folder: Path, vae: nn.Module, unet: nn.Module, info: ModelInfo, tol: float, images: np.ndarray | None
) -> dict[str, float]:
    """The runtime engine vs the torch sampler (training.sampler) on the same image, poses and noise."""
    from tinyldm_ros.engine import Engine
    from training.sampler import DDIMScheduler, sample

    engine = Engine(folder, provider="cpu", warmup=False)
    gen = torch.Generator().manual_seed(1)
    if images is not None and len(images):
        image01 = (images[0].transpose(1, 2, 0) + 1) / 2
    else:
        image01 = torch.rand(info.image_size, info.image_size, 3, generator=gen).numpy()
    image = np.round(image01 * 255).astype(np.uint8)
    poses = random_rigid(3, gen)
    steps, guidance = info.sampler.steps, info.sampler.guidance
    # temperature 1 whatever the model's default: random starting noise exercises the denoiser more
    x_T, _ = engine.draw_noise(len(poses), steps, seed=0, temperature=1.0)
    cond = engine.prepare(image)
    sched = DDIMScheduler(S.ScheduleConfig.from_dict(info.schedule), spacing=info.sampler.spacing)
    diffs: dict[str, float] = {}
    for g in sorted({guidance, 1.0, 2.0}):
        x_cond = torch.from_numpy(cond)
        z_cond = vae.encode(x_cond)[0] * info.latent_scale
        ctx = torch.cat(
            [z_cond.reshape(1, -1).expand(len(poses), -1), torch.from_numpy(poses).reshape(-1, 16)], 1
        )
        z0 = sample(unet, ctx, sched, steps, guidance=g, x_T=torch.from_numpy(x_T))
        ref = vae.decode(z0 / info.latent_scale, vae.colour(x_cond))
        z_e, colour_e = engine.encode_with_colour(cond)
        got = engine.decode(engine.denoise(engine.make_context(z_e, poses), x_T, steps, g), colour_e)
        _compare(f"pipeline/ddim{steps}_guidance{g:g}", ref, got, tol, diffs)
        views = engine.synthesize(image, poses, steps=steps, seed=0, guidance=g, temperature=1.0)
        if not np.array_equal(views, postprocess(got)):
            raise ExportError("engine.synthesize() differs from its own pieces (encode, denoise, decode)")
    return diffs


# ------------------------------------------------------------------------------------- model card


def model_card(info: ModelInfo) -> str:
    p, sm = info.provenance, info.sampler
    C, h, w = info.latent_shape
    S_ = info.image_size
    K = info.colour_values
    colour = f", colour float32 [B,{K}] (object RGB mean, std)" if K else ""
    colour_in = f", colour float32 [B,{K}] of the conditioning image" if K else ""
    lines = [
        f"# {info.name}",
        "",
        "Novel view synthesis from a single image with a tiny latent diffusion model (tinyldm_ros).",
        "This card is generated by `training.export` from `model.json`; edit that, not this.",
        "",
    ]
    if p.random_weights:
        lines += ["**Random weights: this model is untrained** (a test/benchmark fixture).", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "from tinyldm_ros.engine import Engine",
        "",
        f'engine = Engine("models/{info.name}")  # provider="auto" | "cpu" | "cuda" | "tensorrt"',
        "views = engine.synthesize(image_hwc_uint8, relative_poses)  # (N, 4, 4) -> (N, S, S, 3) uint8",
        "```",
        "",
        "## Interface",
        "",
        "| file | inputs | outputs |",
        "| --- | --- | --- |",
        f"| encoder.onnx | image float32 [B,3,{S_},{S_}] in [-1,1] | mean float32 [B,{C},{h},{w}]{colour} |",
        f"| denoiser.onnx | latent float32 [B,{C},{h},{w}], timestep int64 [B], "
        f"context float32 [B,{info.context.size}] | noise float32 [B,{C},{h},{w}] |",
        f"| decoder.onnx | latent float32 [B,{C},{h},{w}] (unscaled){colour_in} "
        f"| image float32 [B,3,{S_},{S_}] |",
        "",
        "## Facts",
        "",
        "| | |",
        "| --- | --- |",
        f"| format version | {info.format_version} |",
        f"| image size | {S_}x{S_} RGB |",
        f"| latent | {C}x{h}x{w}, z = mean * latent_scale, latent_scale = {info.latent_scale:.6g} |",
        f"| context | {info.context.size} values: cond latent {info.context.cond_latent}, "
        f"relative pose {info.context.rel_pose} ({info.context.pose_order}); null context = zeros |",
        f"| noise schedule | {json.dumps(info.schedule)} |",
        f"| prediction type | {info.prediction_type} |",
        f"| default sampler | {sm.name.upper()}-{sm.steps}, guidance {sm.guidance:g}, "
        f"eta {sm.eta:g}, temperature {sm.temperature:g}, {sm.spacing} spacing |",
        f"| pose convention | {info.pose_convention} (x right, y down, z forward; 4x4 camera-to-world) |",
        f"| training radius | {info.training_radius:g} (object distance of the training cameras) |",
        "",
        "## Provenance",
        "",
        "| | |",
        "| --- | --- |",
        f"| dataset | {p.dataset or 'n/a'} |",
        f"| VAE iterations | {p.vae_iterations if p.vae_iterations is not None else 'n/a'} |",
        f"| UNet iterations | {p.unet_iterations if p.unet_iterations is not None else 'n/a'} |",
        f"| training wall time | {f'{p.wall_time_s / 3600:.2f} h' if p.wall_time_s else 'n/a'} |",
        f"| machine | {p.machine or 'n/a'} |",
        f"| parameters | VAE {p.vae_parameters:,}, UNet {p.unet_parameters:,} |",
        f"| VAE checkpoint | {p.vae_checkpoint or 'in-memory'} |",
        f"| UNet checkpoint | {p.unet_checkpoint or 'in-memory'} |",
        f"| exported | {p.exported_at} by {p.exporter} |",
        "",
        "Re-export:",
        "",
        "```",
        export_command(p),
        "```",
        "",
        "## Metrics",
        "",
    ]
    if info.metrics:
        lines += _metrics_card(info.metrics)
    else:
        lines += ["No evaluation recorded."]
    lines += ["", "## Export verification (max abs difference ONNX Runtime vs PyTorch)", ""]
    lines += ["| check | max abs diff |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3g} |" for k, v in info.verification.items()]
    return "\n".join(lines) + "\n"


EVAL_FILES = ("eval.json", "eval.md", "azimuth.png", "sweep.png")  # training.evaluate's report


def metrics_from_eval(summary: dict[str, Any]) -> dict[str, Any]:
    """model.json's metrics from a training.evaluate summary: the means per method and the far-view
    check; the full report (per-azimuth tables, spreads) travels beside it as eval.json / eval.md."""
    if summary.get("format") != "tinyldm-eval/1":
        raise ValueError(f"not a training.evaluate summary (format {summary.get('format')!r})")
    far = summary.get("far", {})
    metric_names = ("psnr", "ssim", "ciede2000")
    return {
        "report": "eval.md",
        "split": summary["meta"].get("split"),
        "objects": summary["num_objects"],
        "pairs": summary["num_pairs"],
        "guidance": summary["config"]["guidance"],
        "temperature": summary["config"].get("temperature", 1.0),
        "methods": {
            method: {name: round(m[name]["mean"], 4) for name in metric_names}
            for method, m in summary["methods"].items()
        },
        "far": {
            "min_offset_deg": far.get("min_offset_deg"),
            "pairs": far.get("pairs"),
            "psnr": {k: round(v["psnr"]["mean"], 4) for k, v in far.get("methods", {}).items()},
            "psnr_gain_over_copy_input": {
                k: round(v["psnr_gain_over_copy_input"]["mean"], 4)
                for k, v in far.get("methods", {}).items()
                if "psnr_gain_over_copy_input" in v
            },
        },
    }


def _metrics_card(metrics: dict[str, Any]) -> list[str]:
    if "methods" not in metrics:  # free-form metrics (--metrics)
        return ["| metric | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in metrics.items())]
    far = metrics.get("far", {})
    lines = [
        f"Held-out {metrics.get('split')} objects: {metrics.get('objects')}, {metrics.get('pairs')} view "
        f"pairs, guidance {metrics.get('guidance')}, temperature {metrics.get('temperature', 1.0)}; full "
        f"report: [{metrics.get('report')}]"
        f"({metrics.get('report')}). Far: targets at least {far.get('min_offset_deg')} deg of azimuth "
        "from the input; gain: PSNR minus copy-input's on the same pairs.",
        "",
        "| method | PSNR (dB) | SSIM | CIEDE2000 | far PSNR | far gain (dB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, m in metrics["methods"].items():
        far_psnr = far.get("psnr", {}).get(method)
        gain = far.get("psnr_gain_over_copy_input", {}).get(method)
        lines.append(
            f"| {method} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['ciede2000']:.2f} | "
            f"{'–' if far_psnr is None else f'{far_psnr:.2f}'} | {'–' if gain is None else f'{gain:+.2f}'} |"
        )
    return lines


# ------------------------------------------------------------------------------------------ export


def export_model_folder(
    vae: nn.Module,
    unet: nn.Module,
    out_dir: str | Path,
    *,
    schedule: S.ScheduleConfig,
    latent_scale: float,
    name: str | None = None,
    training_radius: float = 1.3,
    sampler: SamplerDefaults | None = None,
    provenance: Provenance | None = None,
    metrics: dict[str, Any] | None = None,
    real_images: np.ndarray | None = None,
    real_poses: np.ndarray | None = None,
    tol: float = TOLERANCE,
    log=print,
    extra_files: tuple[Path, ...] = (),
) -> ExportReport:
    """Export in-memory VAE + UNet to a verified model folder at `out_dir` (replaced on success);
    `extra_files` (e.g. the evaluation report) are copied into it."""
    out_dir = Path(out_dir)
    vae, unet = vae.eval().cpu().float(), unet.eval().cpu().float()
    vcfg, ucfg = vae.cfg, unet.cfg
    C, s = vcfg.latent_channels, vcfg.latent_size
    prov = provenance or Provenance()
    prov.vae_config = prov.vae_config or _plain(asdict(vcfg))
    prov.unet_config = prov.unet_config or _plain(asdict(ucfg))
    prov.vae_parameters = sum(p.numel() for p in vae.parameters())
    prov.unet_parameters = sum(p.numel() for p in unet.parameters())
    prov.exported_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    prov.exporter = f"tinyldm_ros training.export (torch {torch.__version__}, opset {OPSET})"
    if not prov.machine:
        prov.machine = f"{platform.node()} ({platform.machine()}, {platform.system()})"
    latent_size = C * s * s
    info = ModelInfo(
        name=name or out_dir.name,
        image_size=vcfg.image_size,
        latent_shape=[C, s, s],
        colour_values=COLOUR_VALUES if vcfg.colour_cond else 0,
        latent_scale=float(latent_scale),
        schedule=schedule.to_dict(),
        context=ContextLayout(
            size=latent_size + 16, cond_latent=[0, latent_size], rel_pose=[latent_size, latent_size + 16]
        ),
        sampler=sampler or SamplerDefaults(),
        training_radius=float(training_radius),
        provenance=prov,
        metrics=metrics or {},
    )
    info.validate("model.json (to export)")
    if ucfg.context_dim != info.context.size:
        raise ExportError(
            f"UNet context_dim {ucfg.context_dim} != {info.context.size} (latent + 16 pose values)"
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would survive the rename
    try:
        modules = {
            "encoder": EncodeMean(vae),
            "denoiser": unet,
            "decoder": Decode(vae),
        }
        # what is exported for each role: the denoiser in its export layout (training.export_unet),
        # verified against the unmodified UNet like the others
        exported = {**modules, "denoiser": ExportUNet(unet)}
        ex = _inputs_random(info, 2, torch.Generator().manual_seed(0))
        sets = verification_inputs(info, vae, real_images, real_poses)
        info.verification = {}
        for role, module in modules.items():  # export and verify one graph at a time: fail early
            names = list(ex[role])
            out_names = [name for name, _, _ in info.expected_io()[role][1]]
            log(f"export: {role} -> {ONNX_FILES[role]}")
            export_onnx(exported[role], tuple(ex[role].values()), tmp / ONNX_FILES[role], names, out_names)
            info.verification.update(verify_graph(tmp / ONNX_FILES[role], role, module, sets, tol))
        # model.json first (the pipeline check runs the runtime on this folder), then the diffs into it
        save_model_info(info, tmp)
        info.verification.update(verify_pipeline(tmp, vae, unet, info, PIPELINE_TOLERANCE, real_images))
        save_model_info(info, tmp)
        for f in extra_files:
            shutil.copy2(f, tmp / Path(f).name)
        (tmp / "README.md").write_text(model_card(info))
        info = validate_model_folder(tmp)  # the runtime's own loader, exactly as the robot will
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report = ExportReport(out_dir, info, info.verification)
    log(report.table())
    return report


def _replace_dir(src: Path, dst: Path) -> None:
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _plain(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_plain(v) for v in d]
    return d


# --------------------------------------------------------------------------------------- real data


def load_real_views(
    data_dir: str | Path, image_size: int, limit: int = 8
) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to `limit` views of one object from an SRN-layout folder (`<instance>/rgb/*.png`, `pose/*.txt`):
    images float32 (B,3,S,S) in [-1,1] via tinyldm_ros.preprocess, c2w poses (B,4,4) if all present."""
    from PIL import Image

    data_dir = Path(data_dir)
    rgbs = sorted(data_dir.rglob("rgb/*.png"))
    if not rgbs:
        raise ExportError(f"--data {data_dir}: no rgb/*.png views found (expected the SRN layout)")
    instance = rgbs[0].parent.parent
    rgbs = [p for p in rgbs if p.parent.parent == instance][:limit]
    images, poses = [], []
    for p in rgbs:
        with Image.open(p) as im:
            images.append(preprocess(np.asarray(im), image_size))
        pose_file = instance / "pose" / (p.stem + ".txt")
        if pose_file.is_file():
            poses.append(np.loadtxt(pose_file, dtype=np.float64).reshape(4, 4))
    pose_arr = np.stack(poses).astype(np.float32) if len(poses) == len(images) else None
    return np.stack(images).astype(np.float32), pose_arr


# ------------------------------------------------------------------------------------------- CLI


def _load_modules(args: argparse.Namespace):
    """Checkpoints (training.checkpoint) -> (vae, unet, schedule, latent_scale, provenance, sampler)."""
    from training.checkpoint import checkpoint_extra, load_checkpoint
    from training.unet import UNet
    from training.vae import VAE

    vck = load_checkpoint(args.vae, stage="vae")
    uck = load_checkpoint(args.unet, stage="unet")
    cfg, vae_cfg = uck.config, vck.config.vae
    if args.config:
        from training.config import load_config

        cfg = load_config(args.config)  # a config name (paper, tiny) or a YAML path
        vae_cfg = cfg.vae
    vae, unet = VAE(vae_cfg), UNet(cfg.unet)
    for what, module, ck in (("VAE", vae, vck), ("UNet", unet, uck)):
        try:
            module.load_state_dict(ck.inference_state_dict())
        except RuntimeError as e:
            raise ExportError(f"{ck.path}: weights do not fit the {what} config: {e}") from None
    extra = {**checkpoint_extra(vck), **checkpoint_extra(uck)}
    latent_scale = args.latent_scale if args.latent_scale is not None else extra.get("latent_scale")
    if latent_scale is None:
        raise ExportError(f"{args.unet}: no latent_scale in the checkpoint metadata; pass --latent-scale")
    from training.config import to_dict

    schedule = S.ScheduleConfig.from_dict(to_dict(cfg.diffusion))
    wall = args.wall_time_s
    if wall is None:  # recorded by the trainer in the checkpoints' metadata, when it does
        wall = sum(float(checkpoint_extra(ck).get("wall_time_s", 0.0)) for ck in (vck, uck)) or None
    prov = Provenance(
        training_config=to_dict(cfg),
        dataset=args.dataset or str(cfg.data.root),
        vae_iterations=vck.step,
        unet_iterations=uck.step,
        wall_time_s=wall,
        machine=args.machine or str(extra.get("machine", "")),
        vae_checkpoint=str(args.vae),
        unet_checkpoint=str(args.unet),
    )
    sampler = SamplerDefaults(
        steps=args.steps,
        guidance=args.guidance if args.guidance is not None else float(cfg.sample.guidance_scale),
        temperature=args.temperature if args.temperature is not None else float(cfg.sample.temperature),
        spacing=getattr(cfg.sample, "spacing", "trailing"),
    )
    return vae, unet, schedule, float(latent_scale), prov, sampler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", required=True, help="VAE checkpoint (.safetensors from training)")
    ap.add_argument("--unet", required=True, help="UNet checkpoint (.safetensors from training)")
    ap.add_argument("--out", required=True, help="model folder to write, e.g. models/default")
    ap.add_argument("--config", help="training config YAML (default: the one stored in the UNet checkpoint)")
    ap.add_argument("--data", help="SRN-layout folder for real-input verification (e.g. data/cars/test)")
    ap.add_argument("--name", help="model name in model.json (default: the folder name)")
    ap.add_argument("--latent-scale", type=float, help="override the latent scale stored in the checkpoint")
    ap.add_argument(
        "--training-radius", type=float, default=1.3, help="object distance of the training cameras"
    )
    ap.add_argument("--steps", type=int, default=10, help="default DDIM steps of the runtime")
    ap.add_argument(
        "--guidance", type=float, help="default guidance (default: the config's sample.guidance_scale)"
    )
    ap.add_argument(
        "--temperature",
        type=float,
        help="default scale of the initial noise, in [0, 1] (default: the config's sample.temperature)",
    )
    ap.add_argument(
        "--eval",
        type=Path,
        help="training.evaluate output folder: its summary becomes the metrics, its report "
        f"({', '.join(EVAL_FILES)}) is copied into the model folder",
    )
    ap.add_argument("--metrics", help="JSON file of evaluation metrics to record in model.json (no --eval)")
    ap.add_argument("--dataset", help="data set named in the provenance (default: the config's data.root)")
    ap.add_argument("--wall-time-s", type=float, help="training wall time for the provenance")
    ap.add_argument("--machine", help="training machine for the provenance (e.g. '1x RTX 4090')")
    ap.add_argument("--tol", type=float, default=TOLERANCE, help="max abs difference ONNX vs PyTorch")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny tensors: 1 is fastest)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        vae, unet, schedule, latent_scale, prov, sampler = _load_modules(args)
        prov.export_command = "python -m training.export " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        if args.eval and args.metrics:
            raise ValueError("give --eval or --metrics, not both")
        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
        extra_files: tuple[Path, ...] = ()
        if args.eval:
            extra_files = tuple(args.eval / f for f in EVAL_FILES if (args.eval / f).is_file())
            if args.eval / "eval.json" not in extra_files:
                raise FileNotFoundError(f"{args.eval}: no eval.json (run python -m training.evaluate first)")
            report = json.loads((args.eval / "eval.json").read_text())
            for name in ("guidance", "temperature"):
                evaluated = float(report.get("config", {}).get(name, 1.0))
                default = getattr(sampler, name)
                if evaluated != default:
                    # the card would show another sampler's numbers than the robot gets
                    raise ValueError(
                        f"{args.eval} was evaluated at {name} {evaluated:g} but the model's default "
                        f"{name} is {default:g}: export with --{name} {evaluated:g} or "
                        f"evaluate with --{name} {default:g}"
                    )
            metrics = metrics_from_eval(report)
        images = poses = None
        if args.data:
            images, poses = load_real_views(args.data, vae.cfg.image_size)
        report = export_model_folder(
            vae,
            unet,
            args.out,
            schedule=schedule,
            latent_scale=latent_scale,
            name=args.name,
            training_radius=args.training_radius,
            sampler=sampler,
            provenance=prov,
            metrics=metrics,
            real_images=images,
            real_poses=poses,
            tol=args.tol,
            extra_files=extra_files,
        )
    except (ExportError, ModelFolderError, FileNotFoundError, ValueError, json.JSONDecodeError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 2
    print(f"exported {report.out_dir} (format version {FORMAT_VERSION}); checked with the runtime loader")
    return 0


if __name__ == "__main__":
    sys.exit(main())
