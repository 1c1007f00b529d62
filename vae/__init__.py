"""Motion VAEs (Ling et al. 2020): the learned motion manifolds, their checkpoints, training and evaluation.

Public API: ``VAEConfig``; the models ``PoseMixtureVAE`` (the paper's), ``PoseVAE`` (baseline),
``PoseVQVAE`` (discrete latent), all ``MotionManifold``; ``build_model``, ``save_checkpoint``, ``load_manifold``.
"""

from vae.checkpoint import build_model, load_manifold, save_checkpoint
from vae.config import VAEConfig
from vae.manifold import MotionManifold
from vae.mixture_vae import PoseMixtureVAE
from vae.pose_vae import PoseVAE
from vae.vq_vae import PoseVQVAE

__all__ = [
    "VAEConfig",
    "MotionManifold",
    "PoseMixtureVAE",
    "PoseVAE",
    "PoseVQVAE",
    "build_model",
    "load_manifold",
    "save_checkpoint",
]
