"""Motion VAE models: the fast mixture decoder equals the reference, shapes, normalisation, VQ quantiser."""

from __future__ import annotations

import pytest
import torch

from vae import MotionManifold, PoseMixtureVAE, PoseVAE, PoseVQVAE, VAEConfig, build_model
from vae.reference import ReferenceMixtureDecoder

D = 3 + 12 * 4  # 4-joint frames keep the tests fast


def _config(model="mixture", **kw) -> VAEConfig:
    base = dict(model=model, frame_size=D, latent_size=8, hidden_size=32, num_experts=4, gate_hidden_size=16,
                num_codes=16)
    base.update(kw)
    return VAEConfig(**base)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts():
    # The EA reference PoseMixtureVAE at D=267: encoder 0.30M, decoder 1.39M (6 x 0.228M + gate 0.024M).
    model = PoseMixtureVAE(VAEConfig(frame_size=267))
    enc, dec, gate = _count(model.encoder), _count(model.decoder), _count(model.decoder.gate)
    expert = (dec - gate) // 6
    print(f"\nPoseMixtureVAE D=267: encoder {enc}, decoder {dec} (expert {expert}, gate {gate}), total {_count(model)}")
    assert (enc, expert, gate, dec, _count(model)) == (304640, 227947, 23750, 1391432, 1696072)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_fast_decoder_matches_reference(batch):
    torch.manual_seed(batch)
    model = PoseMixtureVAE(VAEConfig(frame_size=267))  # the paper's sizes
    z = torch.randn(batch, 32)
    cond = torch.randn(batch, 267)
    fast = model.decode(z, cond)
    ref = ReferenceMixtureDecoder(model.decoder)(z, cond)
    assert fast.shape == (batch, 267)
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0), (fast - ref).abs().max()


def test_gradients_reach_every_expert_and_the_gate():
    torch.manual_seed(0)
    model = PoseMixtureVAE(_config())
    recon, enc = model(torch.randn(16, D), torch.randn(16, D))
    (recon.pow(2).mean() + enc["kl"].mean()).backward()
    for w in model.decoder.weights:
        per_expert = w.grad.abs().sum(dim=(0, 2))  # (E,)
        assert torch.all(per_expert > 0)
    for p in model.decoder.gate.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    for p in model.encoder.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["mixture", "vae", "vq"])
@pytest.mark.parametrize("c,f", [(1, 1), (2, 2)])
def test_shapes(kind, c, f):
    model = build_model(_config(kind, num_condition_frames=c, num_future_predictions=f))
    assert isinstance(model, MotionManifold)
    b = 5
    recon, enc = model(torch.randn(b, f * D), torch.randn(b, c * D))
    assert recon.shape == (b, f * D)
    assert enc["z"].shape == (b, 8)
    prior = model.sample_prior(b)
    if kind == "vq":
        assert model.discrete and model.num_codes == 16
        assert prior.shape == (b,) and prior.dtype == torch.long
        assert {"indices", "vq_loss", "commit_loss", "perplexity"} <= set(enc)
    else:
        assert not model.discrete and model.num_codes is None
        assert prior.shape == (b, 8) and prior.dtype == torch.float32
        assert enc["mu"].shape == enc["logvar"].shape == (b, 8) and enc["kl"].shape == (b,)
    assert model.latent_from_action(prior).shape == (b, 8)
    assert model.decode(model.latent_from_action(prior), torch.randn(b, c * D)).shape == (b, f * D)
    # step: raw frames in, one raw frame out
    nxt = model.step(prior, torch.randn(b, c, D))
    assert nxt.shape == (b, D)


def test_sample_prior_is_reproducible_with_a_generator():
    for kind in ("mixture", "vq"):
        model = build_model(_config(kind))
        a = model.sample_prior(4, generator=torch.Generator().manual_seed(3))
        b = model.sample_prior(4, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_normalization_round_trip_and_zero_std_guard():
    model = PoseVAE(_config("vae"))
    mean = torch.randn(D)
    std = torch.rand(D) + 0.5
    std[[0, 5]] = 0.0  # constant features in the data
    model.set_normalization(mean, std)
    assert model.data_std[0] == 1.0 and model.data_std[5] == 1.0
    x = torch.randn(3, 2 * D) * 4
    assert torch.allclose(model.denormalize(model.normalize(x)), x, atol=1e-5)
    # a constant feature passes through, shifted by its mean only
    assert torch.allclose(model.normalize(x)[:, 0], x[:, 0] - mean[0])
    assert torch.allclose(model.normalize(x)[:, D + 5], x[:, D + 5] - mean[5])
    with pytest.raises(ValueError, match="frame_size"):
        model.set_normalization(torch.zeros(D + 1), torch.ones(D + 1))


def test_step_denormalizes_and_checks_shapes():
    torch.manual_seed(0)
    model = PoseMixtureVAE(_config()).eval()
    model.set_normalization(torch.full((D,), 10.0), torch.full((D,), 2.0))
    z = torch.randn(3, 8)
    cond_raw = torch.randn(3, 1, D)
    expected = model.decode(z, (cond_raw[:, 0] - 10.0) / 2.0) * 2.0 + 10.0
    assert torch.allclose(model.step(z, cond_raw), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected \(B, 1, "):
        model.step(z, torch.randn(3, 2, D))
    with pytest.raises(ValueError, match="latents"):
        model.step(torch.randn(3, 5), cond_raw)


def test_vq_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    model = PoseVQVAE(_config("vq")).train()
    model(torch.randn(32, D), torch.randn(32, D))  # initialise the codebook from encoder outputs
    model.eval()  # keep the codebook still so z can be compared with it
    recon, enc = model(torch.randn(32, D), torch.randn(32, D))
    recon.pow(2).mean().backward()  # reconstruction only: no commitment term
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    # the forward value of z is exactly a codebook row
    assert torch.allclose(enc["z"], model.codebook[enc["indices"]], atol=1e-6)


def test_vq_ema_updates_the_codebook_only_in_train_mode():
    torch.manual_seed(0)
    model = PoseVQVAE(_config("vq"))
    x, c = torch.randn(64, D), torch.randn(64, D)
    model.eval()
    before = model.codebook.clone()
    model(x, c)
    assert torch.equal(model.codebook, before)
    model.train()
    model(x, c)  # first batch: initialise from encoder outputs
    after_init = model.codebook.clone()
    assert not torch.equal(after_init, before)
    model(x, c)
    assert not torch.equal(model.codebook, after_init)
    model.eval()
    frozen = model.codebook.clone()
    model(x, c)
    assert torch.equal(model.codebook, frozen)


def test_vq_dead_codes_are_reset_to_batch_encoder_outputs():
    torch.manual_seed(0)
    model = PoseVQVAE(_config("vq", num_codes=8)).train()
    x, c = torch.randn(64, D), torch.randn(64, D)
    model(x, c)  # initialise
    q = model.quantizer
    # make codes 0..3 unreachable and give them no use history
    with torch.no_grad():
        q.codebook[:4] = 1e3
        q.ema_count[:4] = 0.0
    _, enc = model(x, c)
    assert not torch.any(enc["indices"] < 4)
    z_e = model.encoder(x, c).detach()
    for k in range(4):
        distance = (z_e - q.codebook[k]).norm(dim=1).min()
        assert distance < 0.1 * z_e.norm(dim=1).mean(), k  # moved next to an encoder output of the batch


def test_vq_perplexity_between_one_and_k():
    torch.manual_seed(0)
    model = PoseVQVAE(_config("vq")).train()
    for _ in range(3):
        _, enc = model(torch.randn(128, D), torch.randn(128, D))
        assert 1.0 <= float(enc["perplexity"]) <= model.num_codes
        assert enc["vq_loss"].item() == pytest.approx(0.25 * enc["commit_loss"].item())


def test_vq_action_validation():
    model = PoseVQVAE(_config("vq"))
    assert torch.equal(model.latent_from_action(torch.tensor([3, 0])), model.codebook[[3, 0]])
    with pytest.raises(ValueError, match="code index"):
        model.latent_from_action(torch.tensor([16]))
    with pytest.raises(ValueError, match="integer code indices"):
        model.latent_from_action(torch.randn(2, 8))


def test_config_round_trip_and_errors():
    cfg = _config("vq", num_condition_frames=2)
    assert VAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="model"):
        VAEConfig(model="gan")
    with pytest.raises(ValueError, match="unknown VAEConfig fields"):
        VAEConfig.from_dict({**cfg.to_dict(), "learning_rate": 1e-4})


def test_vq_ema_statistics_go_through_torch_distributed(tmp_path):
    # A one-process gloo group runs the all_reduce / broadcast path that DDP training uses.
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = PoseVQVAE(_config("vq")).train()
        assert model.quantizer._distributed()
        for _ in range(2):
            _, enc = model(torch.randn(64, D), torch.randn(64, D))
        assert torch.isfinite(model.codebook).all() and 1.0 <= float(enc["perplexity"]) <= 16
    finally:
        dist.destroy_process_group()


def test_reference_decoder_follows_weight_updates_and_gradients():
    torch.manual_seed(0)
    model = PoseMixtureVAE(_config())
    reference = ReferenceMixtureDecoder(model.decoder)
    z, cond = torch.randn(5, 8), torch.randn(5, D)
    with torch.no_grad():
        assert torch.allclose(reference(z, cond), model.decode(z, cond), atol=1e-5)
        model.decoder.weights[1].mul_(1.5)  # the cached expert-major copy must not go stale
        assert torch.allclose(reference(z, cond), model.decode(z, cond), atol=1e-5)
    reference(z, cond).pow(2).sum().backward()
    ref_grads = [w.grad.clone() for w in model.decoder.weights]
    model.zero_grad()
    model.decode(z, cond).pow(2).sum().backward()
    for ref_grad, w in zip(ref_grads, model.decoder.weights, strict=True):
        assert torch.allclose(ref_grad, w.grad, atol=1e-5)
