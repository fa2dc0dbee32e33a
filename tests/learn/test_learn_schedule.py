"""The teaching DDPM's maths, checked against diffusers' independent implementation."""

import pytest
import torch

from genimg.learn.schedule import cosine_schedule, ddim_step, ddpm_step, linear_schedule, q_sample

SCHEDULES = {"linear": (linear_schedule, "linear"), "cosine": (cosine_schedule, "squaredcos_cap_v2")}


def _ours_and_theirs(name, cls):
    ours_fn, theirs_name = SCHEDULES[name]
    theirs = cls(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule=theirs_name,
                 clip_sample=False, **({"set_alpha_to_one": True} if cls.__name__ == "DDIMScheduler" else {}))
    # diffusers builds its tables in float32, where 1 − ᾱ_t near t = 0 keeps ~3 digits; redo them in
    # float64 from its own betas so that the comparison measures the algorithms, not the rounding.
    theirs.betas = theirs.betas.double()
    theirs.alphas = 1.0 - theirs.betas
    theirs.alphas_cumprod = torch.cumprod(theirs.alphas, dim=0)
    if hasattr(theirs, "final_alpha_cumprod"):
        theirs.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ours_fn(), theirs


def test_ddpm_paper_linear_schedule_known_values():
    s = linear_schedule()
    assert s.T == 1000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alpha_bars[0].item() == pytest.approx(0.9999)
    # ᾱ_T ≈ 4.04e-5: the signal is essentially gone at t = T (DDPM §4: L_T ≈ 1e-5 bits/dim).
    assert s.alpha_bars[-1].item() == pytest.approx(4.036e-5, rel=1e-2)
    assert s.alpha_bars[499].item() == pytest.approx(0.0782, rel=1e-2)


@pytest.mark.parametrize("name", SCHEDULES)
def test_q_sample_matches_diffusers_add_noise(name):
    from diffusers import DDPMScheduler

    ours, theirs = _ours_and_theirs(name, DDPMScheduler)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    assert torch.allclose(q_sample(ours, x0, t, eps), theirs.add_noise(x0.double(), eps.double(), t).float(), atol=1e-5)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("t", [999, 500, 10, 2, 1, 0])
def test_ddpm_step_matches_diffusers(name, t):
    from diffusers import DDPMScheduler

    ours, theirs = _ours_and_theirs(name, DDPMScheduler)
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # as diffusers draws it
    expected = theirs.step(eps.double(), t, x_t.double(), generator=torch.Generator().manual_seed(7)).prev_sample
    assert torch.allclose(ddpm_step(ours, x_t, eps, t, z.float()), expected.float(), atol=1e-5)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_diffusers(name, eta):
    from diffusers import DDIMScheduler

    ours, theirs = _ours_and_theirs(name, DDIMScheduler)
    theirs.set_timesteps(50)
    g = torch.Generator().manual_seed(2)
    x_t, eps, z = (torch.randn(2, 1, 8, 8, generator=g) for _ in range(3))
    for t in (980, 500, 20, 0):
        expected = theirs.step(eps.double(), t, x_t.double(), eta=eta, variance_noise=z.double()).prev_sample
        assert torch.allclose(ddim_step(ours, x_t, eps, t, t - 20, eta, z), expected.float(), atol=1e-5), t


@pytest.mark.parametrize("steps", [30, 50, 7])
def test_ddim_sampling_runs_exactly_the_steps_asked_at_diffusers_leading_times(steps):
    from diffusers import DDIMScheduler

    from genimg.learn.ddpm import GaussianDiffusion

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight, self.times = torch.nn.Parameter(torch.zeros(())), []

        def forward(self, x, t, y=None):
            self.times.append(int(t[0]))
            return torch.zeros_like(x)

    model = Recorder()
    GaussianDiffusion(model, linear_schedule()).sample((1, 1, 4, 4), sampler="ddim", steps=steps)
    theirs = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="leading")
    theirs.set_timesteps(steps)
    assert model.times == theirs.timesteps.tolist() and len(model.times) == steps
