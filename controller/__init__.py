"""ONNX export and runtime inference for the Motion VAE controller.

Public API: ``export_onnx`` (``python -m controller.export``: decoder / policy / fused controller graphs plus a
manifest), ``make_backend`` (ONNX Runtime or torch inference standing in for the manifold, with timing for a
HUD), ``OnnxBackend``, ``TorchBackend``, ``LatencyMeter``, and for a VQ model's code prior ``make_code_prior`` /
``OnnxCodePrior`` (its rollout step on ONNX Runtime, what the environments take as ``code_prior``).

The names are imported on first use, so ``python -m controller.export`` does not import its own module twice.
"""

from importlib import import_module

_HOMES = {"export_onnx": "controller.export", "make_backend": "controller.runtime",
          "OnnxBackend": "controller.runtime", "TorchBackend": "controller.runtime",
          "LatencyMeter": "controller.latency", "make_code_prior": "controller.prior_session",
          "OnnxCodePrior": "controller.prior_session"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'controller' has no attribute {name!r}")
