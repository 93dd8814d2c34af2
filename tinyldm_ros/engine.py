"""Runtime engine: a model folder's ONNX graphs run with ONNX Runtime, no torch.

    engine = Engine("models/default")                  # provider="auto": GPU if there is one, else CPU
    views = engine.synthesize(image, rel_poses)        # (N, S, S, 3) uint8, one view per 4x4 pose

Pipeline (all targets of one call are one batch): preprocess -> encoder -> z_cond = mean * latent_scale
-> DDIM loop on the denoiser with context concat(z_cond, rel_pose) (classifier-free guidance when
guidance != 1) -> decoder(z / latent_scale [, the input's colour summary when model.json has
colour_values]) -> uint8.

Noise is defined here so that any other implementation can reproduce it exactly: the generator is
`numpy.random.default_rng(seed)`; it first draws the initial latent with
`standard_normal((N, C, h, w), dtype=float32)`, which times the temperature (float32; model.json's
sampler.temperature by default) is `x_T`, then (only when eta > 0) one array of that shape per DDIM
step, in step order. `Engine.draw_noise` returns these arrays.

Threading: one Engine serves one caller at a time. Calls from several threads are safe — a lock
serialises them (they wait, they do not run in parallel) — because the preallocated buffers and IO
bindings are per instance; the pieces (encode, denoise, decode) take the same lock. For parallel
throughput create one Engine per thread. Inside one call, `workers` > 1 (CPU) splits the targets into
that many groups that are denoised and decoded at once on the engine's own threads, each group with its
own buffers and one ONNX Runtime thread: on the 2-core machine 8 views took ~13 ms instead of ~19.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinyldm_ros import schedule as S
from tinyldm_ros.model_folder import ONNX_FILES, ModelInfo, load_model_info, open_session
from tinyldm_ros.poses import check_rigid
from tinyldm_ros.preprocess import CropBox, postprocess, preprocess

log = logging.getLogger("tinyldm_ros.engine")

PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
MAX_SPECIALISED = 8  # batch-specialised sessions / buffer sets kept (LRU)
_EP = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class InputError(ValueError):
    """A synthesize() argument is invalid (image, poses, steps, guidance, temperature, seed)."""


class ProviderError(RuntimeError):
    """The requested execution provider (GPU) is not available or not in use."""


@dataclass
class Timing:
    """Milliseconds spent in each stage of the last call (wall clock, includes host<->device copies)."""

    preprocess_ms: float = 0.0
    encode_ms: float = 0.0
    denoise_ms: float = 0.0
    decode_ms: float = 0.0
    postprocess_ms: float = 0.0
    total_ms: float = 0.0
    steps: int = 0
    views: int = 0
    denoiser_calls: int = 0


def gpu_present() -> bool:
    """Cheap check for an NVIDIA GPU (onnxruntime-gpu lists CUDA as available even without one)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def default_intra_op_threads() -> int:
    # The graphs are tiny (a 4x4 latent, a 32x32 image): most ops take a microsecond or two, so handing
    # work to a second thread costs more than it saves (measured on the 2-core machine: DDIM-10 for one
    # view 2-5x slower with 2 threads), and a robot has other nodes to run on its cores.
    return 1


def default_workers() -> int:
    # Independent groups of views, one per core, with no synchronisation inside ONNX Runtime (which is
    # what made intra-op threads lose): 8 views 18.8 -> 12.9 ms p50 on the 2-core machine. Two at most, so
    # a robot's other nodes keep the rest of a bigger CPU.
    return min(2, os.cpu_count() or 1)


class Engine:
    """Loads a model folder and synthesizes novel views. See the module docstring."""

    def __init__(
        self,
        model_dir: str | Path,
        provider: str = "auto",
        intra_op_threads: int | None = None,
        warmup: bool = True,
        device_id: int = 0,
        warmup_views: tuple[int, ...] = (1,),
        cuda_graph: bool = True,
        workers: int | None = None,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
        if intra_op_threads is not None and not (isinstance(intra_op_threads, int) and intra_op_threads >= 1):
            raise ValueError(f"intra_op_threads must be an integer >= 1 or None, got {intra_op_threads!r}")
        if workers is not None and not (
            isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1
        ):
            raise ValueError(f"workers must be an integer >= 1 or None, got {workers!r}")
        self.model_dir = Path(model_dir)
        self.info: ModelInfo = load_model_info(self.model_dir)
        self.schedule = S.NoiseSchedule(S.ScheduleConfig.from_dict(self.info.schedule))
        self.intra_op_threads = intra_op_threads or default_intra_op_threads()
        self.device_id = device_id
        self.cuda_graph = cuda_graph
        self._lock = threading.RLock()
        # The session / buffer caches, shared by the worker threads (re-entrant: buffers open sessions).
        self._cache_lock = threading.RLock()
        self._model_bytes = {role: (self.model_dir / f).read_bytes() for role, f in ONNX_FILES.items()}
        self._sessions = self._open_sessions(provider)  # dynamic batch axis: validated, any batch size
        self.providers: list[str] = self._sessions["denoiser"].get_providers()
        self.device = "cuda" if self.providers[0] in (_EP["cuda"], _EP["tensorrt"]) else "cpu"
        # On a GPU one batch is already parallel; splitting it would only add launches.
        self.workers = 1 if self.device != "cpu" else (workers or default_workers())
        self._pool = (
            ThreadPoolExecutor(self.workers - 1, thread_name_prefix="tinyldm-engine")
            if self.workers > 1
            else None
        )
        self._specialised: OrderedDict[tuple[str, int], ort.InferenceSession] = OrderedDict()
        self._buffers: OrderedDict[tuple, dict] = OrderedDict()
        self._plans: dict[tuple, tuple] = {}
        self.last_timing = Timing()
        log.info(
            "engine: model %s on %s (providers %s, %d intra-op threads, %d workers)",
            self.model_dir,
            self.device.upper(),
            self.providers,
            self.intra_op_threads,
            self.workers,
        )
        if warmup:
            for n in warmup_views:
                self.warmup(n)

    # ---------------------------------------------------------------- providers / sessions

    def _session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # ORT's own warnings about provider fallbacks are reported by us
        # Trained weights can drive activations into float32 denormals, which x86 handles ~100x slower;
        # flushing them changes results by < 1e-38 (no measurable cost or gain on random weights).
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        return so

    def _provider_list(self, provider: str) -> list:
        cuda_opts = {
            "device_id": self.device_id,
            "cudnn_conv_algo_search": "EXHAUSTIVE",  # the shapes never change: search once at load
            "do_copy_in_default_stream": True,
        }
        if provider == "cuda":
            return [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
        if provider == "tensorrt":
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyldm_ros" / "trt"
            cache.mkdir(parents=True, exist_ok=True)
            trt_opts = {
                "device_id": self.device_id,
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

    def _open_sessions(self, provider: str) -> dict:
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
        providers = self._provider_list(provider)
        sessions = {}
        for role, fname in ONNX_FILES.items():
            sessions[role] = open_session(
                self.model_dir / fname,
                role,
                self.info,
                providers,
                self._session_options(),
                self._model_bytes[role],
            )
        self._provider_config = providers
        got = sessions["denoiser"].get_providers()
        if (
            provider != "cpu"
            and got[0] != _EP[provider]
            and not (provider == "tensorrt" and _EP["cuda"] in got)
        ):
            msg = (
                f"provider {provider!r} requested but ONNX Runtime runs on {got} "
                f"({_EP[provider]} failed to load: no NVIDIA GPU visible "
                f"(gpu_present={gpu_present()}) or CUDA/cuDNN libraries missing)"
            )
            if requested == "auto":
                log.warning("engine: %s; running on CPU", msg)
                return self._open_sessions("cpu")
            raise ProviderError(msg)
        if provider == "tensorrt" and got[0] != _EP["tensorrt"]:
            log.warning("engine: TensorRT requested but not in use, running on %s", got[0])
        if requested == "auto":
            log.info("engine: provider auto -> %s", got[0])
        return sessions

    # ---------------------------------------------------------------- validation

    def check_steps(self, steps: int | None) -> int:
        steps = self.info.sampler.steps if steps is None else steps
        T = self.info.num_train_timesteps
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 1 <= steps <= T:
            raise InputError(f"steps must be an integer in [1, {T}] (the trained timesteps), got {steps!r}")
        return int(steps)

    def check_guidance(self, guidance: float | None) -> float:
        guidance = self.info.sampler.guidance if guidance is None else guidance
        if isinstance(guidance, bool) or not isinstance(guidance, int | float | np.floating):
            raise InputError(f"guidance must be a number, got {guidance!r}")
        if not math.isfinite(guidance) or guidance < 0:
            raise InputError(f"guidance must be finite and >= 0, got {guidance!r}")
        return float(guidance)

    def check_temperature(self, temperature: float | None) -> float:
        temperature = self.info.sampler.temperature if temperature is None else temperature
        if isinstance(temperature, bool) or not isinstance(temperature, int | float | np.floating):
            raise InputError(f"temperature must be a number, got {temperature!r}")
        if not 0.0 <= temperature <= 1.0:  # also refuses NaN
            raise InputError(f"temperature must be in [0, 1], got {temperature!r}")
        return float(temperature)

    @staticmethod
    def check_poses(relative_poses) -> np.ndarray:
        """(N, 4, 4) or (4, 4) rigid transforms -> float32 (N, 4, 4); InputError naming the bad pose."""
        try:
            poses = np.asarray(relative_poses, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"relative_poses must be numeric (N, 4, 4) matrices: {e}") from None
        if poses.shape == (4, 4):
            poses = poses[None]
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] < 1:
            raise InputError(f"relative_poses must have shape (N, 4, 4) with N >= 1, got {poses.shape}")
        try:
            check_rigid(poses, "relative_poses")  # one vectorised check on the hot path
        except ValueError:
            for i, p in enumerate(poses):  # find the culprit for the message
                try:
                    check_rigid(p, f"relative_poses[{i}]")
                except ValueError as e:
                    raise InputError(str(e)) from None
            raise
        return poses.astype(np.float32)

    def prepare(self, image, crop_box: CropBox | None = None) -> np.ndarray:
        """Image HxW[xC] of any size/dtype -> float32 (1, 3, S, S) in [-1, 1] via tinyldm_ros.preprocess
        (centre square crop, or `crop_box` = (x0, y0, side) e.g. around the principal point)."""
        if image is None:
            raise InputError("image is None")
        try:
            x = preprocess(image, self.info.image_size, crop_box)
        except (ValueError, TypeError) as e:
            shape = getattr(image, "shape", None)
            raise InputError(f"image (shape {shape}, dtype {getattr(image, 'dtype', None)}): {e}") from None
        return x[None]

    # ---------------------------------------------------------------- sampler plan / noise

    def ddim_plan(self, steps: int, eta: float = 0.0) -> tuple[np.ndarray, list[tuple]]:
        """Timesteps (descending int64) and per-step float32 coefficients so that one DDIM step is
        x_prev = c_x * x_t + c_eps * eps + c_noise * noise.

        The coefficients are read off tinyldm_ros.schedule.ddim_step itself (the step is linear in x_t,
        eps and noise), so the runtime and the torch sampler share one implementation of the maths.
        """
        key = (steps, float(eta))
        plan = self._plans.get(key)
        if plan is None:
            ts = self.schedule.timesteps(steps, self.info.sampler.spacing)
            coefs = np.empty((len(ts), 3), np.float64)
            for i, (t, prev) in enumerate(zip(ts, S.previous_timesteps(ts), strict=True)):
                a, ap = self.schedule.alpha_bar(int(t)), self.schedule.alpha_bar(int(prev))
                coefs[i] = (
                    S.ddim_step(1.0, 0.0, a, ap, eta, 0.0),
                    S.ddim_step(0.0, 1.0, a, ap, eta, 0.0),
                    S.ddim_step(0.0, 0.0, a, ap, eta, 1.0),
                )
            plan = self._plans[key] = (ts, [tuple(np.float32(c) for c in row) for row in coefs])
        return plan

    def draw_noise(
        self, n: int, steps: int, seed: int, eta: float | None = None, temperature: float | None = None
    ):
        """(x_T, step_noise): the exact arrays synthesize() uses; step_noise is None when eta == 0."""
        eta = self.info.sampler.eta if eta is None else eta
        temperature = self.check_temperature(temperature)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        shape = (n, *self.info.latent_shape)
        x_T = rng.standard_normal(shape, dtype=np.float32)
        if temperature != 1.0:
            x_T *= np.float32(temperature)
        step_noise = rng.standard_normal((steps, *shape), dtype=np.float32) if eta > 0 else None
        return x_T, step_noise

    # ---------------------------------------------------------------- pieces

    def encode(self, images: np.ndarray) -> np.ndarray:
        """float32 (B, 3, S, S) in [-1, 1] -> scaled latent z = mean * latent_scale, (B, C, h, w)."""
        return self.encode_with_colour(images)[0]

    def encode_with_colour(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """encode(), plus the images' colour summaries (B, colour_values) that a colour-conditioned
        decoder takes (model.json colour_values > 0; None otherwise)."""
        with self._lock:
            outs = self._run(
                "encoder", {"image": np.ascontiguousarray(images, dtype=np.float32)}, all_outputs=True
            )
        colour = outs[1] if self.info.colour_values else None
        return outs[0] * np.float32(self.info.latent_scale), colour

    def decode(self, z: np.ndarray, colour: np.ndarray | None = None) -> np.ndarray:
        """Scaled latent (B, C, h, w) -> float32 image (B, 3, S, S), nominally in [-1, 1]. A colour-
        conditioned model also needs the conditioning image's colour summary (encode_with_colour): one
        row for all latents, or one per latent."""
        with self._lock:
            return self._decode(z, colour)

    def _decode(self, z: np.ndarray, colour: np.ndarray | None) -> np.ndarray:
        """decode() without the lock: its caller holds it (or is one of that caller's workers)."""
        latent = np.ascontiguousarray(z / np.float32(self.info.latent_scale), dtype=np.float32)
        feeds = {"latent": latent}
        if self.info.colour_values:
            if colour is None:
                raise InputError(
                    "this model's decoder is colour-conditioned: pass the colour from encode_with_colour"
                )
            colour = np.asarray(colour, dtype=np.float32).reshape(-1, self.info.colour_values)
            if colour.shape[0] != latent.shape[0]:
                colour = np.broadcast_to(colour, (latent.shape[0], self.info.colour_values))
            feeds["colour"] = np.ascontiguousarray(colour)
        return self._run("decoder", feeds)

    def make_context(self, z_cond: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """Context rows concat(z_cond.flatten(), pose.flatten()) for each target pose, float32 (N, K)."""
        n = poses.shape[0]
        zc = np.asarray(z_cond, dtype=np.float32).reshape(-1, self.info.latent_size)
        zc = np.broadcast_to(zc, (n, zc.shape[1])) if zc.shape[0] == 1 else zc
        return np.concatenate([zc, poses.reshape(n, 16).astype(np.float32)], axis=1)

    def denoise(
        self,
        context: np.ndarray,
        x_T: np.ndarray,
        steps: int,
        guidance: float = 1.0,
        eta: float = 0.0,
        step_noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """DDIM from x_T with the conditional contexts (N, K); returns the scaled latent z_0 (N, C, h, w)."""
        if eta > 0 and step_noise is None:
            raise InputError("eta > 0 needs step_noise (see draw_noise)")
        with self._lock:
            return self._denoise(context, x_T, steps, guidance, eta, step_noise)

    def _denoise(
        self,
        context: np.ndarray,
        x_T: np.ndarray,
        steps: int,
        guidance: float,
        eta: float,
        step_noise: np.ndarray | None,
        worker: int = 0,
    ) -> np.ndarray:
        """denoise() without the lock; each worker thread of a call has its own buffers."""
        n = x_T.shape[0]
        cfg = guidance != 1.0
        timesteps, coefs = self.ddim_plan(steps, eta)
        buf = self._buffers_for(n, cfg, worker)
        latent_in, tmp = buf["latent_in"], buf["tmp"]
        x = latent_in[:n]  # the sample lives in the denoiser's bound input: no copy per step
        x[...] = x_T
        ctx = buf["context"]
        ctx[:n] = context
        if cfg:
            ctx[n:] = 0.0  # classifier-free guidance's null context
        self._context_ready(buf)
        g = np.float32(guidance)
        for i, t in enumerate(timesteps):
            if cfg:
                latent_in[n:] = x
            buf["t"].fill(t)
            eps = self._run_denoiser(buf)
            if cfg:
                eps_c, eps_u = eps[:n], eps[n:]
                eps = eps_u + g * (eps_c - eps_u)
            c_x, c_eps, c_noise = coefs[i]
            x *= c_x
            np.multiply(eps, c_eps, out=tmp)
            x += tmp
            if c_noise != 0.0:
                np.multiply(step_noise[i], c_noise, out=tmp)
                x += tmp
        return x.copy()

    def _denoise_decode(
        self, context, x_T, steps, guidance, eta, step_noise, colour, worker: int = 0
    ) -> tuple[np.ndarray, float]:
        """One group of views: (float images, seconds spent denoising)."""
        t0 = time.perf_counter()
        z0 = self._denoise(context, x_T, steps, guidance, eta, step_noise, worker)
        t1 = time.perf_counter()
        return self._decode(z0, colour), t1 - t0

    def synthesize(
        self,
        image: np.ndarray,
        relative_poses,
        steps: int | None = None,
        seed: int = 0,
        guidance: float | None = None,
        eta: float | None = None,
        crop_box: CropBox | None = None,
        temperature: float | None = None,
    ) -> np.ndarray:
        """One view per relative pose (target camera in the input camera's frame, OpenCV axes, translation
        in training units): (N, S, S, 3) uint8. Deterministic for a seed. Raises InputError on bad input.
        steps / guidance / eta / temperature default to model.json's sampler."""
        with self._lock:
            t0 = time.perf_counter()
            steps = self.check_steps(steps)
            guidance = self.check_guidance(guidance)
            eta = self.info.sampler.eta if eta is None else float(eta)
            if not 0.0 <= eta <= 1.0:
                raise InputError(f"eta must be in [0, 1], got {eta!r}")
            poses = self.check_poses(relative_poses)
            x_T, step_noise = self.draw_noise(len(poses), steps, seed, eta, temperature)
            cond = self.prepare(image, crop_box)
            t1 = time.perf_counter()
            z_cond, colour = self.encode_with_colour(cond)
            t2 = time.perf_counter()
            context = self.make_context(z_cond, poses)
            groups = self._groups(len(poses))
            jobs = [
                (
                    context[g],
                    x_T[g],
                    steps,
                    guidance,
                    eta,
                    None if step_noise is None else step_noise[:, g],
                    colour,
                )
                for g in groups
            ]
            # The other groups on the pool's threads, the first on this one; ONNX Runtime releases the GIL.
            futures = [self._pool.submit(self._denoise_decode, *job, w) for w, job in enumerate(jobs) if w]
            results = [self._denoise_decode(*jobs[0], 0)] + [f.result() for f in futures]
            images = np.concatenate([r[0] for r in results]) if len(results) > 1 else results[0][0]
            denoise_s = max(r[1] for r in results)
            t4 = time.perf_counter()
            out = postprocess(images)
            t5 = time.perf_counter()
            ms = 1e3
            self.last_timing = Timing(
                preprocess_ms=(t1 - t0) * ms,
                encode_ms=(t2 - t1) * ms,
                denoise_ms=denoise_s * ms,
                decode_ms=(t4 - t2 - denoise_s) * ms,
                postprocess_ms=(t5 - t4) * ms,
                total_ms=(t5 - t0) * ms,
                steps=steps,
                views=len(poses),
                denoiser_calls=steps,
            )
            return out

    def _groups(self, n: int) -> list[np.ndarray]:
        """The contiguous target groups of a call with n targets: one per worker thread it uses."""
        return np.array_split(np.arange(n), min(self.workers, n))

    def is_warm(self, views: int, guidance: float | None = None) -> bool:
        """Whether a call with `views` targets (and this guidance) finds its sessions and buffers built."""
        cfg = self.check_guidance(guidance) != 1.0
        with self._cache_lock:
            return ("encoder", 1) in self._specialised and all(
                (len(g), cfg, w) in self._buffers and ("decoder", len(g)) in self._specialised
                for w, g in enumerate(self._groups(views))
            )

    def warmup(self, views: int = 1, guidance: float | None = None) -> None:
        """One full call with `views` targets, unless one has built what it needs already: graph
        specialisation for that batch size, allocations and kernel choices happen now, not on the
        first image. Pass the guidance the calls will use: with guidance != 1 the denoiser runs a batch
        of 2 x views."""
        if self.is_warm(views, guidance):
            return
        size = self.info.image_size
        image = np.full((size, size, 3), 128, np.uint8)
        self.synthesize(image, np.repeat(np.eye(4)[None], views, axis=0), steps=1, guidance=guidance)

    # ---------------------------------------------------------------- ORT plumbing

    @property
    def specialised(self) -> list[tuple[str, int]]:
        """(role, batch size) of the batch-specialised sessions built so far, oldest first."""
        with self._cache_lock:
            return list(self._specialised)

    def session(self, role: str, batch: int) -> ort.InferenceSession:
        """The session for `role` specialised to a fixed batch size.

        With the batch axis fixed (ORT's free-dimension override), ORT folds every shape computation
        of the graph into constants: the denoiser loses ~40% of its nodes and runs ~2x faster
        (benchmarks/). Building one costs ~0.1-0.3 s, once per batch size (warmup_views builds them at
        load); the most recent few are kept, the dynamic session serves if building fails."""
        key = (role, batch)
        with self._cache_lock:
            sess = self._specialised.get(key)
            if sess is not None:
                self._specialised.move_to_end(key)
                return sess
            try:
                sess = self._new_session(role, batch)
            except Exception as e:  # noqa: BLE001 - fall back to the validated dynamic session
                log.warning(
                    "engine: could not specialise %s to batch %d (%s); using the dynamic graph",
                    role,
                    batch,
                    e,
                )
                sess = self._sessions[role]
            self._specialised[key] = sess
            while len(self._specialised) > MAX_SPECIALISED:
                self._specialised.popitem(last=False)
            return sess

    def _new_session(self, role: str, batch: int, cuda_graph: bool = False) -> ort.InferenceSession:
        so = self._session_options()
        so.add_free_dimension_override_by_name("batch", batch)
        providers = self._provider_config
        if cuda_graph:
            name, opts = providers[0]
            providers = [(name, {**opts, "enable_cuda_graph": "1"}), *providers[1:]]
        return ort.InferenceSession(self._model_bytes[role], so, providers=providers)

    def _run(self, role: str, feeds: dict, all_outputs: bool = False):
        batch = next(iter(feeds.values())).shape[0]
        outs = self.session(role, batch).run(None, feeds)
        return outs if all_outputs else outs[0]

    def _buffers_for(self, n: int, cfg: bool, worker: int = 0) -> dict:
        """Preallocated per-batch-size buffers and IO binding (reused across calls with as many targets),
        one set per worker thread."""
        key = (n, cfg, worker)
        with self._cache_lock:
            buf = self._buffers.get(key)
            if buf is not None:
                self._buffers.move_to_end(key)
                return buf
            b = 2 * n if cfg else n
            use_graph = self.cuda_graph and self.providers[0] == _EP["cuda"]  # TensorRT has its own
            buf = self._make_buffers(b, n, use_cuda_graph=use_graph)
            self._buffers[key] = buf
            while len(self._buffers) > MAX_SPECIALISED * self.workers:
                self._buffers.popitem(last=False)
            return buf

    def _make_buffers(self, b: int, n: int, use_cuda_graph: bool) -> dict:
        shape = (b, *self.info.latent_shape)
        buf = {
            "latent_in": np.empty(shape, np.float32),
            "t": np.empty((b,), np.int64),
            "context": np.empty((b, self.info.context.size), np.float32),
            "eps": np.empty(shape, np.float32),
            "tmp": np.empty((n, *self.info.latent_shape), np.float32),
        }
        self._bind(buf, use_cuda_graph)
        return buf

    def _bind(self, buf: dict, use_cuda_graph: bool) -> None:
        """Session + IO binding for a buffer set (host arrays stay the same objects)."""
        b = buf["t"].shape[0]
        session = None
        buf["cuda_graph"] = False
        if use_cuda_graph:
            # A CUDA graph replays the whole denoiser as one launch instead of ~500 tiny kernels; it
            # needs fixed device addresses, so each buffer set gets its own session.
            try:
                session = self._new_session("denoiser", b, cuda_graph=True)
                buf["cuda_graph"] = True
            except Exception as e:  # noqa: BLE001 - e.g. a node the CUDA EP cannot take
                log.warning("engine: CUDA graph unavailable for batch %d (%s); plain CUDA launches", b, e)
        buf["session"] = session or self.session("denoiser", b)
        io = buf["session"].io_binding()
        if self.device == "cpu":
            # bound by address: the loop writes into these arrays and ORT reads/writes them in place
            for name, arr in (
                ("latent", buf["latent_in"]),
                ("timestep", buf["t"]),
                ("context", buf["context"]),
            ):
                io.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
            e = buf["eps"]
            io.bind_output("noise", "cpu", 0, np.float32, list(e.shape), e.ctypes.data)
        else:
            # GPU: OrtValues on the device at fixed addresses. The context is uploaded once per call,
            # the latent and timestep (64 + 8 bytes per view) once per step; the output stays in a
            # device buffer and is copied back once per step for the numpy DDIM update.
            dev = ("cuda", self.device_id)
            buf["ov_latent"] = ort.OrtValue.ortvalue_from_numpy(buf["latent_in"], *dev)
            buf["ov_t"] = ort.OrtValue.ortvalue_from_numpy(buf["t"], *dev)
            buf["ov_context"] = ort.OrtValue.ortvalue_from_numpy(buf["context"], *dev)
            buf["ov_eps"] = ort.OrtValue.ortvalue_from_shape_and_type(
                list(buf["eps"].shape), np.float32, *dev
            )
            io.bind_ortvalue_input("latent", buf["ov_latent"])
            io.bind_ortvalue_input("timestep", buf["ov_t"])
            io.bind_ortvalue_input("context", buf["ov_context"])
            io.bind_ortvalue_output("noise", buf["ov_eps"])
        buf["binding"] = io

    def _context_ready(self, buf: dict) -> None:
        if self.device != "cpu":
            buf["ov_context"].update_inplace(buf["context"])

    def _run_denoiser(self, buf: dict) -> np.ndarray:
        session, io = buf["session"], buf["binding"]
        if self.device == "cpu":
            session.run_with_iobinding(io)
            return buf["eps"]
        buf["ov_latent"].update_inplace(buf["latent_in"])
        buf["ov_t"].update_inplace(buf["t"])
        try:
            session.run_with_iobinding(io)
        except Exception as e:
            if not buf["cuda_graph"]:
                raise
            # capture failed: same host buffers, plain CUDA launches from now on
            log.warning("engine: CUDA graph capture failed (%s); plain CUDA launches", e)
            self._bind(buf, use_cuda_graph=False)
            self._context_ready(buf)
            return self._run_denoiser(buf)
        return buf["ov_eps"].numpy()
