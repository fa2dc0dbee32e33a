"""Flow matching (rectified flow): how FLUX.1, FLUX.2 and SD3 are trained and sampled.

A diffusion model (chapters 2–4) learns to undo a noising process step by step. Flow matching learns a
*velocity field* instead: the straight line from a data point x₀ to a noise sample ε,

    x_t = (1 − t)·x₀ + t·ε,        t ∈ [0, 1]   (t = 0 data, t = 1 noise)

moves at the constant velocity dx_t/dt = ε − x₀. A network v_θ(x_t, t) is trained to predict that
velocity (a plain mean squared error), and sampling integrates the ordinary differential equation
dx/dt = v_θ(x, t) backwards from pure noise at t = 1 to data at t = 0 — here with Euler's method, which is
what diffusers' ``FlowMatchEulerDiscreteScheduler`` does for FLUX. Because each training path is a straight
line, the learned paths are nearly straight too, and a few large Euler steps already land close to the
data: the reason FLUX samples well in 20–30 steps and its distilled variants in 1–4.

Two refinements from the SD3 paper (Esser et al. 2024, §3.1 and §5.3.2), both used by FLUX:
- *Which t to train on*: not uniformly, but logit-normally — t = sigmoid(n), n ~ N(m, s) — putting more
  training where the velocity is hardest to guess (mid-way between data and noise).
- *Shift*: at sampling time, a shift s > 1 warps the schedule, t ↦ s·t / (1 + (s − 1)·t), spending more steps
  at high noise; larger images need more (FLUX's "dynamic shifting" picks s from the image size).
"""

from __future__ import annotations

import torch


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x₀ + t·ε, with ``t`` one value per sample."""
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The target: the straight path's velocity ε − x₀ (the same at every t)."""
    return noise - x0


def logit_normal_times(batch: int, generator: torch.Generator | None = None, mean: float = 0.0,
                       std: float = 1.0) -> torch.Tensor:
    """Training times t = sigmoid(n), n ~ N(mean, std): most of them mid-way, few near 0 or 1."""
    return torch.sigmoid(torch.normal(mean=mean, std=std, size=(batch,), generator=generator))


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The shift of SD3/FLUX: s·t / (1 + (s − 1)·t); 1 leaves t as it is, more spends more steps near noise."""
    return shift * t / (1 + (shift - 1) * t)


def flow_loss(model, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, **condition) -> torch.Tensor:
    """The training loss: mean squared error between the model's velocity at x_t and ε − x₀."""
    prediction = model(noisy(x0, noise, t), t, **condition)
    return torch.mean((prediction.float() - velocity(x0, noise).float()) ** 2)


def sampling_times(steps: int, shift: float = 1.0, train_steps: int = 1000) -> torch.Tensor:
    """The times an Euler sampler visits, from 1 (noise) down, and the final 0 — as diffusers'
    ``FlowMatchEulerDiscreteScheduler.set_timesteps`` makes them: evenly spaced from 1 to the smallest
    training time (itself shifted), then shifted."""
    smallest = shifted(torch.tensor(1.0 / train_steps, dtype=torch.float64), shift)
    t = shifted(torch.linspace(1.0, float(smallest), steps, dtype=torch.float64), shift)
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def guided(model, empty: torch.Tensor, guidance: float):
    """Classifier-free guidance of a velocity model ``v(x, t, tokens)``, as with diffusion:
    v = v(∅) + w·(v(prompt) − v(∅)), both halves in one batch; ``empty`` the empty prompt's token ids."""

    def velocity(x, t, tokens):
        told, untold = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([tokens, empty])).chunk(2)
        return untold + guidance * (told - untold)

    return velocity


@torch.no_grad()
def sample(model, noise: torch.Tensor, steps: int, shift: float = 1.0, **condition) -> torch.Tensor:
    """Euler's method on dx/dt = v(x, t) from t = 1 (``noise``) to t = 0: each step moves x by the predicted
    velocity times the (negative) time step."""
    times = sampling_times(steps, shift)
    x = noise
    for t, t_next in zip(times[:-1], times[1:]):
        v = model(x, t.expand(x.shape[0]).to(x.dtype), **condition)
        x = x + (t_next - t).to(x.dtype) * v
    return x
