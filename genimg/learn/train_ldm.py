"""Train the course's latent diffusion model (ldm.py) with its settings at the top: first the autoencoder
with a spatial code (vae.py; skipped when a trained one is given), then the text-conditioned DDPM on its
scaled codes. Checkpoints every epoch and resumes exactly; draws the attention map of a prompt's word.
``genimg learn ldm`` runs it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genimg.learn.runs import (Progress, end_epoch, log_losses, one_cycle, open_run, read_losses, resume_training,
                               training_state)
from genimg.output.plots import loss_curve


@dataclass
class LDMConfig:
    dataset: str = "digits"
    size: int = 16
    vae: str | None = None  # a `genimg learn vae --spatial` run; None: train one into RUN/vae first
    vae_epochs: int = 100
    vae_beta: float = 0.05  # small, as Stable Diffusion's autoencoder's KL weight: sharp codes, roughly Gaussian
    latent: int = 4  # channels of the code, at a quarter of the image's side
    epochs: int = 150
    batch: int = 128
    lr: float = 2e-3
    schedule: str = "cosine"
    timesteps: int = 1000
    label_dropout: float = 0.1  # the share of prompts replaced by the empty one (for guidance)
    base: int = 32  # the pixel DDPM's width: the two chapters' times compare like with like
    mults: tuple = (1, 2)
    text_dim: int = 64
    text_layers: int = 2
    ema_decay: float = 0.995
    seed: int = 0
    sample_every: int = 25
    limit: int | None = None
    conditional: bool = True  # prompts name the dataset's classes, so it must have them
    kind: str = field(default="ldm", init=False)


def build_ldm(config: LDMConfig, vae, class_names: list[str], scale: float):
    from genimg.learn.ddpm import GaussianDiffusion
    from genimg.learn.ldm import LatentDiffusion, TextUNet, Tokenizer
    from genimg.learn.schedule import SCHEDULES

    tokenizer = Tokenizer.for_classes(class_names)
    unet = TextUNet(vae.latent, len(tokenizer.vocabulary), tokenizer.length, config.base, config.mults,
                    config.text_dim, config.text_layers)
    diffusion = GaussianDiffusion(unet, SCHEDULES[config.schedule](config.timesteps), config.label_dropout)
    return LatentDiffusion(vae, diffusion, tokenizer, scale)


def first_stage(run: Path, config: LDMConfig, progress: Progress | None):
    """The frozen autoencoder: the run named by ``config.vae``, or one trained now into RUN/vae."""
    from genimg.errors import UsageError
    from genimg.learn.train_vae import VAEConfig, load_vae, train_vae

    if config.vae is None and not (run / "vae" / "checkpoint.safetensors").is_file():
        train_vae(run / "vae", VAEConfig(dataset=config.dataset, size=config.size, epochs=config.vae_epochs,
                                         latent=config.latent, beta=config.vae_beta, spatial=True, seed=config.seed,
                                         limit=config.limit), overwrite=True, progress=progress)
    vae_run = Path(config.vae) if config.vae else run / "vae"
    vae, vae_config = load_vae(vae_run)
    if not vae_config.spatial or vae_config.size != config.size:
        raise UsageError(f"{vae_run} is not an autoencoder with a spatial code for {config.size}-pixel images; "
                         f"train one with `genimg learn vae --spatial --size {config.size}`")
    return vae


def train_ldm(run: Path, config: LDMConfig, resume: bool = False, overwrite: bool = False,
              progress: Progress | None = None, vae_progress: Progress | None = None,
              stop_after_epoch: int | None = None) -> LDMConfig:
    from genimg.learn import pictures
    from genimg.learn.ema import EMA
    from genimg.learn.ldm import TEMPLATES, latent_scale, prompt_for

    vae = first_stage(run, config, None) if config.vae else None  # a wrong --vae: nothing written
    config, data, _ = open_run(run, config, resume, overwrite)
    vae = vae or first_stage(run, config, vae_progress)
    with torch.no_grad():
        mu = vae.encoder(data.images)[0]
    ldm = build_ldm(config, vae, data.class_names, latent_scale(mu))
    latents = mu * ldm.scale
    unet = ldm.diffusion.model
    ema = EMA(unet, config.ema_decay)
    opt = torch.optim.AdamW(unet.parameters(), lr=config.lr)
    steps_per_epoch = (len(latents) + config.batch - 1) // config.batch
    sched = one_cycle(opt, config.lr, steps_per_epoch * config.epochs)
    data_gen = torch.Generator().manual_seed(config.seed)
    epoch = 0
    if resume:
        sched, epoch = resume_training(run, unet, ema, opt, sched, data_gen, config.lr, steps_per_epoch * config.epochs)
    began = time.perf_counter()
    while epoch < config.epochs:
        unet.train()
        order = torch.randperm(len(latents), generator=data_gen)
        templates = torch.randint(len(TEMPLATES), (len(latents),), generator=data_gen)
        rows = []
        for i in range(steps_per_epoch):
            index = order[i * config.batch:(i + 1) * config.batch]
            prompts = [prompt_for(data.class_names[int(data.labels[j])], TEMPLATES[int(templates[j])]) for j in index]
            loss = ldm(latents[index], prompts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(unet)
            rows.append({"epoch": epoch + 1, "step": epoch * steps_per_epoch + i + 1, "loss": round(loss.item(), 6)})
        epoch += 1
        log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            sampler = build_ldm(config, vae, data.class_names, ldm.scale)
            sampler.diffusion.model.load_state_dict(ema.model.state_dict())
            prompts = [prompt_for(name) for name in data.class_names for _ in range(8)]
            pictures.save_grid(sampler.sample(prompts, steps=50, generator=torch.Generator().manual_seed(0)),
                               run / "samples" / f"epoch_{epoch:03d}.png")
        state = training_state(unet, ema, opt, sched, data_gen, epoch, scale=torch.tensor(ldm.scale))
        end_epoch(run, state, rows, progress, config.epochs, began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    loss_curve(read_losses(run), run / "loss.png")
    if epoch == config.epochs:
        attention_figure(load_ldm(run)[0], data.class_names, run / "attention.png")
    return config


def load_ldm(run: Path):
    """A trained run's model (EMA weights), config and class names (what its prompts may name)."""
    import json

    from genimg.learn.runs import config_from_dict
    from genimg.state_file import load_state

    config = config_from_dict(json.loads((run / "config.json").read_text()), {"ldm": LDMConfig})
    state = load_state(run / "checkpoint.safetensors")
    from genimg.learn import datasets

    class_names = datasets.load(config.dataset, 8, limit=1).class_names
    ldm = build_ldm(config, first_stage(run, config, None), class_names, float(state["scale"]))
    ldm.diffusion.model.load_state_dict(state["ema"])
    return ldm.eval(), config, class_names


@torch.no_grad()
def attention_figure(ldm, class_names: list[str], path: Path, steps: int = 50) -> Path:
    """Samples for "a <class>" (top row) and, below each, where the class's word was attended to at the
    last step: the mean of the two cross-attention maps of the finest resolution, upsampled to the image."""
    from torch.nn import functional as F

    from genimg.learn.ldm import prompt_for
    from genimg.learn.pictures import save_grid

    prompts = [prompt_for(name) for name in class_names]
    finest = [layer for layer in ldm.diffusion.model.up[-1] if hasattr(layer, "keep_map")]
    for layer in finest:
        layer.keep_map = True
    try:
        images = ldm.sample(prompts, steps=steps, generator=torch.Generator().manual_seed(0))
        word = 2  # "<s> a seven": the class's word is the third token
        maps = torch.stack([layer.last_map[:len(prompts), word] for layer in finest]).mean(0)[:, None]
    finally:
        for layer in finest:
            layer.keep_map, layer.last_map = False, None
    maps = F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
    low, high = maps.amin((1, 2, 3), keepdim=True), maps.amax((1, 2, 3), keepdim=True)
    maps = (maps - low) / (high - low).clamp(min=1e-8) * 2 - 1
    return save_grid(torch.cat([images, maps.expand_as(images)]), path, nrow=len(prompts))


@torch.no_grad()
def quality(run: Path, per_class: int = 10, fid_count: int = 500) -> dict:
    """The chapter's measures, by the course's digit classifier (metrics.py): the share of guided samples
    for "a <digit>" read as that digit, their FID against the real digits, and the sampling time."""
    from genimg.learn import datasets
    from genimg.learn.ldm import prompt_for
    from genimg.learn.metrics import fid, train_digit_features

    ldm, config, _ = load_ldm(run)
    digits = datasets.load("digits", config.size)
    judge = train_digit_features(digits.images, digits.labels)
    wanted = torch.arange(10).repeat_interleave(per_class)
    began = time.perf_counter()
    images = ldm.sample([prompt_for(str(int(k))) for k in wanted], generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - began
    more = ldm.sample([prompt_for(str(k % 10)) for k in range(fid_count)], generator=torch.Generator().manual_seed(1))
    return {"samples read as the digit asked for": round(float((judge(images).argmax(1) == wanted).float().mean()), 3),
            "fid": round(fid(judge, digits.images, more), 3),
            "seconds to sample 100": round(seconds, 2)}
