"""A shipped model folder's VAE weights back as a PyTorch state dict, read from its encoder.onnx and
decoder.onnx, so a fine-tune can start from a shipped model when its training run is not at hand.

torch.onnx keeps parameter names for convs and linears; GroupNorm's affine becomes anonymous Mul / Add
constants, found here by the node names the exporter gives them (/encoder/.../norm1/Mul).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.errors import UserError

_FILES = ("encoder.onnx", "decoder.onnx")


def _weights(path: Path) -> dict[str, np.ndarray]:
    """Parameter name (as in VAE.state_dict) -> value, for every weight the graph holds."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out = {k.removeprefix("vae."): v for k, v in inits.items() if k.startswith("vae.")}
    for node in graph.node:
        if node.op_type not in ("Mul", "Add") or "/norm" not in node.name:
            continue
        const = [i for i in node.input if i in inits and not i.startswith("vae.")]
        if len(const) != 1:
            continue
        # "/encoder/down/down.0/norm1/Mul": a ModuleList child repeats its parent's name
        scope = node.name.strip("/").split("/")[:-1]
        dotted = ".".join(part.rsplit(".", 1)[-1] for part in scope)
        kind = "weight" if node.op_type == "Mul" else "bias"
        out[f"{dotted}.{kind}"] = inits[const[0]].reshape(-1)
    return out


def vae_state_from_model_folder(folder: str | Path, vae: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of `vae` filled from the folder's exported encoder and decoder; every parameter
    and buffer must be found with its shape, else UserError names what is missing."""
    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise UserError(f"init_from: {folder} is not a model folder (no model.json)")
    found: dict[str, np.ndarray] = {}
    for file in _FILES:
        found.update(_weights(folder / file))
    state = vae.state_dict()
    missing = [k for k in state if k not in found]
    wrong = [k for k in state if k in found and tuple(found[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        config = json.loads((folder / "model.json").read_text()).get("provenance", {}).get("vae_config")
        raise UserError(
            f"init_from: {folder}'s VAE does not fit this config (missing {missing[:4]}, shape differs "
            f"{wrong[:4]}); its VAE config is {config}"
        )
    return {k: torch.from_numpy(np.array(found[k], dtype=np.float32)) for k in state}
