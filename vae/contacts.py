"""Foot contact channels of a Motion VAE: which foot joints touch the ground in the frame the decoder predicts.

A Motion VAE predicts poses; where the feet are planted is implied, and a model's stance feet slide, so contacts read
back from its poses (:func:`mocap.foot_locking.detect_contacts`: low and slow) miss the stance frames where the
model's foot moves. The contact channels predict them as the data labels them (``mocap.prepare``: within
``CONTACT_HEIGHT_M`` of the floor, slower than ``CONTACT_SPEED_MPS``) from what the decoder reads, the latent (with
the style's embedding) and the condition frames, so they follow the motion's phase rather than the foot's drift.
The foot locker (:mod:`mocap.foot_locking`) holds a foot while its channel says contact.

:class:`ContactHead` is an ELU MLP ``[z, cond] -> H -> H -> F`` (logits, one per labelled foot joint), beside the
decoder rather than inside it: :func:`fit_contacts` trains it on the dataset's labels with the VAE frozen, so a
trained VAE gains contacts without a pose (or a policy trained on it) changing; ``vae.train`` fits it after the
VAE (``--contact-epochs``), ``python -m vae.contacts`` adds it to an existing checkpoint. Training latents are
the encoder's samples from the posterior of each (condition, next frame) pair, the latents a policy's lie among.

Checkpoint entry (``vae.checkpoint``, plain types)::

    contacts  {"joints": [F joint names], "hidden_size": H, "state_dict": {...}, "metrics": {...}}

Measured on the shipped Bandai-Namco VAE (8 epochs, 4.5 s on one CPU thread, the command 10 s): held-out accuracy
0.971-0.978 per foot joint (labels: 67-74 % contact); CAMDM foot sliding with foot locking (100 episodes,
``policies.evaluate``) of the shipped joystick policy 0.225 with contacts read from the poses -> 0.091 with these as
well (data 0.081), of the target policy 0.182 -> 0.057.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.paths import output_file
from mocap.dataset import MotionDataset
from mocap.features import CONTACT_PROBABILITY

HIDDEN_SIZE = 128
EPOCHS = 8
BATCH_SIZE = 512
ENCODE_ROWS = 8192  # pairs encoded at once (bounds the encoder's activations on a large dataset)
LEARNING_RATE = 1e-3
HOLDOUT_EVERY = 10  # every 10th block of HOLDOUT_BLOCK frames is held out to measure the accuracy
HOLDOUT_BLOCK = 300  # frames (10 s at 30 fps): clips can be few and short, and neighbouring frames alike


class ContactHead(nn.Module):
    """``(z (B, Z'), cond_norm (B, C*D)) -> (B, F)`` contact logits; Z' is the decoder's latent input (with style)."""

    def __init__(self, joints: list[str], latent_size: int, condition_size: int, hidden_size: int = HIDDEN_SIZE):
        super().__init__()
        self.joints = list(joints)
        self.hidden_size = int(hidden_size)
        self.net = nn.Sequential(
            nn.Linear(latent_size + condition_size, hidden_size), nn.ELU(),
            nn.Linear(hidden_size, hidden_size), nn.ELU(),
            nn.Linear(hidden_size, len(joints)),
        )
        self.metrics: dict = {}

    def forward(self, z: torch.Tensor, cond_norm: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((z, cond_norm), dim=1))

    def to_dict(self) -> dict:
        """The checkpoint entry (plain types and tensors)."""
        return {"joints": list(self.joints), "hidden_size": self.hidden_size,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, entry: dict, latent_size: int, condition_size: int, where: str = "checkpoint") -> ContactHead:
        try:
            head = cls([str(j) for j in entry["joints"]], latent_size, condition_size, int(entry["hidden_size"]))
            head.load_state_dict(entry["state_dict"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{where}: its contact channels ('contacts') do not fit the model "
                             f"({str(e).splitlines()[0]}); refit them with `python -m vae.contacts`") from None
        head.metrics = dict(entry.get("metrics", {}))
        return head.eval()


def contact_probabilities(manifold, latent: torch.Tensor, cond_raw: torch.Tensor, style=None) -> torch.Tensor | None:
    """(B, F) probability of contact of each of the head's joints in the frame ``manifold.step(latent, cond_raw,
    style)`` predicts (the same inputs), or None for a manifold without contact channels."""
    head = getattr(manifold, "contacts", None)
    if head is None:
        return None
    b = cond_raw.shape[0]
    if head.net[0].weight.device != manifold.device:  # attached beside the model, so not moved with it
        head.to(manifold.device)
    with torch.no_grad():
        z = manifold.with_style(manifold.latent_from_action(latent), style).to(manifold.data_mean.dtype)
        cond_norm = manifold.normalize(cond_raw.reshape(b, -1).to(manifold.data_mean.dtype))  # (B, C*D)
        return torch.sigmoid(head(z, cond_norm))


def fit_contacts(manifold, dataset, *, epochs: int = EPOCHS, seed: int = 0, log=print) -> ContactHead:
    """Train contact channels for ``manifold`` on ``dataset`` (a :class:`mocap.dataset.MotionDataset`, its
    ``foot_contacts`` labels) with the manifold frozen; ``head.metrics`` holds the held-out accuracy per joint."""
    labels = np.asarray(dataset.foot_contacts)
    if labels.ndim != 2 or labels.shape[1] == 0:
        raise ValueError("the dataset has no foot contact labels (foot_joints is empty: no joint named foot, ankle or "
                         "toe); prepare it again with `python -m mocap.prepare`, or train with --contact-epochs 0")
    c = manifold.num_condition_frames
    device = manifold.device
    generator = torch.Generator().manual_seed(seed)
    starts, ends = np.asarray(dataset.start_indices), np.asarray(dataset.end_indices)
    nxt = np.concatenate([np.arange(s + c, e + 1) for s, e in zip(starts, ends, strict=True)])  # (N,) predicted frames
    held = nxt // HOLDOUT_BLOCK % HOLDOUT_EVERY == HOLDOUT_EVERY - 1  # (N,)
    frames = torch.as_tensor(dataset.data, dtype=torch.float32, device=device)
    window = torch.as_tensor(nxt[:, None] - np.arange(c, 0, -1)[None], device=device)  # (N, C) condition frames
    cond_norm = manifold.normalize(frames[window].reshape(len(nxt), -1))  # (N, C*D)
    next_norm = manifold.normalize(frames[torch.as_tensor(nxt, device=device)])  # (N, D)
    styles = dataset.frame_styles()
    style = None if styles is None or not manifold.num_styles else torch.as_tensor(styles[nxt], device=device)
    target = torch.as_tensor(labels[nxt], dtype=torch.float32, device=device)  # (N, F)
    joints = [dataset.skeleton.joint_names[j] for j in dataset.foot_joints]

    with torch.random.fork_rng(devices=[]):  # the initial weights from the seed too, leaving the caller's stream
        torch.manual_seed(seed)
        head = ContactHead(joints, manifold.config.decoder_latent_size, cond_norm.shape[1]).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=LEARNING_RATE)
    train_rows = torch.as_tensor(np.flatnonzero(~held), device=device)
    test_rows = torch.as_tensor(np.flatnonzero(held), device=device)

    # The encoder is frozen: each pair's posterior once (in chunks), not again every epoch.
    posterior = []
    with torch.no_grad():
        for i in range(0, len(nxt), ENCODE_ROWS):
            rows = slice(i, i + ENCODE_ROWS)
            enc = manifold.encode(next_norm[rows], cond_norm[rows], style=None if style is None else style[rows])
            # Gaussian: mean and standard deviation; VQ: the code vector, drawn from nothing.
            posterior.append((enc["mu"], torch.exp(0.5 * enc["logvar"])) if "logvar" in enc
                             else (enc["z"], torch.zeros_like(enc["z"])))
    mean = torch.cat([m for m, _ in posterior])  # (N, Z)
    std = torch.cat([d for _, d in posterior])  # (N, Z)

    def latents(rows: torch.Tensor, sample: bool) -> torch.Tensor:
        """The decoder's latent input for ``rows``: a posterior draw from this run's own generator, or its mean."""
        z = mean[rows]
        if sample:
            z = z + torch.randn(z.shape, generator=generator).to(device) * std[rows]
        return manifold.with_style(z, None if style is None else style[rows])

    started = time.perf_counter()
    for epoch in range(epochs):
        order = train_rows[torch.randperm(len(train_rows), generator=generator).to(device)]
        for i in range(0, len(order), BATCH_SIZE):
            rows = order[i:i + BATCH_SIZE]
            loss = F.binary_cross_entropy_with_logits(head(latents(rows, True), cond_norm[rows]), target[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        log(f"contact channels: epoch {epoch + 1}/{epochs}, loss {loss.item():.4f}")
    head.eval()
    rows = test_rows if len(test_rows) else train_rows
    with torch.no_grad():
        predicted = torch.sigmoid(head(latents(rows, False), cond_norm[rows])) > CONTACT_PROBABILITY
    accuracy = (predicted == (target[rows] > 0.5)).float().mean(dim=0)  # (F,)
    head.metrics = {"accuracy": [round(float(a), 4) for a in accuracy],
                    "label_rate": [round(float(r), 4) for r in target.mean(dim=0)],
                    "held_out_frames": int(len(test_rows)), "epochs": int(epochs),
                    "seconds": round(time.perf_counter() - started, 1)}
    log(f"contact channels for {', '.join(joints)}: held-out accuracy "
        f"{', '.join(f'{a:.3f}' for a in head.metrics['accuracy'])} (contact in "
        f"{', '.join(f'{100 * r:.0f}' for r in head.metrics['label_rate'])} % of the data's frames)")
    return head.cpu()


def main(argv: list[str] | None = None) -> int:
    from vae.checkpoint import load_manifold, read_checkpoint, write_contacts  # it imports this module

    parser = argparse.ArgumentParser(
        prog="python -m vae.contacts",
        description="Fit foot contact channels to a trained Motion VAE (its poses unchanged) and write them into "
                    "its checkpoint; the foot locker of play.py, recordings and policies.evaluate then uses them.")
    parser.add_argument("vae", help="the Motion VAE checkpoint (e.g. a character's vae.pt)")
    parser.add_argument("--data", required=True, help="the prepared dataset it was trained on (DATA.npz)")
    parser.add_argument("--out", default="", help="where to write the checkpoint with contacts (default: over VAE)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        out = output_file(args.out or args.vae, "--out", (".pt",))  # checked before the fit, not after
        manifold = load_manifold(args.vae)
        dataset = MotionDataset.load(args.data)
        if dataset.fingerprint() != manifold.dataset_fingerprint:
            raise ValueError(f"--data {args.data}: not the data {args.vae} was trained on (dataset fingerprint "
                             f"{dataset.fingerprint()}, the model's {manifold.dataset_fingerprint}); pass that data")
        head = fit_contacts(manifold, dataset, epochs=args.epochs, seed=args.seed)
        write_contacts(read_checkpoint(args.vae), head, out)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.contacts: error: {e}", file=sys.stderr)
        return 2
    print(f"contact channels written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
