"""Sample from a trained teaching run: images, and the GIF of the reverse process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from genimg.errors import UsageError


@dataclass
class SampleRequest:
    count: int = 64
    label: int | None = None  # a class index; None = every class in turn (conditional) or unconditional
    guidance: float = 3.0
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    seed: int = 0
    gif: bool = True
    prompt: str | None = None  # latent diffusion runs: the text; None = "a <class>" for each class in turn


def load_run(run: Path):
    from genimg.learn.runs import config_from_dict
    from genimg.learn.train_dcgan import GANConfig
    from genimg.learn.train_ddpm import DDPMConfig
    from genimg.learn.train_flow import FlowConfig
    from genimg.learn.train_ldm import LDMConfig

    if not (run / "config.json").is_file() or not (run / "checkpoint.safetensors").is_file():
        raise UsageError(f"{run} is not a training run (no config.json and checkpoint.safetensors); "
                         "train one with `genimg learn ddpm`, `ldm` or `dcgan`")
    return config_from_dict(json.loads((run / "config.json").read_text()),
                            {"ddpm": DDPMConfig, "ldm": LDMConfig, "dcgan": GANConfig, "flow": FlowConfig})


def load_ddpm(run: Path, config):
    """A DDPM run's diffusion model with its EMA weights, and its number of classes (None: unconditional)."""
    from genimg.learn import datasets
    from genimg.learn.train_ddpm import build_diffusion
    from genimg.state_file import load_state

    ema = load_state(run / "checkpoint.safetensors")["ema"]
    classes = ema["class_emb.weight"].shape[0] - 1 if "class_emb.weight" in ema else None
    diffusion = build_diffusion(config, datasets.channels(config.dataset), classes)
    diffusion.model.load_state_dict(ema)
    diffusion.model.eval()
    return diffusion, classes


def load_base(base_run: Path, purpose: str):
    """A DDPM run to build on (LoRA, ControlNet): its diffusion model with the EMA weights, its config and
    the number of classes. ``purpose`` completes the refusal of another kind of run ("LoRA fine-tunes")."""
    config = load_run(base_run)
    if config.kind != "ddpm":
        raise UsageError(f"{base_run} is a {config.kind} run; {purpose} a DDPM run (`genimg learn ddpm`)")
    diffusion, classes = load_ddpm(base_run, config)
    return diffusion, config, classes


def sample_run(run: Path, request: SampleRequest) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(images, frames of the reverse process) from the run's EMA weights (DDPM, LDM) or generator (DCGAN)."""
    from genimg.learn import datasets
    from genimg.state_file import load_state

    config = load_run(run)
    generator = torch.Generator().manual_seed(request.seed)
    if request.prompt is not None and config.kind not in ("ldm", "flow"):
        raise UsageError(f"{run} is a {config.kind} run, which takes no prompt; give --class, or sample an ldm run")
    if config.kind == "dcgan":
        from genimg.learn.dcgan import Generator

        state = load_state(run / "checkpoint.safetensors")
        # the first layer reads the noise and, for a conditional run, the one-hot class beside it
        classes = state["generator"]["net.0.weight"].shape[0] - config.z_dim or None
        g = Generator(config.z_dim, datasets.channels(config.dataset), config.size, config.features, classes)
        g.load_state_dict(state["generator"])
        g.eval()
        y = _labels(request, classes)
        with torch.no_grad():
            return g(torch.randn(request.count, config.z_dim, generator=generator), y), []
    if config.kind in ("ldm", "flow"):
        return _sample_ldm(run, request, generator)
    from genimg.learn.ddpm import GaussianDiffusion

    diffusion, classes = load_ddpm(run, config)
    y = _labels(request, classes)
    frames: list[torch.Tensor] = []
    every = max(1, (config.timesteps if request.sampler == "ddpm" else request.steps) // 40)

    def keep(i, x):
        if request.gif and i % every == 0:
            frames.append(x.clamp(-1, 1).clone())

    channels = datasets.channels(config.dataset)
    images = GaussianDiffusion(diffusion.model, diffusion.schedule).sample(
        (request.count, channels, config.size, config.size), y=y, guidance=request.guidance if classes else 1.0,
        sampler=request.sampler, steps=request.steps, eta=request.eta, generator=generator, on_step=keep)
    frames.append(images)
    return images, frames


def _sample_ldm(run: Path, request: SampleRequest, generator: torch.Generator):
    """Latent diffusion and latent flow: every image for ``request.prompt``, or "a <class>" for each class in
    turn; the frames are the codes of the reverse process decoded (a flow run's sampler is Euler's, no GIF)."""
    from genimg.learn.ldm import prompt_for
    from genimg.learn.train_flow import load_flow
    from genimg.learn.train_ldm import load_ldm

    flow = load_run(run).kind == "flow"
    ldm, _, names = (load_flow if flow else load_ldm)(run)
    labels = _labels(request, len(names))
    prompts = [request.prompt] * request.count if request.prompt is not None else [prompt_for(names[int(k)]) for k in labels]
    try:
        ldm.tokenizer(prompts[:1])
    except ValueError as e:
        raise UsageError(f"--prompt: {e}") from None
    codes: list[torch.Tensor] = []
    every = max(1, request.steps // 40)

    def keep(i, z):
        if request.gif and i % every == 0:
            codes.append(z.clone())

    if flow:
        return ldm.sample(prompts, request.guidance, request.steps, generator), []
    images = ldm.sample(prompts, request.guidance, request.sampler, request.steps, generator, keep)
    return images, [ldm.decode(z) for z in codes] + [images]


def _labels(request: SampleRequest, classes: int | None) -> torch.Tensor | None:
    """The class of each image: the one asked for, or every class in turn; None for an unconditional run."""
    if not classes:
        if request.label is not None:
            raise UsageError("this run was trained without classes; leave out --class")
        return None
    if request.label is not None and not 0 <= request.label < classes:
        raise UsageError(f"--class must be between 0 and {classes - 1} for this run")
    return torch.full((request.count,), request.label) if request.label is not None else torch.arange(request.count) % classes
