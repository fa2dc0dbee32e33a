"""The course's Euler and DPM-Solver++(2M), written from their papers, step by step against diffusers'
EulerDiscreteScheduler and DPMSolverMultistepScheduler on the same schedule and the same model."""

import pytest
import torch

from genimg.learn import samplers
from genimg.learn.schedule import NoiseSchedule, cosine_schedule, linear_schedule

SCHEDULES = {"linear": (linear_schedule, "linear"), "cosine": (cosine_schedule, "squaredcos_cap_v2")}


def _theirs(cls, name, **extra):
    theirs = cls(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule=SCHEDULES[name][1], **extra)
    # diffusers builds its tables in float32; rebuilt in float64 from its own betas, the comparison
    # measures the algorithms rather than the rounding (as tests/learn/test_learn_schedule.py does)
    theirs.betas = theirs.betas.double()
    assert torch.allclose(theirs.betas, SCHEDULES[name][0]().betas, atol=1e-8)  # the course's schedule
    theirs.alphas = 1.0 - theirs.betas
    theirs.alphas_cumprod = torch.cumprod(theirs.alphas, dim=0)
    return theirs


def _model(x, t):
    """A fixed, smooth stand-in for a trained network: ε_θ(x, t)."""
    weight = torch.linspace(-0.5, 0.5, x[0].numel(), dtype=torch.float64).view(x[0].shape)
    return torch.tanh(x.double() * weight + float(t) / 1000).to(x.dtype)


def _close(ours, theirs, what):
    error = float((ours.double() - theirs.double()).norm() / theirs.double().norm().clamp(min=1e-12))
    assert error < 1e-5, (what, error)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("steps", [5, 20, 50])
def test_euler_equals_diffusers_at_every_step(name, steps):
    from diffusers import EulerDiscreteScheduler

    theirs = _theirs(EulerDiscreteScheduler, name, timestep_spacing="leading")
    theirs.set_timesteps(steps)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected, x = [], noise.float() * theirs.init_noise_sigma
    for t in theirs.timesteps:
        x = theirs.step(_model(theirs.scale_model_input(x, t), t), t, x).prev_sample
        expected.append(x)
    ours = NoiseSchedule.from_betas(theirs.betas)  # their float32 betas: the same schedule to the last bit
    got = []
    samplers.euler_sample(ours, _model, noise, steps, on_step=lambda i, x: got.append(x))
    assert len(got) == steps
    # Euler's x̃ = x_t·√(σ² + 1) reaches σ_max ≈ 157 and diffusers keeps it in float32: compared as x_t,
    # the image the model sees (as the DDIM test compares), the two agree to 1e-5.
    for i, (a, b, sigma) in enumerate(zip(got, expected, theirs.sigmas[1:].double())):
        scale = float((sigma**2 + 1).sqrt())
        assert torch.allclose(a / scale, b.double() / scale, atol=1e-5), (i, float((a - b.double()).abs().max()) / scale)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("steps", [5, 20, 50])
def test_dpm_solver_2m_equals_diffusers_at_every_step(name, steps):
    from diffusers import DPMSolverMultistepScheduler

    theirs = _theirs(DPMSolverMultistepScheduler, name, algorithm_type="dpmsolver++", solver_order=2,
                     timestep_spacing="leading")
    theirs.set_timesteps(steps)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected, x = [], noise.clone()
    for t in theirs.timesteps:
        x = theirs.step(_model(x, t), t, x).prev_sample
        expected.append(x)
    ours = NoiseSchedule.from_betas(theirs.betas)
    assert samplers.dpm_times(ours, steps) == theirs.timesteps.tolist()
    got = []
    samplers.dpmpp_2m_sample(ours, _model, noise, steps, on_step=lambda i, x: got.append(x))
    for i, (a, b) in enumerate(zip(got, expected)):
        _close(a, b, f"step {i}")


def test_with_a_perfect_denoiser_both_land_on_the_image_it_knows():
    """A model that knows x_0 gives the ODE's exact slope: either solver lands on x_0."""
    schedule = linear_schedule()
    x0 = torch.linspace(-1, 1, 64, dtype=torch.float64).view(1, 1, 8, 8)

    def knows_dpm(x_t, t):  # ε = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t)
        a = float(schedule.alpha_bars[t])
        return (x_t - a ** 0.5 * x0) / (1 - a) ** 0.5

    def knows_euler(x_t, t):  # the model sees x_t = x̃/√(σ² + 1), x̃ = x_0 + σ ε
        sigma = samplers.karras_sigma(schedule, t)
        return (x_t * (sigma ** 2 + 1) ** 0.5 - x0) / sigma

    noise = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(samplers.dpmpp_2m_sample(schedule, knows_dpm, noise, 10), x0, atol=1e-6)
    assert torch.allclose(samplers.euler_sample(schedule, knows_euler, noise, 10), x0, atol=1e-6)
