"""Faster samplers: Euler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models", Algorithm 1 without churn) and DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for
Guided Sampling of Diffusion Probabilistic Models", Algorithm 2), from their papers' equations.

Both read the DDPM schedule of ``schedule.py`` in the variables their papers use:

- Karras: the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) of the rescaled image x̃ = x_t/√ᾱ_t = x_0 + σ_t ε, so that
  sampling is the ODE  dx̃/dσ = ε_θ  (eq. 3 with σ(t) = t), and an Euler step is a straight line along it.
- Lu et al.: α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), the log signal-to-noise ratio λ_t = log(α_t/σ_t) (eq. 3), and the
  model's guess of the clean image x̂_0 = (x_t − σ_t ε_θ)/α_t ("data prediction", §4). Between two times the
  ODE's exact solution is  x_s = (σ_s/σ_t) x_t + σ_s ∫ e^λ x̂_0 dλ  (eq. 8); the solver takes x̂_0 constant
  (first order: DDIM) or linear in λ through the last two model calls (second order, multistep: "2M").

Each sampler draws no noise: the same starting noise gives the same image. The times are evenly spaced
below T ("leading" spacing, as the course's DDIM and diffusers' schedulers with
``timestep_spacing="leading"``, against which ``tests/learn`` compares every step). Starting at t = T − 1
instead ("linspace") fails this course's models: under the cosine schedule ᾱ_{T−1} ≈ 2·10⁻⁹, so
x̂_0 = (x_t − σ_t ε_θ)/α_t divides the network's error by α ≈ 5·10⁻⁵ at the first step, and ten-step
samples come out as noise (FID 79 against DDIM's 14, measured).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from genimg.learn.schedule import NoiseSchedule

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]  # (x_t, t) -> ε_θ(x_t, t)


def euler_times(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` times, (steps − 1)·⌊T/steps⌋ down to 0, every ⌊T/steps⌋."""
    stride = schedule.T // steps
    return [i * stride for i in range(steps)][::-1]


def karras_sigma(schedule: NoiseSchedule, t: float) -> float:
    """σ at a time: σ_t = √((1 − ᾱ_t)/ᾱ_t) (between two steps, interpolated linearly in t)."""
    sigmas = ((1 - schedule.alpha_bars) / schedule.alpha_bars).sqrt()
    low = int(math.floor(t))
    high = min(low + 1, schedule.T - 1)
    return float(sigmas[low] + (t - low) * (sigmas[high] - sigmas[low]))


def euler_step(x: torch.Tensor, eps: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Karras Algorithm 1, one step without churn: the ODE's slope dx̃/dσ = (x̃ − x̂_0)/σ = ε_θ, followed
    from σ to σ_next in a straight line:  x̃_next = x̃ + (σ_next − σ) · ε_θ."""
    return x + (sigma_next - sigma) * eps


def euler_sample(schedule: NoiseSchedule, denoise: Denoiser, noise: torch.Tensor, steps: int,
                 on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """x̂_0 after ``steps`` Euler steps from x_t = noise, the model fed x̃/√(σ² + 1) = x_t."""
    times = euler_times(schedule, steps)
    sigmas = [karras_sigma(schedule, t) for t in times] + [0.0]
    x = noise * math.sqrt(sigmas[0] ** 2 + 1)  # x̃ = x_t/√ᾱ_t = x_t·√(σ² + 1): the noise x_t in Karras's variable
    for i, t in enumerate(times):
        eps = denoise(x / math.sqrt(sigmas[i] ** 2 + 1), t)
        x = euler_step(x, eps, sigmas[i], sigmas[i + 1])
        if on_step:
            on_step(i, x)
    return x


def dpm_times(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` times, steps·⌊T/(steps + 1)⌋ down to ⌊T/(steps + 1)⌋ (the last step goes on to the image)."""
    stride = schedule.T // (steps + 1)
    return [i * stride for i in range(steps, 0, -1)]


def _alpha_sigma(schedule: NoiseSchedule, t: int | None) -> tuple[float, float]:
    """(α_t, σ_t); ``None`` is the end of sampling, the clean image: α = 1, σ = 0."""
    if t is None:
        return 1.0, 0.0
    ab = float(schedule.alpha_bars[t])
    return math.sqrt(ab), math.sqrt(1 - ab)


def dpmpp_2m_step(x: torch.Tensor, x0: torch.Tensor, x0_prev: torch.Tensor | None, t: tuple[float, float],
                  s: tuple[float, float], h_prev: float | None) -> tuple[torch.Tensor, float]:
    """DPM-Solver++(2M) from time t to time s, given (α, σ) of each: returns (x_s, h).

    h = λ_s − λ_t. First order (no earlier x̂_0, or the last step):
        x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) x̂_0(t)                                   (eq. 9, DDIM)
    second order, with r = h_prev/h and the earlier x̂_0 (Algorithm 2):
        D = (1 + 1/(2r)) x̂_0(t) − 1/(2r) x̂_0(t_prev),   x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D."""
    (alpha_t, sigma_t), (alpha_s, sigma_s) = t, s
    if sigma_s == 0:  # the end: λ = ∞, e^{−h} = 0, and the step lands on x̂_0 (or D)
        ratio, decay = 0.0, -1.0
        h = math.inf
    else:
        h = math.log(alpha_s / sigma_s) - math.log(alpha_t / sigma_t)
        ratio, decay = sigma_s / sigma_t, math.expm1(-h)
    data = x0
    if x0_prev is not None and h_prev is not None and math.isfinite(h):
        r = h_prev / h
        data = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
    return ratio * x - alpha_s * decay * data, h


def dpmpp_2m_sample(schedule: NoiseSchedule, denoise: Denoiser, noise: torch.Tensor, steps: int,
                    on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """The image after ``steps`` DPM-Solver++(2M) steps from x_T = noise; first order at the first step
    (no history yet) and at the last (as diffusers does below 15 steps: its second-order last step is
    unstable)."""
    times = dpm_times(schedule, steps)
    x, x0_prev, h_prev = noise, None, None
    for i, t in enumerate(times):
        alpha_t, sigma_t = _alpha_sigma(schedule, t)
        x0 = (x - sigma_t * denoise(x, t)) / alpha_t
        last = i == len(times) - 1
        s = None if last else times[i + 1]
        second_order = x0_prev is not None and not (last and steps < 15)
        x, h = dpmpp_2m_step(x, x0, x0_prev if second_order else None, (alpha_t, sigma_t),
                             _alpha_sigma(schedule, s), h_prev)
        x0_prev, h_prev = x0, h
        if on_step:
            on_step(i, x)
    return x


SAMPLERS = ("ddpm", "ddim", "euler", "dpmpp-2m")
