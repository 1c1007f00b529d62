"""Runtime inference backends: a manifold (+ policy) that steps characters as fast as this machine allows.

    backend = make_backend("vae.pt", policy="policies/target.pt")   # ONNX Runtime when installed
    next_raw = backend.step(latent, cond_raw)       # (B, Z) latents | (B,) codes, (B, C, D) raw -> (B, D) torch
    action = backend.act(obs_raw)                   # (B, O) raw observations -> (B, A) in [-1, 1] | (B,) codes
    next_raw, action = backend.control(obs_raw, cond_raw)   # both; the latent is action * action_scale
    backend.step(latent, cond_raw, style=style)     # a model with styles: (B,) indices | (B, S) weights | None
    backend.last_ms, backend.mean_ms                # inference time of the last call / running mean (for a HUD)
    backend = make_backend("vae.pt", prior="prior.pt")   # a VQ model's code prior too: backend.code_prior

A backend stands in for the manifold wherever the environments take one: it has ``frame_size``,
``latent_size``, ``discrete``, ``num_codes``, ``num_condition_frames``, ``skeleton``, ``fps``,
``start_frames``, ``num_styles``, ``style_names``, ``start_styles``, ``extra``, ``config``, ``device``, ``sample_prior(B, generator)``, ``normalize`` and
``denormalize``, all from the torch manifold it wraps, and ``step`` from the fast path.

Backends:

* ``"onnx"``: ONNX Runtime on the graphs of ``controller.export`` (CUDA provider when ``onnxruntime-gpu`` and a
  GPU are there, else the CPU provider: one intra-op thread, and for calls of ``BATCH_THREADS_MIN`` rows or more
  (a crowd) sessions with ``batch_threads`` threads (every CPU by default) on the graphs with their ELU written in
  vectorised operations (:func:`vectorised_elu`); on the CPU every graph and batch size runs through IO bindings
  made on its first call). Inputs and outputs are CPU tensors (``device`` is the CPU). Graphs come from
  ``export_dir`` (exported into it when it holds none; an error when it holds graphs of other weights), else from
  the cache beside the checkpoint (``controller.cache``), else (in-memory models) from a temporary folder.
  ``control`` runs the fused ``controller.onnx`` or the two graphs in turn, whichever the export measured faster at
  the batch size nearest the call's.
  ``precision="int8"`` (CPU provider only) runs every graph with its large matmuls on 8-bit weights
  (:mod:`controller.quantize`, made from the float32 graphs when the sessions open): 0.10 -> 0.07 ms per
  character at batch 1, frames within a few hundredths of the float32 ones.
* ``"torch"``: the torch modules themselves, under ``torch.no_grad`` (CUDA when available).
  ``precision="bf16"`` runs the decoder in bfloat16 (:mod:`controller.bfloat16`; processors with bfloat16
  instructions only): a crowd's step in 60-70 % of the float32 time.
* ``"auto"``: ``"onnx"`` when onnxruntime is installed (``"torch"`` for ``precision="bf16"``), else ``"torch"``.

``prior=`` (a VQ model's code prior file or ``vae.prior.CodePrior``): ``backend.code_prior`` is the prior on the same
kind of inference (:func:`controller.prior_session.make_code_prior`: its rollout step on ONNX Runtime, or the torch
module), ready to pass as the environments' ``code_prior``; None without one.

The backend chosen and its provider are logged (and printed with ``verbose=True``) and exposed as ``.name``
and ``.provider``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

import controller.export as exporter
from controller import cache
from controller.latency import LatencyMeter
from controller.sessions import (
    CPU,
    DEFAULT_THREADS,
    DEVICES,
    onnxruntime_available,
    open_session,
    providers_for,
    session_options,
)
from controller.sources import resolve_policy, resolve_vae

BACKENDS = ("auto", "onnx", "torch")
PRECISIONS = ("fp32", "int8", "bf16")
PRECISION_NOTES = {"int8": "int8 weights", "bf16": "bf16 decoder"}  # what the HUD adds to the backend's name
log = logging.getLogger(__name__)


class _ManifoldFacade:
    """The manifold interface the environments read, delegated to the wrapped torch manifold; timing."""

    name = "?"
    provider = "?"
    precision = "fp32"
    code_prior = None  # make_backend(prior=...): the code prior for the environments
    _style_eye = None  # (S, S) one-hot rows of the style indices, made on the first call

    def __init__(self, manifold, action_scale: float | None, has_policy: bool):
        self.manifold = manifold
        self.action_scale = action_scale
        self.has_policy = has_policy
        self.meters = {"step": LatencyMeter(), "act": LatencyMeter(), "control": LatencyMeter()}
        self._last = self.meters["step"]

    # ---- the manifold attributes ------------------------------------------------------------------------
    frame_size = property(lambda self: int(self.manifold.frame_size))
    latent_size = property(lambda self: int(self.manifold.latent_size))
    discrete = property(lambda self: bool(self.manifold.discrete))
    num_codes = property(lambda self: self.manifold.num_codes)
    num_condition_frames = property(lambda self: int(self.manifold.num_condition_frames))
    skeleton = property(lambda self: self.manifold.skeleton)
    fps = property(lambda self: self.manifold.fps)
    start_frames = property(lambda self: self.manifold.start_frames)
    extra = property(lambda self: self.manifold.extra)
    config = property(lambda self: self.manifold.config)
    dataset_fingerprint = property(lambda self: self.manifold.dataset_fingerprint)
    num_styles = property(lambda self: int(getattr(self.manifold, "num_styles", 0) or 0))
    style_names = property(lambda self: list(getattr(self.manifold, "style_names", []) or []))
    start_styles = property(lambda self: getattr(self.manifold, "start_styles", None))
    contacts = property(lambda self: getattr(self.manifold, "contacts", None))

    def contact_probabilities(self, latent, cond_raw, style=None) -> torch.Tensor | None:
        """(B, F) the foot contact channels of the frame ``step`` predicts from the same inputs (the torch manifold's
        small head, :mod:`vae.contacts`); None without contact channels."""
        if self.contacts is None:
            return None
        return self.manifold.contact_probabilities(torch.as_tensor(latent, device=self.manifold.device),
                                                   torch.as_tensor(cond_raw, device=self.manifold.device),
                                                   style=style).to(self.device)

    def _style_weights(self, style, batch: int) -> np.ndarray:
        """(B, S) float32 blend weights of ``style``: (B,) indices, (B, S) weights, or None (the average style)."""
        s = self.num_styles
        if style is None:
            return np.full((batch, s), 1.0 / s, dtype=np.float32)
        w = _numpy(style)
        if w.dtype.kind in "iu":
            # One character's call costs ~0.07 ms: numpy's min/max over a tiny array would add 5 us, a list does not.
            values = w.tolist() if w.size <= 8 else (int(w.min()), int(w.max())) if w.size else ()
            if w.shape != (batch,) or any(v < 0 or v >= s for v in values):
                raise ValueError(f"style indices must be ({batch},) integers in [0, {s}), got shape {w.shape}")
            if self._style_eye is None:
                self._style_eye = np.eye(s, dtype=np.float32)
            return self._style_eye[w]
        if w.shape != (batch, s):
            raise ValueError(f"style weights have shape {w.shape}; expected ({batch}, {s})")
        return np.ascontiguousarray(w, dtype=np.float32)

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.manifold.sample_prior(batch_size, generator=generator).to(self.device)

    def normalize(self, x) -> torch.Tensor:
        return self.manifold.normalize(torch.as_tensor(x, device=self.manifold.device)).to(self.device)

    def denormalize(self, x) -> torch.Tensor:
        return self.manifold.denormalize(torch.as_tensor(x, device=self.manifold.device)).to(self.device)

    # ---- timing -----------------------------------------------------------------------------------------
    @property
    def last_ms(self) -> float:
        """Milliseconds the last step/act/control call took."""
        return self._last.last_ms

    @property
    def mean_ms(self) -> float:
        """Running mean of the milliseconds of calls of the same kind as the last one."""
        return self._last.mean_ms

    def _timed(self, kind: str, start: float) -> None:
        self._last = self.meters[kind]
        self._last.since(start)

    def _need_policy(self, what: str) -> None:
        if not self.has_policy:
            raise RuntimeError(f"{what}() needs a policy: pass policy= (a policy checkpoint) to make_backend")

    def _cond_shape_error(self, shape) -> ValueError:
        c, d = self.num_condition_frames, self.frame_size
        return ValueError(f"step: condition frames have shape {tuple(shape)}; expected (B, {c}, {d}) or "
                          f"(B, {c * d}) (num_condition_frames={c}, frame_size={d})")

    @property
    def summary(self) -> str:
        """What runs the inference, for a HUD or a log line: "onnx on CPUExecutionProvider[, int8 weights]"."""
        note = PRECISION_NOTES.get(self.precision)
        return f"{self.name} on {self.provider}" + (f", {note}" if note else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, provider={self.provider!r}, precision={self.precision!r})"


# ---- ONNX Runtime -----------------------------------------------------------------------------------------
def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        try:
            return x.numpy()  # a CPU tensor without autograd: its memory, no copy (the common case, one call)
        except (RuntimeError, TypeError):
            return x.detach().cpu().numpy()
    return np.asarray(x)


def _float32(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it already is C-contiguous float32 (ONNX Runtime then reads it in place), else a copy."""
    return a if a.dtype == np.float32 and a.flags.c_contiguous else np.ascontiguousarray(a, dtype=np.float32)


BATCH_THREADS_MIN = 64  # from this batch size a CPU call runs on the batch sessions (``batch_threads``, vectorised ELU)
MAX_BOUND_RUNS = 16  # (graph, batch size) pairs whose IO bindings a backend keeps; beyond, it starts afresh


def vectorised_elu(model):
    """The ONNX ``model`` (a ModelProto, changed in place and returned) with every ``Elu`` written as
    ``Relu(x) + alpha * (Exp(Min(x, 0)) - 1)``.

    ONNX Runtime's CPU Elu is scalar (1.8 ms per (1000, 256) layer) where its Exp runs vectorised: measured on the
    shipped character's decoder, one thread, in turns: 24.9 -> 22.2 ms at B = 1000, 6.3 -> 5.6 ms at B = 256. At
    batch 1 the four extra nodes per Elu cost more than they save (+8 us of 0.11 ms), so only the big-batch sessions
    run this form. Exp(x) - 1 is not expm1: the frames move by a few 1e-6 at most.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(node.op_type == "Elu" and node.domain in ("", "ai.onnx") for node in graph.node):
        return model  # no constants to add (ONNX Runtime warns about unused ones)
    zero, one = "vectorised_elu/zero", "vectorised_elu/one"
    graph.initializer.extend([numpy_helper.from_array(np.array(0.0, np.float32), zero),
                              numpy_helper.from_array(np.array(1.0, np.float32), one)])
    nodes = []
    for node in graph.node:
        if node.op_type != "Elu" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        alpha = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "alpha"), 1.0)
        x, y, tag = node.input[0], node.output[0], f"vectorised_elu/{node.output[0]}"
        negative = [helper.make_node("Min", [x, zero], [f"{tag}/min"]),
                    helper.make_node("Exp", [f"{tag}/min"], [f"{tag}/exp"]),
                    helper.make_node("Sub", [f"{tag}/exp", one], [f"{tag}/expm1"])]
        if alpha != 1.0:
            scale = f"{tag}/alpha"
            graph.initializer.append(numpy_helper.from_array(np.array(alpha, np.float32), scale))
            negative.append(helper.make_node("Mul", [f"{tag}/expm1", scale], [f"{tag}/scaled"]))
        nodes += [helper.make_node("Relu", [x], [f"{tag}/relu"]), *negative,
                  helper.make_node("Add", [f"{tag}/relu", negative[-1].output[0]], [y])]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


class _BoundRun:
    """One graph at one batch size on the CPU through ONNX Runtime's IO binding: inputs are copied into arrays bound
    once and outputs written into arrays bound once, so a run neither looks up names nor allocates (at batch 1 the
    plain ``run`` spends ~10 % of its time on that). Outputs are returned as copied tensors: the caller may keep them."""

    def __init__(self, session, feed: dict[str, np.ndarray], names: list[str], outputs: list[np.ndarray]):
        self.session = session
        self.binding = session.io_binding()
        self.inputs = {name: np.empty_like(a) for name, a in feed.items()}
        for name, buffer in self.inputs.items():
            self.binding.bind_cpu_input(name, buffer)
        self.outputs = [np.empty_like(o) for o in outputs]
        for name, buffer in zip(names, self.outputs, strict=True):
            self.binding.bind_output(name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data)

    def run(self, feed: dict[str, np.ndarray]) -> list[torch.Tensor]:
        for name, a in feed.items():
            self.inputs[name][...] = a  # shapes and dtypes were checked by the backend
        self.session.run_with_iobinding(self.binding)
        return [torch.from_numpy(o.copy()) for o in self.outputs]  # numpy's copy: cheaper than a torch clone


def _device_for(precision: str, device: str) -> str:
    """The ONNX device a ``precision`` runs on: int8 on the CPU (ONNX Runtime's 8-bit matmul kernel is a CPU one)."""
    if precision != "int8":
        return device
    if device == "cuda":
        raise ValueError("precision='int8' runs on ONNX Runtime's CPU provider only; pass device='cpu' (or 'auto'), "
                         "or precision='fp32' on the GPU")
    from controller.quantize import check_runtime

    check_runtime()
    return "cpu"


class OnnxBackend(_ManifoldFacade):
    """ONNX Runtime sessions on an export folder (see ``controller.export``)."""

    name = "onnx"

    def __init__(self, manifold, export_dir, *, use_policy: bool = False, device: str = "auto",
                 threads: int = DEFAULT_THREADS, batch_threads: int | None = None,
                 handle: cache.ExportHandle | None = None, precision: str = "fp32"):
        if precision not in ("fp32", "int8"):
            raise ValueError(f"the ONNX backend runs precision 'fp32' or 'int8', got {precision!r}")
        device = _device_for(precision, device)
        self.precision = precision
        self.export_dir = Path(export_dir)
        self._handle = handle  # keeps a temporary export folder alive as long as the backend
        manifest = exporter.read_manifest(self.export_dir)
        if manifest is None:
            raise FileNotFoundError(f"{self.export_dir}: no {exporter.MANIFEST} of a complete export; run "
                                    "`python -m controller.export --vae CKPT --out DIR`")
        if use_policy and "policy" not in manifest["files"]:
            raise ValueError(f"{self.export_dir}: exported without a policy; re-export with --policy")
        super().__init__(manifold, manifest["action_scale"] if use_policy else None, use_policy)
        self.manifest = manifest
        self.threads = threads
        # Batch-1 latency wants one thread (a second one only spins); a crowd's batch is throughput and takes every
        # core. Those sessions are opened on the first big call, and their idle threads sleep instead of spinning
        # (a spinning thread would take the core from the app's drawing between two steps).
        self.batch_threads = max(threads, os.cpu_count() or 1) if batch_threads is None else int(batch_threads)
        if self.batch_threads < 1:
            raise ValueError(f"batch_threads must be a positive integer, got {batch_threads!r}")
        self._batch_sessions: dict = {}
        self._decoder = self._open("decoder", device, threads)
        self.provider = self._decoder.get_providers()[0]
        self._latent_name = manifest["latent_input"]
        self._policy = self._fused = None
        if use_policy:
            self._policy = self._open("policy", device, threads)
            self._fused = self._open("controller", device, threads)
        timing = manifest.get("timing") or {}
        self.fused_choice = {int(k[1:]): v == "fused" for k, v in (timing.get("choice") or {}).items()}
        self._scale = None if self.action_scale is None else np.float32(self.action_scale)
        # A call costs ~0.1 ms at one character, so the sizes it checks are read once here, not from the manifold
        # (a torch module) on every call, and every run names its outputs (ONNX Runtime then skips looking them up).
        self._c, self._d = int(manifold.num_condition_frames), int(manifold.frame_size)
        self._z, self._discrete, self._styled = int(manifold.latent_size), bool(manifold.discrete), self.num_styles > 0
        self._obs_size = manifest["policy"]["obs_size"] if use_policy else None
        self._sessions = {name: session for name, session in (("decoder", self._decoder), ("policy", self._policy),
                                                               ("controller", self._fused)) if session is not None}
        self._outputs = {name: [o.name for o in session.get_outputs()] for name, session in self._sessions.items()}
        # IO bindings per (graph, batch size), CPU provider only (on CUDA a bound CPU array would add copies). The
        # bound arrays are shared: a call that finds the lock taken (another thread mid-call) runs unbound.
        self._bind = self.provider == "CPUExecutionProvider"
        self._bound: dict[tuple[str, int], _BoundRun] = {}
        self._bound_lock = threading.Lock()

    def _graph(self, graph: str, big_batch: bool = False):
        """``graph``'s ONNX model as this backend runs it: int8 weights for ``precision="int8"``, the vectorised ELU
        for big batches (None: the file as exported)."""
        if self.precision == "fp32" and not big_batch:
            return None
        import onnx

        model = onnx.load(str(self.export_dir / self.manifest["files"][graph]))
        if self.precision == "int8":
            from controller.quantize import int8_weights

            model, _ = int8_weights(model)
        return vectorised_elu(model) if big_batch else model

    def _open(self, graph: str, device: str, threads: int):
        model = self._graph(graph)
        if model is None:
            return open_session(self.export_dir / self.manifest["files"][graph], device, threads)
        import onnxruntime

        return onnxruntime.InferenceSession(model.SerializeToString(), sess_options=session_options(threads),
                                            providers=[CPU])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def fused_choice(self) -> dict[int, bool]:
        """{batch size: the fused graph was faster} as the export measured it (``uses_fused`` follows it)."""
        return self._fused_choice

    @fused_choice.setter
    def fused_choice(self, choice: dict[int, bool]) -> None:
        self._fused_choice = dict(choice)
        self._fused_at: dict[int, bool] = {}  # uses_fused per batch size seen

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> list[torch.Tensor]:
        """``graph``'s outputs (CPU tensors the caller owns) for ``feed`` (checked arrays with a leading batch
        dimension), through an IO binding where possible."""
        batch = next(iter(feed.values())).shape[0]
        if not self._bind or not self._bound_lock.acquire(blocking=False):
            return [torch.from_numpy(o) for o in self._session(graph, batch).run(self._outputs[graph], feed)]
        try:
            key = (graph, batch)
            bound = self._bound.get(key)
            if bound is not None:  # the common case first: a batch-1 call is ~60 us, each step here counts
                return bound.run(feed)
            session = self._session(graph, batch)
            out = session.run(self._outputs[graph], feed)
            if len(self._bound) >= MAX_BOUND_RUNS:
                self._bound.clear()
            self._bound[key] = _BoundRun(session, feed, self._outputs[graph], out)
            return [torch.from_numpy(o) for o in out]  # fresh arrays from ONNX Runtime: safe to keep
        finally:
            self._bound_lock.release()

    def _session(self, graph: str, batch: int):
        """The session of ``graph`` for a call of ``batch`` rows: for big CPU batches ``batch_threads`` threads and
        the graph with :func:`vectorised_elu`."""
        if batch < BATCH_THREADS_MIN or not self._bind:
            return self._sessions[graph]
        session = self._batch_sessions.get(graph)
        if session is None:
            import onnxruntime

            options = session_options(self.batch_threads)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            model = self._graph(graph, big_batch=True)
            session = onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options, providers=[CPU])
            self._batch_sessions[graph] = session
        return session

    def _cond(self, cond_raw) -> np.ndarray:
        cond = _numpy(cond_raw)
        c, d = self._c, self._d
        if cond.ndim == 3 and cond.shape[1:] == (c, d):
            cond = cond.reshape(cond.shape[0], c * d)  # (B, C*D)
        elif not (cond.ndim == 2 and cond.shape[1] == c * d):
            raise self._cond_shape_error(cond.shape)
        return _float32(cond)

    def _latent(self, action, batch: int) -> np.ndarray:
        a = _numpy(action)
        if self._discrete:
            if a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            if a.ndim != 1 or a.dtype.kind not in "iu" or a.shape[0] != batch:
                raise ValueError(f"action has shape {a.shape} and dtype {a.dtype}; a VQ manifold takes ({batch},) "
                                 f"integer code indices in [0, {self.num_codes})")
            if a.size and (a.min() < 0 or a.max() >= self.num_codes):
                raise ValueError(f"code index out of range [0, {self.num_codes}): got {a.min()}..{a.max()}")
            return np.ascontiguousarray(a, dtype=np.int64)
        if a.ndim != 2 or a.shape != (batch, self._z):
            raise ValueError(f"action has shape {a.shape}; expected ({batch}, {self._z}) latents")
        return _float32(a)

    def _obs(self, obs_raw) -> np.ndarray:
        obs = _numpy(obs_raw)
        size = self._obs_size
        if obs.ndim != 2 or obs.shape[1] != size:
            raise ValueError(f"observations have shape {obs.shape}; the policy takes (B, {size})")
        return _float32(obs)

    def _styles(self, style, batch: int) -> dict:
        """The graphs' ``style`` input for a model with styles (else nothing)."""
        return {"style": self._style_weights(style, batch)} if self._styled else {}

    def step(self, action, cond_raw, style=None) -> torch.Tensor:
        """(B, Z) latents or (B,) codes, (B, C, D) raw condition[, style] -> (B, D) raw next frame (CPU float32)."""
        start = time.perf_counter()
        cond = self._cond(cond_raw)
        latent = self._latent(action, cond.shape[0])
        feed = {self._latent_name: latent, "cond_raw": cond, **self._styles(style, cond.shape[0])}
        out = self._run("decoder", feed)[0]
        self._timed("step", start)
        return out

    def act(self, obs_raw) -> torch.Tensor:
        """(B, O) raw observations -> (B, A) actions in [-1, 1] (Gaussian) or (B,) int64 codes."""
        self._need_policy("act")
        start = time.perf_counter()
        out = self._run("policy", {"obs_raw": self._obs(obs_raw)})[0]
        self._timed("act", start)
        return out

    def uses_fused(self, batch: int) -> bool:
        """Whether ``control`` runs controller.onnx at this batch size: the export's faster choice at the
        measured batch size nearest (in ratio) to ``batch``; fused when nothing was measured."""
        if not self.fused_choice:
            return True
        choice = self._fused_at.get(batch)
        if choice is None:
            nearest = min(self.fused_choice, key=lambda b: abs(math.log(b) - math.log(max(batch, 1))))
            choice = self._fused_at[batch] = self.fused_choice[nearest]
        return choice

    def control(self, obs_raw, cond_raw, style=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy and decoder in one call: -> (next_raw (B, D), action); the latent is action * action_scale."""
        self._need_policy("control")
        start = time.perf_counter()
        obs, cond = self._obs(obs_raw), self._cond(cond_raw)
        batch = obs.shape[0]
        if batch != cond.shape[0]:
            raise ValueError(f"control: {batch} observations but {cond.shape[0]} condition windows")
        styles = self._styles(style, batch)
        if self.uses_fused(batch):
            nxt, action = self._run("controller", {"obs_raw": obs, "cond_raw": cond, **styles})
        else:
            action = self._run("policy", {"obs_raw": obs})[0]
            latent = action.numpy() if self._scale is None else action.numpy() * self._scale
            nxt = self._run("decoder", {self._latent_name: latent, "cond_raw": cond, **styles})[0]
        self._timed("control", start)
        return nxt, action


# ---- torch ------------------------------------------------------------------------------------------------
class TorchBackend(_ManifoldFacade):
    """The torch modules, under ``torch.no_grad`` (the plain fallback, and the GPU path without onnxruntime-gpu);
    ``precision="bf16"``: steps run a copy of the manifold with its decoder in bfloat16 (:mod:`controller.bfloat16`),
    while ``.manifold`` stays the model given (its attributes and weights, which policies are checked against)."""

    name = "torch"

    def __init__(self, manifold, policy=None, action_scale: float | None = None, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"the torch backend runs precision 'fp32' or 'bf16', got {precision!r}")
        self._stepper = manifold  # what steps: the manifold, or its copy with a bfloat16 decoder
        if precision == "bf16":
            from controller.bfloat16 import bfloat16_manifold, check_supported

            check_supported(manifold.device)
            self._stepper = bfloat16_manifold(manifold)
        super().__init__(manifold, action_scale, policy is not None)
        self.precision = precision
        self.policy = policy
        self.provider = f"torch-{manifold.device.type}"

    @property
    def device(self) -> torch.device:
        return self.manifold.device

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the measured time is the real one

    def _obs(self, obs_raw) -> torch.Tensor:
        obs = torch.as_tensor(obs_raw, dtype=torch.float32, device=self.device)
        size = getattr(self.policy, "obs_size", None)
        if obs.dim() != 2 or (size is not None and obs.shape[1] != size):
            raise ValueError(f"observations have shape {tuple(obs.shape)}; the policy takes (B, {size})")
        return obs

    @torch.no_grad()
    def step(self, action, cond_raw, style=None) -> torch.Tensor:
        start = time.perf_counter()
        cond = torch.as_tensor(cond_raw, dtype=torch.float32, device=self.device)
        if cond.dim() not in (2, 3):
            raise self._cond_shape_error(cond.shape)
        out = self._stepper.step(action, cond, style=style)
        self._sync()
        self._timed("step", start)
        return out

    @torch.no_grad()
    def act(self, obs_raw) -> torch.Tensor:
        self._need_policy("act")
        start = time.perf_counter()
        out = self.policy(self._obs(obs_raw))
        self._sync()
        self._timed("act", start)
        return out

    @torch.no_grad()
    def control(self, obs_raw, cond_raw, style=None) -> tuple[torch.Tensor, torch.Tensor]:
        self._need_policy("control")
        start = time.perf_counter()
        action = self.policy(self._obs(obs_raw))
        latent = action if self.action_scale is None else action * self.action_scale
        cond = torch.as_tensor(cond_raw, dtype=torch.float32, device=self.device)
        nxt = self._stepper.step(latent, cond, style=style)
        self._sync()
        self._timed("control", start)
        return nxt, action


# ---- choosing one -----------------------------------------------------------------------------------------
def _is_path(x) -> bool:
    return isinstance(x, (str, Path)) or hasattr(x, "__fspath__")


def _export_folder(vae, policy, vae_src, pol_src, action_scale, export_dir) -> cache.ExportHandle:
    """The folder whose graphs the ONNX backend runs (see the module docstring)."""
    if export_dir is not None:
        export_dir = Path(export_dir)
        manifest = exporter.read_manifest(export_dir)
        if manifest is None:
            exporter.export_onnx(vae, export_dir, policy, action_scale=action_scale)
            return cache.ExportHandle(export_dir)
        recorded = manifest["sources"]
        problems = []
        if recorded["vae"]["weights_sha256"] != vae_src.weights:
            problems.append(f"vae weights {recorded['vae']['weights_sha256']} != {vae_src.weights}")
        if pol_src is not None:
            if not recorded.get("policy"):
                problems.append("it was exported without a policy")
            elif recorded["policy"]["weights_sha256"] != pol_src.weights:
                problems.append(f"policy weights {recorded['policy']['weights_sha256']} != {pol_src.weights}")
            if action_scale is not None and manifest["action_scale"] != float(action_scale):
                problems.append(f"action_scale {manifest['action_scale']} != {action_scale}")
        if problems:
            raise ValueError(f"export_dir {export_dir} holds graphs of other models ({'; '.join(problems)}); "
                             "re-export with `python -m controller.export --vae CKPT [--policy POLICY] --out "
                             f"{export_dir}`, or pass no export_dir to use the cache")
        return cache.ExportHandle(export_dir, reused=True)
    if _is_path(vae) and (policy is None or _is_path(policy)):
        return cache.cached_export(vae, policy, action_scale)
    return cache.temporary_export(vae_src.module, None if pol_src is None else pol_src.module, action_scale)


def torch_device(device: str) -> str:
    """The device the torch backend runs on for ``device`` ("auto" | "cpu" | "cuda"): CUDA unless told "cpu" or
    torch sees no GPU."""
    return "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"


def make_backend(vae, policy=None, backend: str = "auto", device: str = "auto", export_dir=None, *,
                 action_scale: float | None = None, threads: int = DEFAULT_THREADS, batch_threads: int | None = None,
                 prior=None, precision: str = "fp32", verbose: bool = True):
    """A manifold stand-in (and policy runner) on the fastest available inference path.

    ``vae``: checkpoint path or manifold; ``policy``: checkpoint path or policy module (optional); ``prior``: a VQ
    model's code prior (file or CodePrior; optional, ``backend.code_prior``);
    ``backend``: "auto" | "onnx" | "torch"; ``device``: "auto" | "cpu" | "cuda"; ``export_dir``: folder of
    exported graphs (ONNX backend); ``threads``: ONNX Runtime intra-op threads on the CPU; ``batch_threads``: those
    of calls of ``BATCH_THREADS_MIN`` rows or more (default: every CPU); ``precision``: "fp32" | "int8" (8-bit
    weights, ONNX backend on the CPU) | "bf16" (the decoder in bfloat16, torch backend; module docstring).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if backend == "auto":
        backend = "onnx" if onnxruntime_available() and precision != "bf16" else "torch"
        if backend == "torch" and precision != "bf16":
            log.info("onnxruntime is not installed: using the torch backend")

    if backend == "torch" and precision == "int8":
        raise ValueError("precision='int8' needs the ONNX backend (backend='onnx' or 'auto' with onnxruntime "
                         "installed); the torch backend runs float32 or bf16")
    if backend == "onnx" and precision == "bf16":
        raise ValueError("precision='bf16' runs torch's bfloat16 kernels (ONNX Runtime has none for x86 matmuls): "
                         "pass backend='torch' or 'auto'")
    if backend == "torch":
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device='cuda' but torch sees no GPU (a CPU build of torch, or no CUDA device); "
                               "use device='cpu'")
        where = torch_device(device)
        vae_src = resolve_vae(vae, where)
        manifold = vae_src.module
        if not _is_path(vae) and device != "auto" and manifold.device.type != where:
            raise ValueError(f"the manifold lives on {manifold.device} but device={device!r} was asked; move it "
                             "first or pass the checkpoint path")
        pol, scale = None, None
        if policy is not None:
            pol_src, scale = resolve_policy(policy, manifold, action_scale, device=manifold.device)
            pol = pol_src.module.to(manifold.device)
        result = TorchBackend(manifold, pol, scale, precision=precision)
        where_from = "torch modules" + (", bf16 decoder" if precision == "bf16" else "")
    else:
        device = _device_for(precision, device)
        providers_for(device)  # a missing CUDA provider is reported before any export work
        vae_src = resolve_vae(vae, "cpu")
        pol_src = None
        if policy is not None:
            pol_src, _ = resolve_policy(policy, vae_src.module, action_scale)
        handle = _export_folder(vae, policy, vae_src, pol_src, action_scale, export_dir)
        result = OnnxBackend(vae_src.module, handle.path, use_policy=policy is not None, device=device,
                             threads=threads, batch_threads=batch_threads, handle=handle, precision=precision)
        where_from = f"graphs in {handle.path} ({'reused' if handle.reused else 'exported'})"
        if precision == "int8":
            where_from += ", int8 weights"
    if prior is not None:
        from controller.prior_session import make_code_prior

        result.code_prior = make_code_prior(prior, vae, result.name, device, threads=threads, manifold=result.manifold)
        where_from += f"; code prior on {getattr(result.code_prior, 'provider', result.provider)}"
    message = f"controller: {result.name} backend on {result.provider}; {where_from}"
    log.info(message)
    if verbose:
        print(message, flush=True)
    return result


__all__ = ["BACKENDS", "PRECISIONS", "OnnxBackend", "TorchBackend", "make_backend", "torch_device"]
