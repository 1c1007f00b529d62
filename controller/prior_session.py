"""A VQ model's code prior at runtime: the transformer's rollout step on ONNX Runtime, or its torch module.

    prior = make_code_prior("prior.pt", "vae.pt")              # ONNX Runtime when installed, else torch
    env = MotionVecEnv(n, task, backend, code_prior=prior)     # the environments keep its context
    logits = prior.step_logits(codes, cond_norm, style)        # (B, W') int64, (B, W', C*D) normalised -> (B, K)

:class:`OnnxCodePrior` stands in for :class:`vae.prior.CodePrior` wherever the environments take a ``code_prior``:
it has ``step_context`` (W'), ``context`` (W), ``num_codes`` (K), ``config`` (the prior's ``PriorConfig``, with
``pad_code``) and ``step_logits``, which runs ``prior_step.onnx`` (:func:`controller.export.export_prior_onnx`:
normalised windows in, as the environments keep them) on CPU tensors and returns CPU float32 logits. The graph comes
from the cache beside the prior file (:func:`controller.cache.cached_prior_export`), or from a temporary folder for
an in-memory prior. ``prior`` keeps the torch module, for the checks that need its weights
(``policies.checkpoint.check_prior_matches``); ``name``, ``provider``, ``last_ms`` and ``mean_ms`` describe it for a
HUD.

``make_code_prior(prior, vae, backend=...)`` makes either kind ("onnx", "torch", or "auto": ONNX Runtime when
installed); a prior of another VQ model, or any prior for a Gaussian one, is a ValueError naming the prior file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from common.fingerprint import file_fingerprint, weights_fingerprint
from controller import cache
from controller.export import read_prior_manifest
from controller.latency import LatencyMeter
from controller.sessions import DEFAULT_THREADS, onnxruntime_available, open_session
from controller.sources import Source, resolve_vae
from vae.prior import style_weights

BACKENDS = ("auto", "onnx", "torch")


def resolve_prior(prior, manifold) -> Source:
    """A prior file or a ``vae.prior.CodePrior`` -> Source (module in eval mode), checked to be ``manifold``'s."""
    from vae.prior import CodePrior, check_prior_fits, load_prior

    if isinstance(prior, (str, Path)):
        path = Path(prior)
        module = load_prior(path, manifold)
        return Source(module, path, file_fingerprint(path), weights_fingerprint(module))
    if not isinstance(prior, CodePrior):
        raise TypeError(f"prior= is a {type(prior).__name__}; pass a prior file (python -m vae.train_prior) or a "
                        "vae.prior.CodePrior")
    check_prior_fits(prior, manifold, "prior")
    return Source(prior.eval(), None, None, weights_fingerprint(prior))


class OnnxCodePrior:
    """One code prior step on ONNX Runtime (see the module docstring)."""

    name = "onnx"

    def __init__(self, export_dir, prior, *, device: str = "auto", threads: int = DEFAULT_THREADS,
                 handle: cache.ExportHandle | None = None):
        self.export_dir = Path(export_dir)
        self._handle = handle  # keeps a temporary export folder alive as long as the stand-in
        manifest = read_prior_manifest(self.export_dir)
        if manifest is None:
            raise FileNotFoundError(f"{self.export_dir}: no manifest.json of a complete code prior export; export it "
                                    "with controller.export.export_prior_onnx (or controller.cache)")
        self.manifest = manifest
        self.prior = prior
        self.config = prior.config
        self.step_context = int(manifest["step_context"])
        self.session = open_session(self.export_dir / manifest["files"]["prior_step"], device, threads)
        self.provider = self.session.get_providers()[0]
        self._styles = int(self.config.num_styles)
        self.meter = LatencyMeter()

    @property
    def context(self) -> int:
        return int(self.config.context)

    @property
    def num_codes(self) -> int:
        return int(self.config.num_codes)

    @property
    def last_ms(self) -> float:
        return self.meter.last_ms

    @property
    def mean_ms(self) -> float:
        return self.meter.mean_ms

    def _style(self, style, batch: int) -> np.ndarray:
        """(B, S) float32 blend weights of ``style`` (:func:`vae.prior.style_weights`: indices, weights or None)."""
        weights = style_weights(style, batch, self._styles, torch.empty(0)).cpu()  # (B, S)
        if tuple(weights.shape) != (batch, self._styles):
            raise ValueError(f"style weights have shape {tuple(weights.shape)}; expected ({batch}, {self._styles})")
        return np.ascontiguousarray(weights.numpy(), dtype=np.float32)

    def step_logits(self, codes, cond_norm, style=None) -> torch.Tensor:
        """(B, K) float32 logits of the next code from ``codes`` (B, W') and ``cond_norm`` (B, W', C*D)."""
        start = time.perf_counter()
        codes = torch.as_tensor(codes).detach().cpu().numpy()
        cond = torch.as_tensor(cond_norm).detach().cpu().numpy()
        w, cd = self.step_context, self.config.cond_size
        if codes.ndim != 2 or codes.shape[1] != w or tuple(cond.shape) != (codes.shape[0], w, cd):
            raise ValueError(f"step_logits: codes {tuple(codes.shape)} and cond_norm {tuple(cond.shape)}; the graph "
                             f"takes the last W' = {w} pairs: (B, {w}) and (B, {w}, {cd})")
        feed = {"codes": np.ascontiguousarray(codes, dtype=np.int64),
                "cond_norm": np.ascontiguousarray(cond, dtype=np.float32)}
        if self._styles:
            feed["style"] = self._style(style, codes.shape[0])
        logits = self.session.run(["logits"], feed)[0]
        self.meter.since(start)
        return torch.from_numpy(logits)

    def __repr__(self) -> str:
        return f"OnnxCodePrior(provider={self.provider!r}, step_context={self.step_context})"


def make_code_prior(prior, vae, backend: str = "auto", device: str = "auto", *, threads: int = DEFAULT_THREADS,
                    manifold=None):
    """The code ``prior`` (file or CodePrior) of the VQ model ``vae`` (checkpoint path or manifold) for the
    environments: an :class:`OnnxCodePrior` ("onnx"; "auto" when onnxruntime is installed) or the torch CodePrior on
    the manifold's device ("torch"). ``manifold``: the already loaded model of ``vae`` (skips loading it again)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "onnx" if onnxruntime_available() else "torch"
    model = manifold if manifold is not None else resolve_vae(vae).module
    src = resolve_prior(prior, model)
    if backend == "torch":
        return src.module.to(getattr(model, "device", "cpu"))
    if src.path is not None and isinstance(vae, (str, Path)):
        handle = cache.cached_prior_export(vae, src.path)
    else:
        handle = cache.temporary_prior_export(model, src.module)
    return OnnxCodePrior(handle.path, src.module, device=device, threads=threads, handle=handle)


__all__ = ["OnnxCodePrior", "make_code_prior", "resolve_prior"]
