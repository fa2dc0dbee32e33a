"""The noise schedule of a diffusion model and its closed-form forward process.

Notation of Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (DDPM): β_t is the variance
added at step t, α_t = 1 − β_t, ᾱ_t = α_1·α_2·…·α_t. Index 0 here is the paper's t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class NoiseSchedule:
    betas: torch.Tensor  # β_t
    alphas: torch.Tensor  # α_t = 1 − β_t
    alpha_bars: torch.Tensor  # ᾱ_t = Π_{s≤t} α_s
    alpha_bars_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_0 = 1
    posterior_variance: torch.Tensor  # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t   (DDPM eq. 7)

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "NoiseSchedule":
        betas = betas.to(torch.float64)
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        posterior_variance = (1 - alpha_bars_prev) / (1 - alpha_bars) * betas
        # Kept in float64: near t = 0, 1 − ᾱ_t is ~1e-4 and float32 would keep only 3 digits of it.
        return cls(betas, alphas, alpha_bars, alpha_bars_prev, posterior_variance)

    @property
    def T(self) -> int:
        return len(self.betas)


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> NoiseSchedule:
    """DDPM §4: β rising linearly from 10⁻⁴ to 0.02 over T = 1000 steps."""
    return NoiseSchedule.from_betas(torch.linspace(beta_1, beta_T, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), β_t = 1 − ᾱ(t)/ᾱ(t−1), capped."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return NoiseSchedule.from_betas(torch.tensor(betas, dtype=torch.float64))


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t], shaped to broadcast over a batch of images like ``like``."""
    return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The forward process in closed form (DDPM eq. 4): x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε."""
    ab = _at(schedule.alpha_bars, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def ddpm_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int, z: torch.Tensor) -> torch.Tensor:
    """One step of ancestral sampling (DDPM Algorithm 2, line 4):
    x_{t−1} = 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε_θ) + σ_t z, with σ_t² = β̃_t and no noise at the last step."""
    alpha, beta, ab = schedule.alphas[t], schedule.betas[t], schedule.alpha_bars[t]
    mean = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()
    if t == 0:
        return mean
    return mean + schedule.posterior_variance[t].sqrt() * z


def ddim_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, eta: float,
              z: torch.Tensor | None) -> torch.Tensor:
    """One step of DDIM (Song et al. 2021, eq. 12), from t to t_prev (−1 for the end):
    x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t,  σ_t = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev),
    x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ_t²) ε_θ + σ_t z.   η = 0 is deterministic; η = 1 is DDPM-like."""
    ab = schedule.alpha_bars[t]
    ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0_hat = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
    x_prev = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and z is not None:
        x_prev = x_prev + sigma * z
    return x_prev
