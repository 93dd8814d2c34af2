"""ONNX Runtime plumbing of one engine: batch-specialised sessions, the denoiser's preallocated buffers
with their IO binding, and CUDA graphs. The engine's pipeline asks for a session or a buffer set and
runs it; how ONNX Runtime is fed lives here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinyldm_ros.model_folder import ModelInfo
from tinyldm_ros.providers import EXECUTION_PROVIDERS, open_sessions, session_options

log = logging.getLogger("tinyldm_ros.engine")

MAX_SPECIALISED = 8  # batch-specialised sessions / buffer sets kept (LRU)


class OrtSessions:
    """The model's sessions on one provider. Safe to share between one call's worker threads: the
    caches take a re-entrant lock (building a buffer set opens a session)."""

    def __init__(
        self,
        model_dir: Path,
        info: ModelInfo,
        provider: str,
        intra_op_threads: int,
        device_id: int,
        cuda_graph: bool,
    ) -> None:
        self.info = info
        self.intra_op_threads = intra_op_threads
        self.device_id = device_id
        self.cuda_graph = cuda_graph
        self._model_bytes = {role: (model_dir / f).read_bytes() for role, f in info.onnx_files().items()}
        # dynamic batch axis: validated, any batch size
        self._dynamic, self._provider_config = open_sessions(
            model_dir, info, self._model_bytes, provider, intra_op_threads, device_id
        )
        self.providers: list[str] = self._dynamic["denoiser"].get_providers()
        gpu = (EXECUTION_PROVIDERS["cuda"], EXECUTION_PROVIDERS["tensorrt"])
        self.device = "cuda" if self.providers[0] in gpu else "cpu"
        self.max_buffer_sets = MAX_SPECIALISED  # the engine raises it to one set per worker thread
        self._lock = threading.RLock()
        self._specialised: OrderedDict[tuple[str, int], ort.InferenceSession] = OrderedDict()
        self._buffers: OrderedDict[tuple, dict] = OrderedDict()

    @property
    def specialised(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._specialised)

    def has(self, role: str, batch: int) -> bool:
        with self._lock:
            return (role, batch) in self._specialised

    def has_buffers(self, n: int, cfg: bool, worker: int) -> bool:
        with self._lock:
            return (n, cfg, worker) in self._buffers

    def session(self, role: str, batch: int) -> ort.InferenceSession:
        """The session for `role` specialised to a fixed batch size.

        With the batch axis fixed (ORT's free-dimension override), ORT folds every shape computation
        of the graph into constants: the denoiser loses ~40% of its nodes and runs ~2x faster
        (benchmarks/). Building one costs ~0.1-0.3 s, once per batch size (warmup_views builds them at
        load); the most recent few are kept, the dynamic session serves if building fails."""
        key = (role, batch)
        with self._lock:
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
                sess = self._dynamic[role]
            self._specialised[key] = sess
            while len(self._specialised) > MAX_SPECIALISED:
                self._specialised.popitem(last=False)
            return sess

    def _new_session(self, role: str, batch: int, cuda_graph: bool = False) -> ort.InferenceSession:
        so = session_options(self.intra_op_threads)
        so.add_free_dimension_override_by_name("batch", batch)
        providers = self._provider_config
        if cuda_graph:
            name, opts = providers[0]
            providers = [(name, {**opts, "enable_cuda_graph": "1"}), *providers[1:]]
        return ort.InferenceSession(self._model_bytes[role], so, providers=providers)

    def run(self, role: str, feeds: dict, all_outputs: bool = False):
        batch = next(iter(feeds.values())).shape[0]
        outs = self.session(role, batch).run(None, feeds)
        return outs if all_outputs else outs[0]

    # ---------------------------------------------------------------- the denoiser's bound buffers

    def buffers_for(self, n: int, cfg: bool, worker: int = 0) -> dict:
        """Preallocated per-batch-size buffers and IO binding (reused across calls with as many targets),
        one set per worker thread. "latent_in" is the denoiser's bound input: the DDIM loop keeps its
        sample there, so a step copies nothing."""
        key = (n, cfg, worker)
        with self._lock:
            buf = self._buffers.get(key)
            if buf is not None:
                self._buffers.move_to_end(key)
                return buf
            b = 2 * n if cfg else n
            use_graph = (
                self.cuda_graph and self.providers[0] == EXECUTION_PROVIDERS["cuda"]
            )  # TRT has its own
            buf = self._make_buffers(b, n, use_cuda_graph=use_graph)
            self._buffers[key] = buf
            while len(self._buffers) > self.max_buffer_sets:
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

    def context_ready(self, buf: dict) -> None:
        """The host context of `buf` is written: upload it (once per call) where it lives on a device."""
        if self.device != "cpu":
            buf["ov_context"].update_inplace(buf["context"])

    def run_denoiser(self, buf: dict) -> np.ndarray:
        """One denoiser pass on `buf`'s current latent, timestep and context; the noise prediction."""
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
            self.context_ready(buf)
            return self.run_denoiser(buf)
        return buf["ov_eps"].numpy()


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
