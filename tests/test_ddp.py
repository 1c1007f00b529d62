"""DistributedDataParallel training on CPU (gloo): what two processes promise against one.

* Two ranks splitting every global batch take the same optimiser steps as one process with the whole batch: after
  two epochs (32 Adam steps, teacher forcing then scheduled sampling) the weights agree to float tolerance.
* ``torchrun -m vae.train`` end to end on a VQ model (DDP's gradient all-reduce and the codebook's EMA all-reduce):
  rank 0 alone reports and writes the checkpoint, and the model it writes works.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from mocap.prepare import prepare
from vae import load_manifold
from vae.manifold import GaussianManifold
from vae.train import TrainConfig, train

# free_bits 0: the free-bits clamp acts on each rank's batch mean, which is not linear in the batch.
# feedback_latent_noise 0: like the latent noise, it is drawn from each process's own generator.
SETTINGS = dict(model="mixture", hidden_size=32, latent_size=8, num_experts=2, batch_size=64, teacher_epochs=1,
                ramping_epochs=1, student_epochs=0, free_bits=0.0, feedback_latent_noise=0.0, threads=1,
                preview_every=0, progress=False)


@pytest.fixture(scope="module")
def walk_data(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "walk.npz"
    prepare(["pybullet"], str(path), clips="walk|run", mirror=True, progress=False)
    return str(path)


def _posterior_mean_encode():
    """Encode with z = mu: the reparameterisation noise comes from each process's own generator, so one process
    and two ranks would draw different noise for the same window; DDP's promise is about the gradients."""
    GaussianManifold.encode = functools.partialmethod(GaussianManifold.encode, sample=False)


def _train_rank(rank: int, world_size: int, port: int, settings: dict) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    _posterior_mean_encode()
    train(TrainConfig(**settings))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_reach_the_weights_of_one_process(walk_data, tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    mp.spawn(_train_rank, args=(1, _free_port(), {**SETTINGS, "data": walk_data, "out": str(one)}), nprocs=1)
    mp.spawn(_train_rank, args=(2, _free_port(), {**SETTINGS, "data": walk_data, "out": str(two)}), nprocs=2)

    a, b = torch.load(one, weights_only=True), torch.load(two, weights_only=True)
    assert [h["epoch"] for h in b["extra"]["history"]] == [1, 2]
    assert b["extra"]["optimizer"]["state"][0]["step"] == a["extra"]["optimizer"]["state"][0]["step"] == 32
    for name, weight in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], weight, rtol=1e-5, atol=1e-7, msg=name)
    for key in ("loss", "recon", "kl_total"):  # epoch metrics are summed over the ranks
        assert b["extra"]["history"][-1][key] == pytest.approx(a["extra"]["history"][-1][key], rel=1e-4)


def test_torchrun_trains_a_vq_model_and_rank_zero_writes_the_checkpoint(walk_data, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vae.train", "--data", walk_data, "--out", str(out), "--model", "vq", "--hidden-size", "32",
           "--latent-size", "8", "--num-experts", "2", "--num-codes", "16", "--batch-size", "64",
           "--teacher-epochs", "1", "--ramping-epochs", "0", "--student-epochs", "1", "--threads", "1",
           "--preview-every", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("checkpoint:") == 1  # rank 0 alone reports and saves

    model = load_manifold(out)
    assert model.extra["epoch"] == 2 and len(model.extra["history"]) == 2
    assert bool(model.quantizer.initialized) and torch.isfinite(model.codebook).all()
    with torch.no_grad():
        nxt = model.step(model.sample_prior(3), model.start_frames[:3])
    assert nxt.shape == (3, model.frame_size) and torch.isfinite(nxt).all()
