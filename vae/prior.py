"""CodePrior: a small causal transformer over VQ motion codes, conditioned on the pose (and the style).

A PoseVQVAE moves a character one frame per code: from the current pose, code ``k`` decodes the next frame. A
uniform or frequency-weighted choice of codes ignores which codes follow which and which codes suit the current
pose; this prior learns both, so a character can walk on its own through codes the data would have used.

Shape vocabulary: B batch, T positions (T <= W), W the context window, E the embedding width, H attention heads,
K codes in the VQ codebook (as in vae.vq_vae), CD = C*D floats of one normalised condition window.

A context position holds a pair (code just taken, the condition window after it): position ``t`` is the code
that led to pose ``t`` and the pose it led to, and its logits are the distribution of the next code, taken at that
pose. A rollout starts with W copies of (PAD, the start pose) (:meth:`CodePrior.start_context`), where PAD = K
means "no code yet"; training windows that begin before a clip's start are padded the same way, so the first step
of a rollout is a case the prior was trained on. Every position sees itself and the positions before it only
(causal self-attention), so one forward pass over a window trains W next-code predictions (teacher forcing), and
one step of a rollout is the last position's logits (:meth:`CodePrior.step_logits`)::

    forward(codes (B, T) int64 in [0, K], cond_norm (B, T, CD), style=None) -> logits (B, T, K)
    step_logits(codes (B, T), cond_norm (B, T, CD), style=None)              -> logits (B, K) of the next code
    sample_next(codes, cond_norm, style=None, temperature=, top_k=, generator=) -> (B,) int64 next codes

Inputs: the code (K + 1 ids: the K codes and PAD) and position embeddings, plus the condition window projected to
E, all added; a model with styles adds the style's embedding (``style``: (B,) indices or (B, S) blend weights, None
the average style, as for the Motion VAE) to every position. Then pre-LayerNorm blocks of causal self-attention and
a 4x GELU MLP, nanoGPT style, a final LayerNorm and a linear head to K logits.

The file (``save_prior`` / ``load_prior``, ``torch.load(weights_only=True)``)::

    format      "mvae-prior"
    version     1
    config      PriorConfig.to_dict()
    state_dict  CodePrior.state_dict(), CPU tensors
    vae         {"dataset_fingerprint", "weights"}: the VQ model whose codes it predicts (common.fingerprint)
    style_names list of str (the VQ model's styles, [] without)
    extra       dict of plain types (trainer metadata: epoch, history, optimizer state ...)

Codes mean nothing outside their own codebook, so a prior refuses to drive any VQ model but its own
(:func:`check_prior_fits`).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.atomic import atomic_write
from common.fingerprint import weights_fingerprint

FORMAT = "mvae-prior"
VERSION = 1
TRAIN_HINT = "python -m vae.train_prior --vae VQ.pt --data DATA.npz --out PRIOR.pt"
IGNORE = -100  # target of a padding position: F.cross_entropy's default ignore_index
STEP_CONTEXT_TOLERANCE = 0.01  # nats per code a shorter rollout context may cost (vae.train_prior's choice)


@dataclass(frozen=True)
class PriorConfig:
    """The architecture of a CodePrior (stored in its file as a plain dict)."""

    num_codes: int
    """K, codes of the VQ codebook (the classes predicted); input id K is PAD."""

    cond_size: int
    """CD, floats of one normalised condition window (the VQ model's num_condition_frames * frame_size)."""

    num_styles: int = 0
    """S, the VQ model's styles (0: none)."""

    context: int = 16
    """W, the positions one step sees: the last W (code, pose) pairs."""

    embed_size: int = 128
    """E, the width of the embeddings and of every block."""

    num_layers: int = 3
    """Transformer blocks."""

    num_heads: int = 4
    """H, attention heads (E must be a multiple of H)."""

    dropout: float = 0.1
    """Dropout on the embeddings, the attention weights and the residual branches while training."""

    def __post_init__(self) -> None:
        for name in ("num_codes", "cond_size", "context", "embed_size", "num_layers", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PriorConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.num_styles, int) or self.num_styles < 0:
            raise ValueError(f"PriorConfig.num_styles must be an integer >= 0, got {self.num_styles!r}")
        if self.embed_size % self.num_heads:
            raise ValueError(f"PriorConfig.embed_size {self.embed_size} is not a multiple of num_heads "
                             f"{self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PriorConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def pad_code(self) -> int:
        """The input id of "no code yet" (padding before a clip's or a rollout's start)."""
        return self.num_codes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PriorConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown PriorConfig fields {unknown}: written by a newer version; update the code")
        return cls(**d)


def style_weights(style, batch: int, num_styles: int, like: torch.Tensor) -> torch.Tensor:
    """(B, S) blend weights of ``style``: (B,) indices, (B, S) weights, or None (the average style)."""
    if style is None:
        return torch.full((batch, num_styles), 1.0 / num_styles, dtype=like.dtype, device=like.device)
    style = torch.as_tensor(style, device=like.device)
    if style.dtype.is_floating_point:
        return style.to(like.dtype)
    return F.one_hot(style.long(), num_styles).to(like.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t only."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_size, 3 * config.embed_size)
        self.proj = nn.Linear(config.embed_size, config.embed_size)
        self.attn_drop = nn.Dropout(config.dropout)
        self.resid_drop = nn.Dropout(config.dropout)
        w = config.context
        # Not in the state_dict: it follows from the config.
        self.register_buffer("causal", torch.tril(torch.ones(w, w, dtype=torch.bool)), persistent=False)  # (W, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, e = x.shape[1], x.shape[2]
        h = self.num_heads
        q, k, v = self.qkv(x).split(e, dim=2)  # (B, T, E) each
        # -1 for the batch, so a traced graph keeps a dynamic batch axis without shape arithmetic.
        q = q.reshape(-1, t, h, e // h).transpose(1, 2)  # (B, H, T, E/H)
        k = k.reshape(-1, t, h, e // h).transpose(1, 2)  # (B, H, T, E/H)
        v = v.reshape(-1, t, h, e // h).transpose(1, 2)  # (B, H, T, E/H)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(e // h))  # (B, H, T, T)
        scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
        weights = self.attn_drop(scores.softmax(dim=-1))  # (B, H, T, T)
        y = (weights @ v).transpose(1, 2).reshape(-1, t, e)  # (B, H, T, E/H) -> (B, T, E)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(ln(x)), then x + MLP(ln(x))."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        e = config.embed_size
        self.ln1 = nn.LayerNorm(e)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(e)
        self.mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, E)
        return x + self.mlp(self.ln2(x))  # (B, T, E)


class CodePrior(nn.Module):
    """Next-code logits from the last W (code, condition) pairs; see the module docstring."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        e = config.embed_size
        self.code_embedding = nn.Embedding(config.num_codes + 1, e)  # the K codes and PAD
        self.position_embedding = nn.Parameter(torch.zeros(config.context, e))  # (W, E)
        self.cond_projection = nn.Linear(config.cond_size, e)
        # Only with styles, so a style-less prior has no unused weights.
        self.style_embedding = nn.Embedding(config.num_styles, e) if config.num_styles else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(e)
        self.head = nn.Linear(e, config.num_codes, bias=False)
        self.apply(_init_weights)
        nn.init.normal_(self.position_embedding, std=0.02)
        for block in self.blocks:  # GPT-2: residual branches scaled down so the sum of L blocks starts small
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.num_layers))
        # Set by load_prior: the VQ model this prior belongs to.
        self.vae_fingerprint: dict = {}
        self.style_names: list[str] = []
        self.extra: dict = {}

    @property
    def context(self) -> int:
        return self.config.context

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    @property
    def step_context(self) -> int:
        """W' <= W, the last (code, pose) pairs a rollout step looks at: chosen by ``vae.train_prior`` as the shortest
        context whose held-out cross-entropy is within ``STEP_CONTEXT_TOLERANCE`` of the whole window's (a step costs
        about W' positions; on Bandai-Namco 4 of 16 lose nothing). W for priors trained before the choice."""
        return int(self.extra.get("step_context") or self.config.context)

    def forward(self, codes: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        """codes (B, T) int64 in [0, K] (K: PAD), cond_norm (B, T, CD) -> logits (B, T, K) of each next code."""
        return self.head(self.ln_f(self.hidden(codes, cond_norm, style)))  # (B, T, K)

    def hidden(self, codes: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        """(B, T, E) the last block's output at every position (before the final LayerNorm and the head)."""
        t = codes.shape[1]
        if not torch.jit.is_tracing():  # traced: the graph's inputs have the export's fixed shapes
            self._check_inputs(codes, cond_norm)
        x = self.code_embedding(codes) + self.position_embedding[:t] + self.cond_projection(cond_norm)  # (B, T, E)
        if self.style_embedding is not None:
            weights = style_weights(style, codes.shape[0], self.config.num_styles, x)  # (B, S)
            x = x + (weights @ self.style_embedding.weight).unsqueeze(1)  # (B, 1, E) to every position
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)  # (B, T, E)
        return x

    def _check_inputs(self, codes: torch.Tensor, cond_norm: torch.Tensor) -> None:
        b, t = codes.shape
        cfg = self.config
        if not 1 <= t <= cfg.context:
            raise ValueError(f"codes have {t} positions; the prior sees 1..{cfg.context} (its context window)")
        if tuple(cond_norm.shape) != (b, t, cfg.cond_size):
            raise ValueError(f"cond_norm has shape {tuple(cond_norm.shape)}; expected ({b}, {t}, {cfg.cond_size}) "
                             "(one normalised condition window per code)")
        if codes.dtype.is_floating_point or (codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > cfg.pad_code)):
            raise ValueError(f"codes must be integers in [0, {cfg.pad_code}] ({cfg.pad_code}: PAD)")

    def step_logits(self, codes: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        """(B, K) logits of the next code from the last W positions of ``codes`` (B, T) and ``cond_norm`` (B, T, CD)."""
        w = self.config.context
        # The head on the last position only: a rollout step needs no other position's logits.
        return self.head(self.ln_f(self.hidden(codes[:, -w:], cond_norm[:, -w:], style)[:, -1]))  # (B, K)

    @torch.no_grad()
    def sample_next(self, codes: torch.Tensor, cond_norm: torch.Tensor, style=None, *, temperature: float = 1.0,
                    top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) int64 next codes drawn from the step's logits / temperature, restricted to the ``top_k`` most likely
        codes (None: all); the same ``generator`` state gives the same codes."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (top_k=1 picks the most likely code)")
        logits = self.step_logits(codes, cond_norm, style) / temperature  # (B, K)
        probs = top_k_probabilities(logits, top_k)  # (B, K)
        where = generator.device if generator is not None else probs.device
        return torch.multinomial(probs.to(where), 1, generator=generator)[:, 0].to(probs.device)  # (B,)

    def start_context(self, cond_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context of a rollout starting at ``cond_norm`` (B, CD): (codes (B, W') all PAD, conds (B, W', CD)),
        W' = ``step_context``."""
        b, w = cond_norm.shape[0], self.step_context
        codes = torch.full((b, w), self.config.pad_code, dtype=torch.long, device=cond_norm.device)  # (B, W)
        return codes, cond_norm.unsqueeze(1).expand(b, w, cond_norm.shape[1]).clone()  # (B, W, CD)


def push_context(codes: torch.Tensor, conds: torch.Tensor, code: torch.Tensor,
                 cond_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The context one step later: the oldest pair dropped, (``code`` (B,), the pose it led to (B, CD)) appended."""
    codes = torch.cat((codes[:, 1:], code.reshape(-1, 1).to(codes.dtype)), dim=1)  # (B, W)
    conds = torch.cat((conds[:, 1:], cond_norm.unsqueeze(1)), dim=1)  # (B, W, CD)
    return codes, conds


def top_k_probabilities(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """(B, K) softmax of ``logits`` with all but the ``top_k`` largest per row set to probability 0."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits.softmax(dim=-1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def prior_config_for(manifold, **sizes) -> PriorConfig:
    """The PriorConfig of a prior over ``manifold``'s codes (a PoseVQVAE), with ``sizes`` (context, embed_size ...)."""
    c = manifold.config
    return PriorConfig(num_codes=c.num_codes, cond_size=c.num_condition_frames * c.frame_size,
                       num_styles=c.num_styles, **sizes)


# ---- the file ---------------------------------------------------------------------------------------------

def vae_fingerprint(manifold) -> dict:
    """What identifies the VQ model a prior belongs to: its training data's fingerprint and its weights' hash."""
    return {"dataset_fingerprint": str(getattr(manifold, "dataset_fingerprint", None) or ""),
            "weights": weights_fingerprint(manifold)}


def check_prior_fits(prior: CodePrior, manifold, where: str = "prior") -> None:
    """Raise ValueError unless ``prior`` was trained on the codes of exactly this VQ ``manifold``."""
    if not getattr(manifold, "discrete", False):
        raise ValueError(f"{where}: a code prior drives a VQ Motion VAE (model 'vq'); this one is Gaussian "
                         f"(model {getattr(getattr(manifold, 'config', None), 'model', '?')!r})")
    wanted = prior_config_for(manifold, context=prior.config.context)
    if (prior.config.num_codes, prior.config.cond_size, prior.config.num_styles) != (
            wanted.num_codes, wanted.cond_size, wanted.num_styles):
        raise ValueError(f"{where}: the prior predicts {prior.config.num_codes} codes from condition windows of "
                         f"{prior.config.cond_size} floats and {prior.config.num_styles} styles; this VQ model has "
                         f"{wanted.num_codes}, {wanted.cond_size} and {wanted.num_styles}")
    recorded = prior.vae_fingerprint.get("weights")
    if recorded and recorded != weights_fingerprint(manifold):
        raise ValueError(f"{where}: the prior was trained on the codes of another VQ model (weights {recorded}, "
                         f"this one's {weights_fingerprint(manifold)}); codes mean nothing outside their codebook: "
                         f"train a prior for this model with `{TRAIN_HINT}`")


def save_prior(path, prior: CodePrior, *, vae: dict, style_names: list[str] | None = None,
               extra: dict | None = None) -> None:
    """Write the prior file atomically; ``vae`` is :func:`vae_fingerprint` of its VQ model."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": prior.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in prior.state_dict().items()},
        "vae": dict(vae),
        "style_names": [str(s) for s in (style_names or [])],
        "extra": dict(extra or {}),
    }
    with atomic_write(path) as f:
        torch.save(payload, f)


def read_prior(path) -> dict:
    """The validated prior file dict (see the module docstring), tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prior; train one with `{TRAIN_HINT}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable PyTorch file ({str(e).splitlines()[0] if str(e) else e!r}); "
                         f"pass a prior written by `{TRAIN_HINT}`") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == "mvae-checkpoint":
        raise ValueError(f"{path}: a Motion VAE checkpoint, not a code prior; train a prior over its codes with "
                         f"`{TRAIN_HINT}`")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a code prior (no 'format': '{FORMAT}' entry); train one with `{TRAIN_HINT}`")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: prior version {ckpt.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in ("config", "state_dict", "vae") if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: the prior file lacks {missing}; it is damaged, retrain with `{TRAIN_HINT}`")
    return ckpt


def load_prior(path, manifold=None, device: str | torch.device = "cpu") -> CodePrior:
    """The saved prior in eval mode (``vae_fingerprint``, ``style_names``, ``extra`` set); with ``manifold``, checked
    to belong to it (:func:`check_prior_fits`)."""
    ckpt = read_prior(path)
    try:
        prior = CodePrior(PriorConfig.from_dict(ckpt["config"]))
        prior.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: config and weights do not make a prior ({str(e).splitlines()[0]}); the file is "
                         "damaged") from None
    prior.vae_fingerprint = dict(ckpt["vae"])
    prior.style_names = [str(s) for s in ckpt.get("style_names", [])]
    prior.extra = dict(ckpt.get("extra", {}))
    if manifold is not None:
        check_prior_fits(prior, manifold, str(path))
    return prior.to(device).eval()
