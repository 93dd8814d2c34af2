"""Execution providers: which ONNX Runtime backends a model may run on, and opening its sessions there.

`PROVIDERS` is the one list of names the engine, the node's `provider` parameter and the tools accept.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnxruntime as ort

from tinyldm_ros.model_folder import ModelInfo, open_session

log = logging.getLogger("tinyldm_ros.engine")

PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
EXECUTION_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_EP = EXECUTION_PROVIDERS


class ProviderError(RuntimeError):
    """The requested execution provider (GPU) is not available or not in use."""


def gpu_present() -> bool:
    """Cheap check for an NVIDIA GPU (onnxruntime-gpu lists CUDA as available even without one)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # ORT's own warnings about provider fallbacks are reported by us
    # Trained weights can drive activations into float32 denormals, which x86 handles ~100x slower;
    # flushing them changes results by < 1e-38 (no measurable cost or gain on random weights).
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


def provider_list(provider: str, device_id: int) -> list:
    """ONNX Runtime's provider list (with options) for one of PROVIDERS other than 'auto'."""
    cuda_opts = {
        "device_id": device_id,
        "cudnn_conv_algo_search": "EXHAUSTIVE",  # the shapes never change: search once at load
        "do_copy_in_default_stream": True,
    }
    if provider == "cuda":
        return [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
    if provider == "tensorrt":
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyldm_ros" / "trt"
        cache.mkdir(parents=True, exist_ok=True)
        trt_opts = {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_fp16_enable": False,  # parity with the trained fp32 model first
        }
        return [
            ("TensorrtExecutionProvider", trt_opts),
            ("CUDAExecutionProvider", cuda_opts),
            "CPUExecutionProvider",
        ]
    return ["CPUExecutionProvider"]


def open_sessions(
    model_dir: Path,
    info: ModelInfo,
    model_bytes: dict[str, bytes],
    provider: str,
    intra_op_threads: int,
    device_id: int,
) -> tuple[dict[str, ort.InferenceSession], list]:
    """The model's validated dynamic-batch sessions on `provider` and the provider list they use.
    'auto' takes CUDA when a GPU is visible and falls back to CPU when it fails to load; a GPU asked
    for by name and not in use is a ProviderError."""
    requested = provider
    if provider == "auto":
        provider = "cuda" if (gpu_present() and _EP["cuda"] in ort.get_available_providers()) else "cpu"
    if provider != "cpu":
        if _EP[provider] not in ort.get_available_providers():
            raise ProviderError(
                f"provider {provider!r} requested but {_EP[provider]} is not in this onnxruntime build "
                f"(available: {ort.get_available_providers()}); install onnxruntime-gpu"
            )
        if hasattr(ort, "preload_dlls"):  # finds CUDA/cuDNN from the nvidia-* pip wheels if present
            try:
                ort.preload_dlls()
            except Exception as e:  # noqa: BLE001 - a missing optional library is reported below
                log.debug("ort.preload_dlls: %s", e)
    providers = provider_list(provider, device_id)
    sessions = {
        role: open_session(
            model_dir / fname, role, info, providers, session_options(intra_op_threads), model_bytes[role]
        )
        for role, fname in info.onnx_files().items()
    }
    got = sessions["denoiser"].get_providers()
    if provider != "cpu" and got[0] != _EP[provider] and not (provider == "tensorrt" and _EP["cuda"] in got):
        msg = (
            f"provider {provider!r} requested but ONNX Runtime runs on {got} "
            f"({_EP[provider]} failed to load: no NVIDIA GPU visible "
            f"(gpu_present={gpu_present()}) or CUDA/cuDNN libraries missing)"
        )
        if requested == "auto":
            log.warning("engine: %s; running on CPU", msg)
            return open_sessions(model_dir, info, model_bytes, "cpu", intra_op_threads, device_id)
        raise ProviderError(msg)
    if provider == "tensorrt" and got[0] != _EP["tensorrt"]:
        log.warning("engine: TensorRT requested but not in use, running on %s", got[0])
    if requested == "auto":
        log.info("engine: provider auto -> %s", got[0])
    return sessions, providers
