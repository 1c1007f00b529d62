"""MotionManifold: what every Motion VAE offers the trainer, the environments and the app.

A manifold predicts the next frame(s) from the C previous ones and a latent (Ling et al. 2020)::

    encode(next_norm (B, F*D), cond_norm (B, C*D), style=None) -> dict with "z" (B, Z) and model-specific terms
    decode(z (B, Z), cond_norm (B, C*D), style=None)          -> next_norm (B, F*D)
    forward(next_norm, cond_norm, style=None)                  -> (recon (B, F*D), encode dict)
    sample_prior(B, generator=None)                            -> (B, Z) float (Gaussian) | (B,) long codes (VQ)
    latent_from_action(a)                                      -> (B, Z) decoder latent for a policy action
    step(action, cond_raw (B, C, D), style=None)               -> next_raw (B, D): the raw-frame convenience

``style`` (models with ``num_styles`` S > 0): (B,) long style indices, or (B, S) float weights that blend the
styles' embeddings (a style switch fades in this way); None is the average style. Models without styles ignore
it.

``*_norm`` tensors are normalised with the dataset statistics held in the ``data_mean`` / ``data_std``
buffers; ``*_raw`` ones are frames as stored in the dataset (layout: mocap.pose_layout). Several frames
are flattened frame after frame: (B, C, D) -> (B, C*D), oldest condition frame first.

This module also holds the pieces shared by the concrete models: the encoder MLP and the Gaussian
latent (reparameterisation, KL, standard-normal prior).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vae.config import VAEConfig
from vae.contacts import contact_probabilities

STD_EPS = 1e-6


class MotionManifold(nn.Module):
    """Base class: normalisation buffers, ``forward`` and the raw-frame ``step``."""

    discrete: bool = False

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.frame_size = config.frame_size
        self.latent_size = config.latent_size
        self.num_condition_frames = config.num_condition_frames
        self.num_future_predictions = config.num_future_predictions
        self.num_codes: int | None = None
        self.register_buffer("data_mean", torch.zeros(config.frame_size))
        self.register_buffer("data_std", torch.ones(config.frame_size))
        self.num_styles = config.num_styles
        # Only with styles: a style-less model's state_dict (and its weights fingerprint) stays what it was.
        self.style_embedding = nn.Embedding(config.num_styles, config.style_size) if config.num_styles else None
        self.style_names: list[str] = []  # set by vae.checkpoint.load_manifold
        # Set by vae.checkpoint.load_manifold: the data this model was trained on.
        self.skeleton = None
        self.fps: float | None = None
        self.dataset_fingerprint: str | None = None
        self.extra: dict = {}
        self.contacts = None  # the foot contact channels (vae.contacts.ContactHead), set by set_contacts

    def set_contacts(self, head) -> None:
        """Attach foot contact channels (:class:`vae.contacts.ContactHead`, or None to drop them). Not a submodule:
        the state_dict, and so the weights fingerprint policies and code priors check, stays the motion's, which the
        contact channels do not change."""
        self.__dict__["contacts"] = head

    def contact_probabilities(self, latent, cond_raw: torch.Tensor, style=None) -> torch.Tensor | None:
        """(B, F) contact probability of each foot joint of the contact channels in the frame ``step(latent,
        cond_raw, style)`` predicts; None without contact channels (:func:`vae.contacts.contact_probabilities`)."""
        return contact_probabilities(self, latent, cond_raw, style)

    @property
    def start_frames(self) -> torch.Tensor | None:
        """(S, C, D) raw condition windows from the training data, where environments start
        characters; stored by the trainer in the checkpoint's extra["start_frames"]."""
        frames = self.extra.get("start_frames")
        return None if frames is None else torch.as_tensor(frames, dtype=torch.float32)

    @property
    def start_styles(self) -> torch.Tensor | None:
        """(S,) the style of each start window (models with styles; ``extra["start_styles"]``)."""
        styles = self.extra.get("start_styles")
        return None if styles is None else torch.as_tensor(styles, dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return self.data_mean.device

    # ---- styles -------------------------------------------------------------------------------------------
    def style_weights(self, style, batch: int) -> torch.Tensor:
        """(B, S) blending weights of a ``style`` (see the module docstring); None -> the average style."""
        s = self.num_styles
        if style is None:
            return torch.full((batch, s), 1.0 / s, device=self.device, dtype=self.data_mean.dtype)
        style = torch.as_tensor(style, device=self.device)
        if style.dtype.is_floating_point:
            if not torch.jit.is_tracing() and tuple(style.shape) != (batch, s):  # traced: the graph's input
                raise ValueError(f"style weights have shape {tuple(style.shape)}; expected ({batch}, {s})")
            return style.to(self.data_mean.dtype)
        if tuple(style.shape) != (batch,) or (style.numel() and (int(style.min()) < 0 or int(style.max()) >= s)):
            raise ValueError(f"style indices must be ({batch},) integers in [0, {s}), got shape {tuple(style.shape)}")
        return F.one_hot(style.long(), s).to(self.data_mean.dtype)

    def with_style(self, x: torch.Tensor, style) -> torch.Tensor:
        """``x`` (B, n) followed by the style's embedding (B, n + E); ``x`` itself for a model without styles."""
        if self.style_embedding is None:
            return x
        embedding = self.style_weights(style, x.shape[0]) @ self.style_embedding.weight  # (B, E)
        return torch.cat((x, embedding), dim=1)

    # ---- normalisation -------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, mean, std) -> None:
        """Store per-feature statistics (D,). Features with std < 1e-6 get std 1 so they pass through."""
        mean = torch.as_tensor(mean, dtype=self.data_mean.dtype).reshape(-1)
        std = torch.as_tensor(std, dtype=self.data_std.dtype).reshape(-1)
        if mean.numel() != self.frame_size or std.numel() != self.frame_size:
            raise ValueError(
                f"normalisation statistics have {mean.numel()} / {std.numel()} features; the model expects "
                f"frame_size={self.frame_size}"
            )
        self.data_mean.copy_(mean)
        self.data_std.copy_(torch.where(std < STD_EPS, torch.ones_like(std), std))

    def _per_frame(self, x: torch.Tensor, fn) -> torch.Tensor:
        d = self.frame_size
        if x.shape[-1] % d != 0:
            raise ValueError(f"last dimension {x.shape[-1]} is not a multiple of frame_size={d}")
        frames = x.reshape(*x.shape[:-1], x.shape[-1] // d, d)  # (..., k, D)
        return fn(frames).reshape(x.shape)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., k*D) raw frames -> normalised, k >= 1 frames flattened in the last dimension."""
        return self._per_frame(x, lambda f: (f - self.data_mean) / self.data_std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize``."""
        return self._per_frame(x, lambda f: f * self.data_std + self.data_mean)

    # ---- the manifold interface ----------------------------------------------------------------
    def encode(self, next_norm: torch.Tensor, cond_norm: torch.Tensor, style=None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        raise NotImplementedError

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def latent_from_action(self, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, next_norm: torch.Tensor, cond_norm: torch.Tensor, style=None) -> tuple[torch.Tensor, dict]:
        """Reconstruct the next frame(s): (recon_norm (B, F*D), encode dict)."""
        enc = self.encode(next_norm, cond_norm, style=style)
        return self.decode(enc["z"], cond_norm, style=style), enc

    def step(self, action, cond_raw, style=None) -> torch.Tensor:
        """One frame forward in raw units: (B, Z) latents or (B,) codes, (B, C, D) raw frames -> (B, D).

        Gradients are kept; envs and the app should call this under ``torch.no_grad()``.
        """
        c, d = self.num_condition_frames, self.frame_size
        cond_raw = torch.as_tensor(cond_raw, dtype=self.data_mean.dtype, device=self.device)
        if cond_raw.dim() == 3 and cond_raw.shape[1:] == (c, d):
            cond_raw = cond_raw.reshape(cond_raw.shape[0], c * d)  # (B, C*D)
        elif not (cond_raw.dim() == 2 and cond_raw.shape[1] == c * d):
            raise ValueError(
                f"step: condition frames have shape {tuple(cond_raw.shape)}; expected (B, {c}, {d}) "
                f"(num_condition_frames={c}, frame_size={d})"
            )
        z = self.latent_from_action(action)
        next_norm = self.decode(z, self.normalize(cond_raw), style=style)  # (B, F*D)
        return self.denormalize(next_norm[:, :d])  # first future frame, (B, D)


class MotionEncoder(nn.Module):
    """The MVAE encoder: ELU MLP over [next frames, condition], the next frames fed again to every later layer.

    As in the reference code, layers after the first see [next, h] (not the condition again); with D=267,
    Z=32 this is 0.30M parameters. ``out_size`` is 2Z for a Gaussian (mu, logvar) or Z for a VQ code vector.
    """

    def __init__(self, config: VAEConfig, out_size: int):
        super().__init__()
        next_size = config.num_future_predictions * config.frame_size
        cond_size = config.num_condition_frames * config.frame_size + config.style_input_size
        h = config.hidden_size
        self.fc1 = nn.Linear(next_size + cond_size, h)
        self.fc2 = nn.Linear(next_size + h, h)
        self.out = nn.Linear(next_size + h, out_size)

    def forward(self, next_norm: torch.Tensor, cond_norm: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.fc1(torch.cat((next_norm, cond_norm), dim=1)))
        h = F.elu(self.fc2(torch.cat((next_norm, h), dim=1)))
        return self.out(torch.cat((next_norm, h), dim=1))


class GaussianManifold(MotionManifold):
    """A manifold with a diagonal-Gaussian posterior and a standard-normal prior; subclasses set ``decoder``."""

    discrete = False

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.encoder = MotionEncoder(config, 2 * config.latent_size)

    def encode(self, next_norm: torch.Tensor, cond_norm: torch.Tensor, sample: bool = True,
               style=None) -> dict[str, torch.Tensor]:
        """z (B, Z) = mu + sigma * eps (or mu with ``sample=False``); kl (B,) = KL(q || N(0, I)) summed over Z."""
        mu, logvar = self.encoder(next_norm, self.with_style(cond_norm, style)).chunk(2, dim=1)  # (B, Z) each
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
        return {"z": z, "mu": mu, "logvar": logvar, "kl": kl}

    def decode(self, z: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        return self.decoder(self.with_style(z, style), cond_norm)

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, Z) standard normal, drawn on the generator's device then moved to the model's."""
        where = generator.device if generator is not None else self.device
        z = torch.randn(batch_size, self.latent_size, generator=generator, device=where, dtype=self.data_mean.dtype)
        return z.to(self.device)

    @property
    def latent_bound(self) -> float | None:
        """Per-dim bound of the latent the decoder is driven with (``extra["action_scale"]``, measured from the
        aggregate posterior: where the decoder was trained); None for models that record none."""
        value = self.extra.get("action_scale") if isinstance(self.extra, dict) else None
        return None if value is None else float(value)

    def latent_from_action(self, action: torch.Tensor) -> torch.Tensor:
        """The policy acts directly in latent space: (B, Z) -> (B, Z), clamped to +-``latent_bound`` when the model
        records one: a latent held beyond where the decoder was trained is what drives rollouts off the data."""
        action = torch.as_tensor(action, dtype=self.data_mean.dtype, device=self.device)
        if action.dim() != 2 or action.shape[1] != self.latent_size:
            raise ValueError(f"action has shape {tuple(action.shape)}; expected (B, {self.latent_size}) latents")
        bound = self.latent_bound
        return action if bound is None else action.clamp(-bound, bound)
