"""The variational autoencoder: Kingma & Welling 2013, "Auto-Encoding Variational Bayes".

An encoder q_φ(z|x) maps an image to a Gaussian over a small latent z — its mean μ and log-variance
log σ² — and a decoder p_θ(x|z) maps a latent back to an image. Training maximises the evidence lower
bound (ELBO, eq. 3), i.e. minimises its negative, per image:

    −ELBO = E_q[−log p_θ(x|z)]  +  β · KL(q_φ(z|x) ‖ N(0, I))
            (reconstruction)        (how far the code is from the prior)

The reconstruction term here is the Bernoulli likelihood of pixel intensities in [0, 1] (binary cross
entropy, summed over pixels, as the paper's MNIST experiments); the KL of two Gaussians has a closed form
(Appendix B):  KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).  β = 1 is the paper's VAE; β > 1 trades
reconstructions for a smoother latent space (Higgins et al. 2017, "β-VAE").

Sampling z ~ q_φ(z|x) is not differentiable in φ; the reparameterisation trick (§2.4) writes it as
z = μ + σ ⊙ ε with ε ~ N(0, I), so the gradient flows through μ and σ. New images come from the prior:
z ~ N(0, I), decoded.

The code is a vector (the paper's) or, with ``spatial``, a small image of ``latent`` channels at a quarter
of the side — Stable Diffusion's autoencoder's shape (Rombach et al. 2022, §3: a KL-regularised code
of 4 × H/8 × W/8), which latent diffusion (ldm.py) then learns to generate.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Encoder(nn.Module):
    """x (N, C, S, S) -> μ, log σ²: two stride-2 convolutions, then linear heads to (N, latent) or, with
    ``spatial``, 1×1 convolutions to (N, latent, S/4, S/4)."""

    def __init__(self, channels: int, size: int, latent: int, width: int = 32, spatial: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
                                 nn.Identity() if spatial else nn.Flatten())
        if spatial:
            self.mu, self.log_var = nn.Conv2d(2 * width, latent, 1), nn.Conv2d(2 * width, latent, 1)
        else:
            flat = 2 * width * (size // 4) ** 2
            self.mu, self.log_var = nn.Linear(flat, latent), nn.Linear(flat, latent)

    def forward(self, x):
        h = self.net(x)
        return self.mu(h), self.log_var(h)


class Decoder(nn.Module):
    """z -> the logits of each pixel (N, C, S, S): the encoder mirrored."""

    def __init__(self, channels: int, size: int, latent: int, width: int = 32, spatial: bool = False):
        super().__init__()
        self.width, self.side = width, size // 4
        self.fc = nn.Conv2d(latent, 2 * width, 1) if spatial else nn.Linear(latent, 2 * width * self.side ** 2)
        self.net = nn.Sequential(nn.SiLU(), nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),
                                 nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1))

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 2 * self.width, self.side, self.side))


class VAE(nn.Module):
    def __init__(self, channels: int = 1, size: int = 16, latent: int = 8, width: int = 32, spatial: bool = False):
        super().__init__()
        self.latent = latent
        self.latent_shape = (latent, size // 4, size // 4) if spatial else (latent,)
        self.encoder = Encoder(channels, size, latent, width, spatial)
        self.decoder = Decoder(channels, size, latent, width, spatial)

    @staticmethod
    def reparameterise(mu, log_var, eps):
        """z = μ + σ ⊙ ε (§2.4): the sample as a differentiable function of μ and σ = exp(½ log σ²)."""
        return mu + (0.5 * log_var).exp() * eps

    def forward(self, x, generator: torch.Generator | None = None):
        """(reconstruction logits, μ, log σ²) for images ``x`` in [−1, 1]."""
        mu, log_var = self.encoder(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return self.decoder(self.reparameterise(mu, log_var, eps)), mu, log_var

    def decode(self, z):
        """Images in [−1, 1] from latents."""
        return torch.sigmoid(self.decoder(z)) * 2 - 1

    @torch.no_grad()
    def reconstruct(self, x):
        """Images through the code's mean (no sampling): what the model keeps of each input."""
        return self.decode(self.encoder(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """New images from the prior: z ~ N(0, I), decoded."""
        return self.decode(torch.randn(n, *self.latent_shape, generator=generator))


def kl_divergence(mu, log_var):
    """KL(N(μ, σ²) ‖ N(0, I)) per image (Appendix B): −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)."""
    return -0.5 * (1 + log_var - mu.square() - log_var.exp()).flatten(1).sum(1)


def negative_elbo(model: VAE, x, beta: float = 1.0, generator: torch.Generator | None = None):
    """(−ELBO, reconstruction, KL), each the mean over the batch of a per-image sum: eq. 3 with the
    Bernoulli likelihood of the pixels' intensities ((x + 1)/2 in [0, 1])."""
    logits, mu, log_var = model(x, generator)
    target = (x + 1) / 2
    reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1).mean()
    kl = kl_divergence(mu, log_var).mean()
    return reconstruction + beta * kl, reconstruction, kl
