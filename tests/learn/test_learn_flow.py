"""The flow-matching chapter against diffusers: its sampler equals FlowMatchEulerDiscreteScheduler's loop
(shift included), its times and loss equal what diffusers' FLUX training example computes."""

from __future__ import annotations

import pytest
import torch

from genimg.learn import flow


class _Field(torch.nn.Module):
    """A small velocity field v(x, t) with random weights: a stand-in for a trained model."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(9, 32), torch.nn.SiLU(), torch.nn.Linear(32, 8))

    def forward(self, x, t):
        return self.net(torch.cat([x, t.view(-1, 1).to(x.dtype)], dim=1))


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_the_course_sampler_is_diffusers_flow_match_euler_loop(shift):
    from diffusers import FlowMatchEulerDiscreteScheduler

    model = _Field().double()
    noise = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(10)
    assert torch.allclose(flow.sampling_times(10, shift), scheduler.sigmas.double(), atol=1e-6)
    x = noise.clone()
    for t in scheduler.timesteps:  # diffusers' loop: the model told sigma = t / 1000
        v = model(x, (t / 1000).expand(4).double())
        x = scheduler.step(v, t, x).prev_sample.double()
    ours = flow.sample(model, noise, 10, shift)
    assert torch.allclose(ours, x, atol=1e-5)


def test_the_times_and_the_loss_are_diffusers_flux_examples():
    """diffusers' train_dreambooth_lora_flux.py: logit-normal u from compute_density_for_timestep_sampling, the
    noisy input (1 − σ)·x + σ·ε, the target ε − x, the weighted MSE (weighting 'none': plain)."""
    from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

    u = compute_density_for_timestep_sampling("logit_normal", batch_size=6, logit_mean=0.0, logit_std=1.0,
                                              generator=torch.Generator().manual_seed(3))
    assert torch.allclose(flow.logit_normal_times(6, torch.Generator().manual_seed(3)), u)
    model = _Field()
    x0 = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(6, 8, generator=torch.Generator().manual_seed(5))
    sigmas = u.view(-1, 1)
    pred = model((1.0 - sigmas) * x0 + sigmas * noise, u)
    weighting = compute_loss_weighting_for_sd3("none", sigmas)
    theirs = torch.mean((weighting.float() * (pred.float() - (noise - x0)) ** 2).reshape(6, -1), 1).mean()
    assert torch.allclose(flow.flow_loss(model, x0, noise, u), theirs, atol=1e-7)


def test_straight_paths_need_few_steps():
    """For the true velocity of a straight path one Euler step is exact: from ε, x₀ = ε − v."""
    x0 = torch.randn(3, 8, dtype=torch.float64)
    noise = torch.randn(3, 8, dtype=torch.float64)

    def true_velocity(x, t):  # a field that knows x₀: v(x_t, t) = (x_t − x₀) / t
        return (x - x0) / t.view(-1, 1)

    assert torch.allclose(flow.sample(true_velocity, noise, 1), x0, atol=1e-3)  # ends at t = 0 after one step
