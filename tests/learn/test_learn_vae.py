"""The course's VAE: its KL term against torch.distributions, the reparameterisation trick's gradient,
and `genimg learn vae` end to end (figures, measures, exact resume)."""

import json

import torch

from genimg.learn.vae import VAE, kl_divergence, negative_elbo


def test_the_kl_term_is_torch_distributions_kl():
    from torch.distributions import Normal, kl_divergence as kl

    g = torch.Generator().manual_seed(0)
    mu, log_var = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    expected = kl(Normal(mu, (0.5 * log_var).exp()), Normal(torch.zeros(8), torch.ones(8))).sum(1)
    assert torch.allclose(kl_divergence(mu, log_var), expected, atol=1e-5)
    assert torch.allclose(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))  # q = the prior


def test_the_reparameterisation_trick_lets_gradients_reach_mu_and_sigma():
    mu, log_var = torch.zeros(4, 2, requires_grad=True), torch.zeros(4, 2, requires_grad=True)
    eps = torch.full((4, 2), 0.5)
    VAE.reparameterise(mu, log_var, eps).sum().backward()
    assert torch.equal(mu.grad, torch.ones(4, 2))  # ∂z/∂μ = 1
    assert torch.allclose(log_var.grad, torch.full((4, 2), 0.25))  # ∂z/∂log σ² = ½ σ ε


def test_the_loss_is_reconstruction_plus_beta_kl():
    torch.manual_seed(0)
    model = VAE(1, 16, 4)
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    loss, reconstruction, kl = negative_elbo(model, x, 2.0, torch.Generator().manual_seed(1))
    assert torch.allclose(loss, reconstruction + 2.0 * kl) and kl > 0 and reconstruction > 0


def test_learn_vae_trains_draws_its_figures_measures_and_resumes_exactly(cli, tmp_path):
    args = ("learn", "vae", "--epochs", "2", "--size", "8", "--width", "16", "--quiet", "--json")
    made = cli(*args, "-o", tmp_path / "straight")
    assert made.code == 0, made
    measured = json.loads(made.out)
    assert 0 <= measured["prior samples read confidently"] <= 1 and measured["fid"] > 0
    for name in ("reconstructions.png", "prior_samples.png", "latent_walk.png", "loss.png", "samples/epoch_002.png"):
        assert (tmp_path / "straight" / name).is_file(), name
    assert cli("learn", "vae", "--epochs", "1", "--size", "8", "--width", "16", "--quiet", "-o", tmp_path / "parts").code == 0
    assert cli(*args, "-o", tmp_path / "parts", "--resume").code == 0
    from safetensors.torch import load_file

    one, two = (load_file(str(tmp_path / run / "checkpoint.safetensors")) for run in ("straight", "parts"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
