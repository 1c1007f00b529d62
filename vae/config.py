"""VAEConfig: the architecture of a motion manifold, and nothing about how it is trained.

It is stored in every checkpoint as a plain dict (``to_dict``), so a checkpoint loads with
``torch.load(weights_only=True)`` and rebuilds the same model (``vae.checkpoint.build_model``).
Training settings (learning rate, epochs, KL weight, scheduled sampling) belong to the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODELS = ("mixture", "vae", "vq")


@dataclass(frozen=True)
class VAEConfig:
    model: str = "mixture"
    """Which manifold: "mixture" (PoseMixtureVAE, the paper's model), "vae" (PoseVAE baseline) or "vq" (PoseVQVAE)."""

    frame_size: int = 267
    """D, floats per frame (3 + 12 J, see mocap.pose_layout); 267 for the original 22-joint MVAE data."""

    num_condition_frames: int = 1
    """C, past frames the decoder is conditioned on."""

    num_future_predictions: int = 1
    """F, future frames predicted at once; environments use the first one."""

    latent_size: int = 32
    """Z, size of the latent vector (Gaussian) or of a code vector (VQ)."""

    hidden_size: int = 256
    """Width of the encoder and decoder (each expert) hidden layers."""

    num_experts: int = 6
    """Experts of the mixture-of-experts decoder ("mixture" and "vq")."""

    gate_hidden_size: int = 64
    """Width of the two hidden layers of the gating network."""

    num_codes: int = 512
    """K, codebook size ("vq" only)."""

    vq_beta: float = 0.25
    """Weight of the commitment loss ||z_e - sg(code)||^2 ("vq" only)."""

    ema_decay: float = 0.99
    """Decay of the EMA codebook statistics ("vq" only)."""

    num_styles: int = 0
    """S, motion styles the model is conditioned on (0: none, the paper's model). A style enters as a learned
    embedding next to z in every decoder layer and the gate, and next to the condition in the encoder."""

    style_size: int = 8
    """Size of a style's embedding (with num_styles > 0)."""

    vq_reset_threshold: float = 1.0
    """A code whose EMA use count (uses per batch) falls below this is dead and re-initialised from a random
    encoder output of the batch ("vq" only). At most (vectors per batch) / threshold codes stay alive, so
    train with batches of at least K frames or lower this."""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"VAEConfig.model is {self.model!r}; choose one of {', '.join(MODELS)}")
        for name in ("frame_size", "num_condition_frames", "num_future_predictions", "latent_size",
                     "hidden_size", "num_experts", "gate_hidden_size", "num_codes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VAEConfig.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"VAEConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.vq_beta < 0 or self.vq_reset_threshold < 0:
            raise ValueError("VAEConfig.vq_beta and vq_reset_threshold must be >= 0")
        for name in ("num_styles", "style_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"VAEConfig.{name} must be an integer >= 0, got {value!r}")

    @property
    def style_input_size(self) -> int:
        """Floats a style adds to the decoder's latent input and the encoder's condition (0 without styles)."""
        return self.style_size if self.num_styles > 0 else 0

    @property
    def decoder_latent_size(self) -> int:
        """What every decoder layer and the gate see of "z": the latent, then the style's embedding."""
        return self.latent_size + self.style_input_size

    def to_dict(self) -> dict:
        """Plain Python types only (safe in a ``weights_only`` checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown VAEConfig fields {unknown}: the checkpoint was written by a newer version; "
                "update the code or retrain"
            )
        return cls(**d)
