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


def test_a_new_dit_predicts_no_motion_and_reads_its_prompt_once_trained_a_little():
    from genimg.learn.dit import DiT

    torch.manual_seed(0)
    model = DiT(channels=4, vocabulary=12, length=6, dim=48, depth=2, heads=4)
    x, t = torch.randn(3, 4, 4, 4), torch.rand(3)
    ids = torch.tensor([[1, 2, 0, 0, 0, 0], [1, 3, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0]])
    assert torch.equal(model(x, t, ids), torch.zeros_like(x))  # adaLN-Zero and a zero output layer
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    targets = {2: torch.ones(4, 4, 4), 3: -torch.ones(4, 4, 4)}  # each prompt its own velocity
    for _ in range(60):
        loss = torch.mean((model(x, t, ids) - torch.stack([targets[int(i)] for i in ids[:, 1]])) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model(x, t, ids)
    assert out[0].mean() > 0.5 and out[1].mean() < -0.5  # told apart by the text tokens alone


@pytest.mark.slow  # the chapter's whole CLI run and its measurements; its pieces are checked against the libraries above
def test_learn_flow_trains_samples_prompts_and_resumes_exactly(cli, tmp_path):
    import json

    from PIL import Image
    from safetensors.torch import load_file

    from genimg.learn.train_flow import FlowConfig, train_flow

    made = cli("learn", "flow", "--epochs", "2", "--vae-epochs", "2", "--size", "8", "--quiet", "--json",
               "-o", tmp_path / "straight")
    assert made.code == 0, made
    measured = json.loads(made.out)
    assert 0 <= measured["samples read as the digit asked for"] <= 1 and measured["fid"] > 0
    run = tmp_path / "straight"
    for name in ("loss.png", "samples/epoch_002.png", "vae/checkpoint.safetensors"):
        assert (run / name).is_file(), name
    config = FlowConfig(epochs=2, vae_epochs=2, size=8)
    train_flow(tmp_path / "parts", config, stop_after_epoch=1)
    train_flow(tmp_path / "parts", config, resume=True)
    one, two = (load_file(str(tmp_path / r / "checkpoint.safetensors")) for r in ("straight", "parts"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    distilled = cli("learn", "distill", run, "-o", tmp_path / "student", "--pairs", "64", "--teacher-steps", "2",
                    "--epochs", "1", "--json")
    assert distilled.code == 0, distilled
    rows = [json.loads(line) for line in distilled.out.splitlines()]
    assert [(r["run"], r["steps"]) for r in rows] == [("teacher", 50), ("student", 1), ("student", 2), ("student", 4)]
    assert all(0 <= r["read as asked"] <= 1 and r["fid"] > 0 for r in rows)
    refused = cli("learn", "distill", tmp_path / "student", "-o", tmp_path / "again")
    assert refused.code == 2 and "is not a run of `genimg learn flow`" in refused.err
    for name in ("seven.png", "again.png"):
        sampled = cli("learn", "sample", run, "--prompt", "the digit seven", "-n", "4", "--steps", "3",
                      "-o", tmp_path / name)
        assert sampled.code == 0, sampled
    assert torch.equal(torch.tensor(list(Image.open(tmp_path / "seven.png").getdata())),
                       torch.tensor(list(Image.open(tmp_path / "again.png").getdata())))
