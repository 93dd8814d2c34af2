"""Put a distilled one-step student (training.distill) into the model folder it was distilled from.

    python -m training.export_student --student runs/one_step/checkpoint.safetensors --model models/default

Writes `one_step.onnx` (context [B, K] -> scaled latent [B, C, h, w]; the student at x = 0, t = T - 1
with the constants folded in, training.student.OneStep), checks it against the torch student in ONNX
Runtime (max abs difference, fails above --tol), and makes `sampler.name` "one_step" with a `one_step`
block (method, budget, the val metrics of training.distill, the commands). The folder's DDIM sampler
settings stay: they are what the student replaces, and what every other call runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from tinyldm_ros.model_folder import OneStepInfo, load_model_info, save_model_info, validate_model_folder
from training.cli import run_cli
from training.distill_checkpoint import load_student
from training.errors import UserError
from training.export import export_onnx
from training.student import OneStep, one_step


def export_student(
    student_ckpt: Path, model: Path, tol: float = 1e-4, command: str = "", int8_decoder: bool = False
) -> dict:
    import onnxruntime as ort

    info = load_model_info(model)
    if info.sampler.temperature != 0.0 or info.sampler.eta != 0.0:
        raise UserError(f"{model}: the default sampler is not deterministic; nothing to replace")
    student, cfg, meta = load_student(student_ckpt)
    graph = OneStep(student).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one_step.onnx"
        export_onnx(graph, (torch.zeros(2, info.context.size),), path, ["context"], ["latent"])
        rng = np.random.default_rng(0)
        worst = {}
        for b in (1, 5):
            ctx = rng.standard_normal((b, info.context.size)).astype(np.float32)
            got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
                None, {"context": ctx}
            )[0]
            with torch.no_grad():
                want = one_step(student, torch.from_numpy(ctx)).numpy()
            worst[f"one_step/random_b{b}"] = float(np.abs(got - want).max())
        if max(worst.values()) > tol:
            raise UserError(
                f"one_step.onnx differs from the torch student by {max(worst.values()):.2e} > {tol}"
            )
        (model / "one_step.onnx").write_bytes(path.read_bytes())
    decoder = ""
    if int8_decoder:
        from training.distill_data import Pairs
        from training.quantize_decoder import quantize_decoder

        val = Pairs.load(student_ckpt.parent / "pairs_val.npz")
        latents = (val.teacher / np.float32(info.latent_scale)).astype(np.float32)
        decoder = "decoder_int8.onnx"
        psnr = quantize_decoder(model, info, latents, val.colour.astype(np.float32), model / decoder)
        worst["decoder_int8/psnr_vs_float_db"] = float(psnr)
        if psnr < 35.0:
            raise UserError(f"the int8 decoder's views are {psnr:.1f} dB from the float decoder's (< 35 dB)")
    elif info.one_step is not None and info.one_step.decoder:
        # A re-export without --int8-decoder must not leave the last student's decoder in use.
        (model / info.one_step.decoder).unlink(missing_ok=True)
    metrics_file = student_ckpt.parent / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    info.sampler.name = "one_step"
    info.one_step = OneStepInfo(
        file="one_step.onnx",
        decoder=decoder,
        method=cfg.train.method,
        iterations=int(meta["step"]),
        student_parameters=sum(p.numel() for p in student.parameters()),
        wall_time_s=float(meta["wall_time_s"]),
        command=command,
        metrics={k: metrics[k] for k in ("val",) if k in metrics},
        verification=worst,
    )
    save_model_info(info, model)
    validate_model_folder(model)
    write_card_section(model, info)
    return worst


CARD_MARK = "## One-step sampler"


def write_card_section(model: Path, info) -> None:
    """The model card's section on the student (replaced on re-export)."""
    card = model / "README.md"
    text = card.read_text() if card.is_file() else ""
    text = text.split(CARD_MARK)[0].rstrip() + "\n\n"
    o, s = info.one_step, info.sampler
    val = o.metrics.get("val", {})
    lines = [
        CARD_MARK,
        "",
        f"`{o.file}`: a {o.student_parameters:,}-parameter MLP distilled ({o.method}, "
        f"{o.iterations:,} updates) from this folder's DDIM-{s.steps} at guidance {s.guidance:g}, "
        "temperature 0. The engine runs it for "
        "calls at those default settings (one network call instead of "
        f"{s.steps}); any other steps, guidance, temperature or eta, or `sampler='ddim'`, runs DDIM.",
    ]
    if val:
        lines += [
            "",
            f"Held-out val pairs ({val['pairs']}): student vs teacher views PSNR "
            f"{val['student_vs_teacher']['psnr']:.2f} dB; against the true views student "
            f"{val['student_vs_truth']['psnr']:.2f} dB / CIEDE2000 "
            f"{val['student_vs_truth']['ciede2000']:.2f}, teacher {val['teacher_vs_truth']['psnr']:.2f} dB / "
            f"{val['teacher_vs_truth']['ciede2000']:.2f}.",
        ]
    lines += ["", f"Made by: `{o.command}`", ""]
    card.write_text(text + "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="training.export_student", description=__doc__.split("\n\n")[0])
    p.add_argument("--student", type=Path, required=True, help="training.distill checkpoint")
    p.add_argument("--model", type=Path, required=True, help="the model folder it was distilled from")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument(
        "--int8-decoder",
        action="store_true",
        help="also an int8 decoder for the one-step path (decoder_int8.onnx)",
    )
    p.add_argument("--distill-command", default="", help="the training.distill command, for the record")
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    if "--distill-command" in given:  # recorded on its own, not inside the export command
        k = given.index("--distill-command")
        del given[k : k + 2]
    command = " ; ".join(
        filter(None, [args.distill_command, "python -m training.export_student " + shlex.join(given)])
    )
    worst = export_student(args.student, args.model, args.tol, command, args.int8_decoder)
    print(f"one_step.onnx -> {args.model}: {worst}")


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
