"""Export trained checkpoints to a model folder (ONNX graphs + model.json + model card), verified.

    python -m training.export --vae runs/paper/vae/checkpoint.safetensors \\
        --unet runs/paper/unet/checkpoint.safetensors \\
        --out models/default [--data data/cars/test] [--eval runs/paper/eval]

Each graph is checked against PyTorch on random inputs and, with --data, on real images, poses and
latents, and the export fails above --tol (1e-4); the runtime engine is then held against the torch
pipeline on identical noise (training.export_verify). Only when the folder loads through the runtime
loader is it moved into place, with its model card (training.export_card).

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
    save_model_info,
    validate_model_folder,
)
from tinyldm_ros.preprocess import uint8_to_model
from training.checkpoint import checkpoint_extra
from training.config import load_config, to_dict
from training.errors import UserError
from training.eval_report import EVAL_FILES
from training.export_card import metrics_from_eval, model_card
from training.export_unet import ExportUNet
from training.export_verify import (
    PIPELINE_TOLERANCE,
    TOLERANCE,
    ExportError,
    module_outputs,
    random_inputs,
    verification_inputs,
    verify_graph,
    verify_pipeline,
)
from training.pipeline import load_models
from training.srn_dataset import read_views
from training.vae import COLOUR_VALUES, Decode, EncodeMean

OPSET = 17


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
        outs = module_outputs(module, args)
    model = onnx.load(str(path))
    for graph_out, out in zip(model.graph.output, outs, strict=True):
        for dim, size in zip(graph_out.type.tensor_type.shape.dim[1:], out.shape[1:], strict=True):
            dim.Clear()
            dim.dim_value = size
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


@dataclass
class ExportReport:
    out_dir: Path
    info: ModelInfo
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        rows = [f"  {k:<34} {v:.3g}" for k, v in self.max_abs_diff.items()]
        return "max |onnx - torch|:\n" + "\n".join(rows)


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
        ex = random_inputs(info, 2, torch.Generator().manual_seed(0))
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


def load_real_views(data_dir: str | Path, image_size: int, limit: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Up to `limit` views of the first object in an SRN-layout folder (training.srn_dataset): images
    float32 (B,3,S,S) in [-1,1] and c2w poses (B,4,4), for the checks on real data."""
    data_dir = Path(data_dir)
    rgbs = sorted(data_dir.rglob("rgb/*.png"))
    if not rgbs:
        raise ExportError(f"--data {data_dir}: no rgb/*.png views found (expected the SRN layout)")
    images, c2w = read_views(rgbs[0].parent.parent, image_size, max_views=limit)
    return uint8_to_model(images), c2w.astype(np.float32)


# ------------------------------------------------------------------------------------------- CLI


def _load_modules(args: argparse.Namespace):
    """Checkpoints (training.pipeline) -> (vae, unet, schedule, latent_scale, provenance, sampler)."""
    # a config name (paper, tiny) or a YAML path; default: the one stored in the UNet checkpoint
    config = load_config(args.config) if args.config else None
    models, vck, uck = load_models(args.vae, args.unet, config=config, latent_scale=args.latent_scale)
    cfg = config or uck.config
    extra = {**checkpoint_extra(vck), **checkpoint_extra(uck)}
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
        notes=args.notes.read_text().strip() if args.notes else "",
    )
    sampler = SamplerDefaults(
        steps=args.steps if args.steps is not None else int(cfg.sample.steps),
        guidance=args.guidance if args.guidance is not None else float(cfg.sample.guidance_scale),
        temperature=args.temperature if args.temperature is not None else float(cfg.sample.temperature),
        spacing=cfg.sample.spacing,
    )
    return models.vae, models.unet, models.schedule, models.latent_scale, prov, sampler


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
    ap.add_argument(
        "--steps", type=int, help="default DDIM steps of the runtime (default: the config's sample.steps)"
    )
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
    ap.add_argument(
        "--notes",
        type=Path,
        help="markdown file the model card carries verbatim (data sources and licences, training recipe)",
    )
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
    except (
        ExportError,
        UserError,
        ModelFolderError,
        FileNotFoundError,
        ValueError,
        json.JSONDecodeError,
    ) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 2
    print(f"exported {report.out_dir} (format version {FORMAT_VERSION}); checked with the runtime loader")
    return 0


if __name__ == "__main__":
    sys.exit(main())
