"""Denoising diffusion, the whole idea in one module (Ho et al. 2020; Song et al. 2021; Ho & Salimans 2021).

``forward`` is training (DDPM Algorithm 1): pick t, add noise in closed form, predict the noise.
``sample`` is generation: ancestral DDPM sampling (Algorithm 2) or DDIM's faster, optionally
deterministic steps, with classifier-free guidance when the model knows classes.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from genimg.learn.schedule import NoiseSchedule, ddim_step, ddpm_step, q_sample


class GaussianDiffusion(nn.Module):
    def __init__(self, model: nn.Module, schedule: NoiseSchedule, label_dropout: float = 0.1):
        super().__init__()
        self.model = model
        self.schedule = schedule
        self.label_dropout = label_dropout

    def forward(self, x0: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The simplified loss of DDPM eq. 14: ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²  (Algorithm 1)."""
        t = torch.randint(0, self.schedule.T, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        x_t = q_sample(self.schedule, x0, t, eps)
        if y is not None and self.label_dropout > 0:
            # Classifier-free guidance needs the unconditional model too: train it on dropped labels
            # (the model says what "no condition" is: the extra class, or latent diffusion's empty prompt).
            drop = torch.rand(y.shape[0], device=y.device) < self.label_dropout
            y = torch.where(drop.view(-1, *[1] * (y.dim() - 1)), self.model.null_like(y), y)
        return F.mse_loss(self.model(x_t, t, y), eps)

    def predict_eps(self, x_t, t: float, y=None, guidance: float = 1.0):
        """ε_θ, with classifier-free guidance: ε_uncond + w · (ε_cond − ε_uncond); w = 1 is plain conditioning.
        ``t`` may fall between steps (Euler's times do): the time embedding is of a real number."""
        ts = torch.full((x_t.shape[0],), float(t), device=x_t.device)
        if y is None or guidance == 1.0:
            return self.model(x_t, ts, y)
        null = self.model.null_like(y)
        cond, uncond = self.model(torch.cat([x_t, x_t]), torch.cat([ts, ts]), torch.cat([y, null])).chunk(2)
        return uncond + guidance * (cond - uncond)

    @torch.no_grad()
    def sample(self, shape, y=None, guidance: float = 1.0, sampler: str = "ddpm", steps: int | None = None,
               eta: float = 0.0, generator: torch.Generator | None = None,
               on_step: Callable[[int, torch.Tensor], None] | None = None, clip: bool = True) -> torch.Tensor:
        """Generate images of ``shape`` from pure noise x_T ~ N(0, I). ``on_step(i, x)`` sees each x_t.
        Images end clipped to [−1, 1]; latents (``clip=False``, ldm.py) have no such bounds."""
        device = next(self.model.parameters()).device
        x = torch.randn(shape, generator=generator).to(device)
        if sampler == "ddpm":
            for i, t in enumerate(reversed(range(self.schedule.T))):
                eps = self.predict_eps(x, t, y, guidance)
                z = torch.randn(shape, generator=generator).to(device)
                x = ddpm_step(self.schedule, x, eps, t, z)
                if on_step:
                    on_step(i, x)
        elif sampler == "ddim":
            steps = steps or 50
            # Evenly spaced sub-sequence of time steps, as in DDIM §4.2 (and diffusers' "leading" spacing).
            stride = self.schedule.T // steps  # exactly `steps` times: 0, stride, …, (steps − 1)·stride
            times = [i * stride for i in range(steps)][::-1]
            for i, t in enumerate(times):
                eps = self.predict_eps(x, t, y, guidance)
                z = torch.randn(shape, generator=generator).to(device) if eta > 0 else None
                x = ddim_step(self.schedule, x, eps, t, t - stride, eta, z)
                if on_step:
                    on_step(i, x)
        elif sampler in ("euler", "dpmpp-2m"):  # the ODE solvers of samplers.py
            from genimg.learn.samplers import dpmpp_2m_sample, euler_sample

            solve = euler_sample if sampler == "euler" else dpmpp_2m_sample
            x = solve(self.schedule, lambda x_t, t: self.predict_eps(x_t, t, y, guidance), x, steps or 20, on_step)
        else:
            raise ValueError(f"unknown sampler {sampler!r}: use ddpm, ddim, euler or dpmpp-2m")
        return x.clamp(-1, 1) if clip else x
