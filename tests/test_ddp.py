"""`torchrun --nproc_per_node 2 -m vae.train`: two CPU processes (gloo) train one VQ Motion VAE.

VQ exercises both kinds of synchronisation: DDP's gradient all-reduce and the codebook's EMA all-reduce.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from mocap.prepare import prepare
from vae import load_manifold


def test_two_processes_train_and_rank_zero_writes_the_checkpoint(tmp_path):
    data = tmp_path / "walk.npz"
    prepare(["pybullet"], str(data), clips="walk|run", mirror=True, progress=False)
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vae.train", "--data", str(data), "--out", str(out), "--model", "vq", "--hidden-size", "32",
           "--latent-size", "8", "--num-experts", "2", "--num-codes", "16", "--batch-size", "64",
           "--teacher-epochs", "1", "--ramping-epochs", "0", "--student-epochs", "1", "--threads", "1",
           "--preview-every", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("checkpoint:") == 1  # rank 0 alone reports and saves

    model = load_manifold(out)
    extra = model.extra
    assert extra["epoch"] == 2 and len(extra["history"]) == 2
    # Each rank took half of every batch of 64: the epoch saw the same number of windows as one process would.
    assert extra["train_config"]["batch_size"] == 64
    assert bool(model.quantizer.initialized) and torch.isfinite(model.codebook).all()
    with torch.no_grad():
        nxt = model.step(model.sample_prior(3), model.start_frames[:3])
    assert nxt.shape == (3, model.frame_size) and torch.isfinite(nxt).all()
