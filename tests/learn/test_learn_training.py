"""The teaching module trains, checkpoints, resumes exactly, and draws its pictures."""

import numpy as np
import pytest
import torch

from genimg.state_file import load_state, save_state
from genimg.learn.train_dcgan import GANConfig, train_dcgan
from genimg.learn.train_ddpm import DDPMConfig, train_ddpm


def test_checkpoint_round_trips_nested_state_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "rng": torch.get_rng_state()}
    save_state(tmp_path / "c.safetensors", state)
    back = load_state(tmp_path / "c.safetensors")
    assert back["epoch"] == 3 and torch.equal(back["rng"], state["rng"])
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(back["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (tmp_path / "c.safetensors").read_bytes()[:8] != b"\x80\x04"  # not a pickle


def _tiny_ddpm(**kw):
    settings = dict(dataset="digits", size=8, epochs=4, batch=64, base=8, mults=(1, 2), timesteps=50, limit=256,
                    sample_every=2)
    return DDPMConfig(**{**settings, **kw})


def test_ddpm_loss_decreases_and_pictures_are_written(tmp_path):
    run = tmp_path / "run"
    train_ddpm(run, _tiny_ddpm(epochs=6))
    losses = [float(line.split(",")[-1]) for line in (run / "loss.csv").read_text().splitlines()[1:]]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    from PIL import Image

    for name in ("config.json", "checkpoint.safetensors", "loss.png"):
        assert (run / name).is_file(), name
    # Grids of 8 x 8 samples (a row per class of 10 digits when conditional), drawn at twice their size.
    for epoch in ("002", "006"):
        with Image.open(run / "samples" / f"epoch_{epoch}.png") as grid:
            cells = np.asarray(grid.convert("L"), dtype=float)
        assert grid.size[0] >= 8 * 16 and grid.size[1] >= 10 * 16 and cells.std() > 10  # not blank
    with Image.open(run / "forward_noising.png") as strip:
        columns = np.split(np.asarray(strip.convert("L"), dtype=float)[:, : strip.width // 10 * 10], 10, axis=1)
    # From x_0 to x_T: each column is further from the clean digits than the one before it.
    likeness = [np.corrcoef(columns[0].ravel(), c.ravel())[0, 1] for c in columns]
    assert all(a > b for a, b in zip(likeness, likeness[1:])) and likeness[-1] < 0.7


def test_resumed_ddpm_run_matches_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_ddpm(whole, _tiny_ddpm())
    train_ddpm(parts, _tiny_ddpm(), stop_after_epoch=2)
    train_ddpm(parts, _tiny_ddpm(), resume=True)
    a, b = load_state(whole / "checkpoint.safetensors"), load_state(parts / "checkpoint.safetensors")
    assert a["epoch"] == b["epoch"] == 4
    for key in a["ema"]:
        assert torch.allclose(a["ema"][key], b["ema"][key], atol=1e-6), key
    assert (whole / "loss.csv").read_text() == (parts / "loss.csv").read_text()


@pytest.mark.slow  # two more trainings; an exact resume is checked in the default run below
def test_a_finished_ddpm_run_is_lengthened_by_resume_with_more_epochs(cli, tmp_path):
    run = tmp_path / "run"
    args = ("learn", "ddpm", "-o", run, "--dataset", "digits", "--size", "8", "--batch", "512", "--quiet")
    assert cli(*args, "--epochs", "1").code == 0
    longer = cli(*args, "--epochs", "3", "--resume")
    assert longer.code == 0, longer
    state = load_state(run / "checkpoint.safetensors")
    assert state["epoch"] == 3
    steps = [int(line.split(",")[1]) for line in (run / "loss.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 3 * 4  # 1,797 digits / 512 = 4 steps an epoch
    assert state["lr_schedule"]["total_steps"] == 12


def test_resumed_dcgan_run_matches_an_uninterrupted_one(tmp_path):
    config = dict(dataset="digits", size=32, epochs=3, batch=32, features=8, limit=128, sample_every=3)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_dcgan(whole, GANConfig(**config))
    train_dcgan(parts, GANConfig(**config), stop_after_epoch=1)
    train_dcgan(parts, GANConfig(**config), resume=True)
    a, b = load_state(whole / "checkpoint.safetensors"), load_state(parts / "checkpoint.safetensors")
    for key in a["generator"]:
        assert torch.allclose(a["generator"][key].float(), b["generator"][key].float(), atol=1e-6), key
    assert (whole / "samples" / "epoch_003.png").is_file() and (whole / "loss.png").is_file()


def test_a_finished_run_is_not_overwritten_by_accident(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "checkpoint.safetensors").write_bytes(b"weights")  # a run that got somewhere
    result = cli("learn", "ddpm", "-o", run, "--epochs", "1")
    assert result.code == 2 and "--resume" in result.err
    assert (run / "config.json").read_text() == "{}" and (run / "checkpoint.safetensors").read_bytes() == b"weights"


def test_sample_command_writes_grid_and_reverse_gif(cli, tmp_path):
    run = tmp_path / "run"
    train_ddpm(run, _tiny_ddpm(epochs=1))
    out = tmp_path / "digits3.png"
    result = cli("learn", "sample", run, "--class", "3", "--steps", "10", "-n", "8", "-o", out)
    assert result.code == 0, result
    from PIL import Image

    with Image.open(out.with_suffix(".gif")) as gif:
        assert gif.n_frames > 3
    assert cli("learn", "sample", run, "--class", "11", "-o", out).code == 2


def test_dcgan_follows_the_paper():
    from torch import nn

    from genimg.learn.dcgan import Discriminator, Generator, init_weights

    for size in (32, 64):
        g, d = Generator(size=size, channels=3), Discriminator(size=size, channels=3)
        g.apply(init_weights)
        assert g(torch.randn(2, 100)).shape == (2, 3, size, size)
        assert d(torch.randn(2, 3, size, size)).shape == (2,)
        convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
        assert abs(torch.cat([c.weight.flatten() for c in convs]).std().item() - 0.02) < 0.002
        assert isinstance(list(g.net)[-1], nn.Tanh)
        assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in d.modules())
        assert not isinstance(list(d.net)[1], nn.BatchNorm2d)  # no BatchNorm on D's input layer


def test_conditional_dcgan_takes_the_class_in_both_networks():
    from genimg.learn.dcgan import Discriminator, Generator, init_weights

    torch.manual_seed(0)
    g, d = Generator(size=32, features=8, num_classes=10), Discriminator(size=32, features=8, num_classes=10)
    g.apply(init_weights)
    d.apply(init_weights)
    g.eval()
    d.eval()
    z = torch.randn(1, 100).repeat(2, 1)
    threes, sevens = torch.tensor([3, 3]), torch.tensor([7, 7])
    a, b = g(z, threes), g(z, sevens)
    assert torch.equal(a[0], a[1]) and not torch.allclose(a, b)  # same noise, other class: another image
    assert not torch.allclose(d(a, threes), d(a, sevens))


def test_conditional_dcgan_run_samples_the_class_asked_for(cli, tmp_path):
    run = tmp_path / "run"
    config = dict(dataset="digits", size=32, epochs=1, batch=32, features=8, limit=64, sample_every=1, conditional=True)
    train_dcgan(run, GANConfig(**config))
    out = tmp_path / "threes.png"
    result = cli("learn", "sample", run, "--class", "3", "-n", "4", "-o", out)
    assert result.code == 0, result
    from PIL import Image

    with Image.open(out) as grid:
        assert grid.mode == "L"
    from genimg.learn.sampling import SampleRequest, sample_run

    threes, _ = sample_run(run, SampleRequest(count=4, label=3, seed=5))
    # The images are the trained generator's for the same noise and the one-hot of class 3, and only that.
    from genimg.learn.dcgan import Generator
    from genimg.state_file import load_state

    g = Generator(GANConfig(**config).z_dim, 1, 32, 8, 10)
    g.load_state_dict(load_state(run / "checkpoint.safetensors")["generator"])
    g.eval()
    z = torch.randn(4, GANConfig(**config).z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(threes, g(z, torch.full((4,), 3)), atol=1e-6)
        assert (threes - g(z, torch.full((4,), 7))).abs().max() > 1e-6  # (one epoch: small outputs, distinct)
    assert cli("learn", "sample", run, "--class", "10", "-o", out).code == 2


def test_dcgan_without_classes_refuses_a_class(cli, tmp_path):
    run = tmp_path / "run"
    train_dcgan(run, GANConfig(dataset="digits", size=32, epochs=1, batch=32, features=8, limit=64))
    result = cli("learn", "sample", run, "--class", "3", "-o", tmp_path / "x.png")
    assert result.code == 2 and "without classes" in result.err
    result = cli("learn", "dcgan", "-o", tmp_path / "faces", "--dataset", "faces", "--conditional", "--epochs", "1")
    assert result.code == 2 and "no labels" in result.err
    assert not (tmp_path / "faces").exists()  # refused before anything is written


@pytest.mark.slow  # a training interrupted and resumed; Ctrl-C's own path is checked in the default run (test_reliability.py)
def test_ctrl_c_in_learn_names_the_checkpoint_kept_and_resume_finishes_the_run(cli, tmp_path, monkeypatch):
    import genimg.learn.train_ddpm as trainer

    run = tmp_path / "run"
    args = ("learn", "ddpm", "-o", run, "--dataset", "digits", "--size", "8", "--batch", "512", "--epochs", "3",
            "--quiet")
    real_log, calls = trainer.log_losses, []

    def ctrl_c_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # epoch 2's steps are done, its checkpoint not yet written
            raise KeyboardInterrupt
        return real_log(*a, **k)

    monkeypatch.setattr(trainer, "log_losses", ctrl_c_in_epoch_two)
    stopped = cli(*args)
    assert stopped.code == 130
    assert f"interrupted in epoch 2 of 3; {run / 'checkpoint.safetensors'} holds epoch 1" in stopped.err
    assert "--resume" in stopped.err
    monkeypatch.setattr(trainer, "log_losses", real_log)
    resumed = cli(*args, "--resume")
    assert resumed.code == 0, resumed
    epochs = [int(row.split(",")[0]) for row in (run / "loss.csv").read_text().splitlines()[1:]]
    assert sorted(set(epochs)) == [1, 2, 3]
