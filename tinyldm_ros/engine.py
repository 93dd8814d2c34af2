"""Runtime engine: a model folder's ONNX graphs run with ONNX Runtime, no torch.

    engine = Engine("models/default")                  # provider="auto": GPU if there is one, else CPU
    views = engine.synthesize(image, rel_poses)        # (N, S, S, 3) uint8, one view per 4x4 pose

Pipeline (all targets of one call are one batch): preprocess -> encoder -> z_cond = mean * latent_scale
-> DDIM loop on the denoiser with context concat(z_cond, rel_pose) (classifier-free guidance when
guidance != 1) -> decoder(z / latent_scale [, the input's colour summary when model.json has
colour_values]) -> uint8. The sampler settings (tinyldm_ros.sampler_settings) are checked here, once
per call; the DDIM plan and the noise rule live in tinyldm_ros.ddim, the sessions and buffers in
tinyldm_ros.ort_sessions. `Engine.draw_noise` returns the exact arrays a call draws.

Threading: one Engine serves one caller at a time. Calls from several threads are safe — a lock
serialises them (they wait, they do not run in parallel) — because the preallocated buffers and IO
bindings are per instance; the pieces (encode, denoise, decode) take the same lock. For parallel
throughput create one Engine per thread. Inside one call, `workers` > 1 (CPU) splits the targets into
that many groups that are denoised and decoded at once on the engine's own threads, each group with its
own buffers and one ONNX Runtime thread: on the 2-core machine 8 views took ~13 ms instead of ~19.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinyldm_ros import schedule as S
from tinyldm_ros.ddim import DdimScheduler, draw_noise
from tinyldm_ros.engine_call import GroupWork, Timing
from tinyldm_ros.model_folder import ModelInfo, load_model_info
from tinyldm_ros.one_step import choose_sampler
from tinyldm_ros.ort_sessions import MAX_SPECIALISED, OrtSessions, default_intra_op_threads, default_workers
from tinyldm_ros.poses import pose_batch
from tinyldm_ros.preprocess import CropBox, postprocess, preprocess

# ProviderError and gpu_present are part of the engine's API (callers catch / ask them here).
from tinyldm_ros.providers import PROVIDERS, ProviderError, gpu_present  # noqa: F401
from tinyldm_ros.sampler_settings import SamplerSettings, SamplerSettingsError
from tinyldm_ros.view_checks import check_translations, check_views

log = logging.getLogger("tinyldm_ros.engine")


class InputError(ValueError):
    """A synthesize() argument is invalid (image, poses, steps, guidance, temperature, seed)."""


class SettingsError(InputError, SamplerSettingsError):
    """A sampler setting of a call is invalid; `field` names it."""


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
        self.scheduler = DdimScheduler(self.schedule, self.info.sampler.spacing)
        self.intra_op_threads = intra_op_threads or default_intra_op_threads()
        self.device_id = device_id
        self.cuda_graph = cuda_graph
        self._lock = threading.RLock()
        self._ort = OrtSessions(
            self.model_dir, self.info, provider, self.intra_op_threads, device_id, cuda_graph
        )
        self.providers: list[str] = self._ort.providers
        self.device = self._ort.device
        # On a GPU one batch is already parallel; splitting it would only add launches.
        self.workers = 1 if self.device != "cpu" else (workers or default_workers())
        self._ort.max_buffer_sets = MAX_SPECIALISED * self.workers
        self._pool = (
            ThreadPoolExecutor(self.workers - 1, thread_name_prefix="tinyldm-engine")
            if self.workers > 1
            else None
        )
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

    # ---------------------------------------------------------------- checks

    def settings(
        self,
        steps: int | None = None,
        guidance: float | None = None,
        temperature: float | None = None,
        eta: float | None = None,
    ) -> SamplerSettings:
        """A call's sampler settings, model.json's sampler where one is None, checked: SettingsError
        (an InputError) names the bad field."""
        given = {"steps": steps, "guidance": guidance, "temperature": temperature, "eta": eta}
        settings = replace(self.info.sampler.settings(), **{k: v for k, v in given.items() if v is not None})
        try:
            return settings.checked(self.info.num_train_timesteps)
        except SamplerSettingsError as e:
            raise SettingsError(e.field, str(e)) from None

    def sampler_for(self, settings: SamplerSettings, sampler: str | None = None) -> str:
        """ "one_step" or "ddim": which sampler a call with these checked settings runs
        (tinyldm_ros.one_step); SettingsError (field "sampler") for a request it cannot honour."""
        try:
            return choose_sampler(self.info, settings, sampler)
        except SamplerSettingsError as e:
            raise SettingsError(e.field, str(e)) from None

    @staticmethod
    def check_poses(relative_poses) -> np.ndarray:
        """(N, 4, 4) or (4, 4) rigid transforms -> float32 (N, 4, 4); InputError naming the bad pose."""
        try:
            return pose_batch(relative_poses, "relative_poses")
        except ValueError as e:
            raise InputError(str(e)) from None

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
        """Timesteps and per-step coefficients of a call: tinyldm_ros.ddim.DdimScheduler.plan."""
        return self.scheduler.plan(steps, eta)

    def draw_noise(
        self, n: int, steps: int, seed: int, eta: float | None = None, temperature: float | None = None
    ):
        """(x_T, step_noise): the exact arrays synthesize() uses; step_noise is None when eta == 0."""
        eta = self.info.sampler.eta if eta is None else eta
        temperature = self.settings(temperature=temperature).temperature
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        return draw_noise(self.info.latent_shape, n, steps, seed, eta, temperature)

    # ---------------------------------------------------------------- pieces

    def encode(self, images: np.ndarray) -> np.ndarray:
        """float32 (B, 3, S, S) in [-1, 1] -> scaled latent z = mean * latent_scale, (B, C, h, w)."""
        return self.encode_with_colour(images)[0]

    def encode_with_colour(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """encode(), plus the images' colour summaries (B, colour_values) that a colour-conditioned
        decoder takes (model.json colour_values > 0; None otherwise)."""
        with self._lock:
            outs = self._ort.run(
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

    def _decode(self, z: np.ndarray, colour: np.ndarray | None, role: str = "decoder") -> np.ndarray:
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
        return self._ort.run(role, feeds)

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
        settings = SamplerSettings(steps, guidance, 1.0, eta)
        with self._lock:
            return self._denoise(GroupWork(context, x_T, step_noise, None, settings))

    def _denoise(self, work: GroupWork, worker: int = 0) -> np.ndarray:
        """denoise() without the lock; each worker thread of a call has its own buffers."""
        if work.sampler == "one_step":
            return self._ort.run("one_step", {"context": work.context})
        n = work.start.shape[0]
        s = work.settings
        cfg = s.guidance != 1.0
        timesteps, coefs = self.scheduler.plan(s.steps, s.eta)
        buf = self._ort.buffers_for(n, cfg, worker)
        latent_in, tmp = buf["latent_in"], buf["tmp"]
        x = latent_in[:n]  # the sample lives in the denoiser's bound input: no copy per step
        x[...] = work.start
        ctx = buf["context"]
        ctx[:n] = work.context
        if cfg:
            ctx[n:] = 0.0  # classifier-free guidance's null context
        self._ort.context_ready(buf)
        g = np.float32(s.guidance)
        for i, t in enumerate(timesteps):
            if cfg:
                latent_in[n:] = x
            buf["t"].fill(t)
            eps = self._ort.run_denoiser(buf)
            if cfg:
                eps_c, eps_u = eps[:n], eps[n:]
                eps = eps_u + g * (eps_c - eps_u)
            c_x, c_eps, c_noise = coefs[i]
            x *= c_x
            np.multiply(eps, c_eps, out=tmp)
            x += tmp
            if c_noise != 0.0:
                np.multiply(work.step_noise[i], c_noise, out=tmp)
                x += tmp
        return x.copy()

    def _denoise_decode(self, work: GroupWork, worker: int = 0) -> tuple[np.ndarray, float]:
        """One group of views: (float images, seconds spent denoising)."""
        t0 = time.perf_counter()
        z0 = self._denoise(work, worker)
        t1 = time.perf_counter()
        return self._decode(z0, work.colour, self._decoder_role(work.sampler)), t1 - t0

    def _decoder_role(self, sampler: str) -> str:
        """The one-step path may have its own (e.g. int8) decoder, model.json one_step.decoder."""
        return "one_step_decoder" if sampler == "one_step" and self.info.one_step.decoder else "decoder"

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
        sampler: str | None = None,
    ) -> np.ndarray:
        """One view per relative pose (target camera in the input camera's frame, OpenCV axes, translation
        in training units): (N, S, S, 3) uint8. Deterministic for a seed. Raises InputError on bad input
        (SettingsError for a bad sampler setting). steps / guidance / eta / temperature default to
        model.json's sampler. `sampler` (None, "ddim", "one_step") picks the sampler as
        tinyldm_ros.one_step says: by default a folder's one-step student runs the default settings."""
        with self._lock:
            t0 = time.perf_counter()
            settings = self.settings(steps, guidance, temperature, eta)
            name = self.sampler_for(settings, sampler)
            poses = self.check_poses(relative_poses)
            try:
                check_translations(poses, self.info.training_radius)
            except ValueError as e:
                raise InputError(str(e)) from None
            x_T, step_noise = self.draw_noise(
                len(poses), settings.steps, seed, settings.eta, settings.temperature
            )
            cond = self.prepare(image, crop_box)
            t1 = time.perf_counter()
            z_cond, colour = self.encode_with_colour(cond)
            t2 = time.perf_counter()
            context = self.make_context(z_cond, poses)
            work = [
                GroupWork(
                    context[g],
                    x_T[g],
                    None if step_noise is None else step_noise[:, g],
                    colour,
                    settings,
                    name,
                )
                for g in self._groups(len(poses))
            ]
            # The other groups on the pool's threads, the first on this one; ONNX Runtime releases the GIL.
            futures = [self._pool.submit(self._denoise_decode, job, w) for w, job in enumerate(work) if w]
            results = [self._denoise_decode(work[0], 0)] + [f.result() for f in futures]
            images = np.concatenate([r[0] for r in results]) if len(results) > 1 else results[0][0]
            denoise_s = max(r[1] for r in results)
            t4 = time.perf_counter()
            out = postprocess(images)
            check_views(images, out)  # ViewsError: never a black or NaN view as a success
            t5 = time.perf_counter()
            ms = 1e3
            self.last_timing = Timing(
                preprocess_ms=(t1 - t0) * ms,
                encode_ms=(t2 - t1) * ms,
                denoise_ms=denoise_s * ms,
                decode_ms=(t4 - t2 - denoise_s) * ms,
                postprocess_ms=(t5 - t4) * ms,
                total_ms=(t5 - t0) * ms,
                steps=1 if name == "one_step" else settings.steps,
                views=len(poses),
                denoiser_calls=1 if name == "one_step" else settings.steps,
                sampler=name,
            )
            return out

    def _groups(self, n: int) -> list[np.ndarray]:
        """The contiguous target groups of a call with n targets: one per worker thread it uses."""
        return np.array_split(np.arange(n), min(self.workers, n))

    def is_warm(self, views: int, guidance: float | None = None) -> bool:
        """Whether a call with `views` targets (and this guidance) finds its sessions and buffers built."""
        cfg = self.settings(guidance=guidance).guidance != 1.0
        student = self.info.one_step is not None
        return self._ort.has("encoder", 1) and all(
            self._ort.has_buffers(len(g), cfg, w)
            and self._ort.has("decoder", len(g))
            and (not student or self._ort.has("one_step", len(g)))
            and self._ort.has(self._decoder_role("one_step" if student else "ddim"), len(g))
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
        poses = np.repeat(np.eye(4)[None], views, axis=0)
        self.synthesize(image, poses, steps=1, guidance=guidance)
        if self.info.one_step is not None:
            self.synthesize(image, poses, sampler="one_step")

    @property
    def specialised(self) -> list[tuple[str, int]]:
        """(role, batch size) of the batch-specialised sessions built so far, oldest first."""
        return self._ort.specialised

    def session(self, role: str, batch: int) -> ort.InferenceSession:
        """The session for `role` specialised to a fixed batch size (tinyldm_ros.ort_sessions)."""
        return self._ort.session(role, batch)
