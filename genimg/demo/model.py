"""Train the built-in ``demo`` model: a complete Stable Diffusion 1.x-format pipeline, from scratch,
on the procedural shapes, on a CPU.

Three stages, each a plain loop: (1) a small VAE learns to compress 64x64 images 4x per side;
(2) the training images are encoded once; (3) a CLIP text encoder with a word-level vocabulary and
a conditional UNet learn together to denoise those latents (ε-prediction, min-SNR weighting,
10% empty captions for classifier-free guidance, EMA of the UNet). The result is saved with
``save_pretrained`` in safetensors and loads through genimg's ordinary factory.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable


@dataclass
class DemoTrainingConfig:
    seed: int = 0
    side: int = 64
    images: int = 20000
    vae_steps: int = 1200
    vae_batch: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_steps: int = 6000
    batch: int = 32
    lr: float = 8e-4
    warmup: int = 200
    caption_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    decoder_steps: int = 3000
    decoder_lr: float = 5e-4
    unet_channels: tuple = (64, 128)
    text_width: int = 64
    text_layers: int = 2
    threads: int = 2


def build_components(config: DemoTrainingConfig, tokenizer_dir: Path):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from genimg.demo.shapes import WORDS
    from genimg.demo.tokenizer import clip_tokenizer

    tokenizer = clip_tokenizer(tokenizer_dir, words=WORDS)
    vocab = len(tokenizer)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, hidden_size=config.text_width, intermediate_size=config.text_width * 2,
        num_hidden_layers=config.text_layers, num_attention_heads=4, max_position_embeddings=77,
        projection_dim=config.text_width, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1))
    # Flat colours compress easily: a slim VAE without mid-block attention trains in minutes.
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[16, 32, 64],
                        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        layers_per_block=1, norm_num_groups=8, sample_size=config.side, mid_block_add_attention=False)
    c1, c2 = config.unet_channels
    # Self-attention over the 16x16 level triples the step time on a CPU; cross-attention at 8x8 and in
    # the middle block is where the caption steers colour and shape.
    unet = UNet2DConditionModel(
        sample_size=config.side // 4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(c1, c2),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=config.text_width, attention_head_dim=4, norm_num_groups=16)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    return tokenizer, text_encoder, vae, unet, scheduler


def sharpen_decoder(vae, x, config: DemoTrainingConfig, report=None) -> float:
    """Stage 4: train the decoder alone on the frozen encoder's latents. The latent space the UNet
    learned stays exactly as it was; only the pictures drawn from it get sharper and truer in colour.
    Returns the reconstruction MSE (in [-1, 1] units) on the first 1,024 images afterwards."""
    import torch
    import torch.nn.functional as F

    from diffusers.optimization import get_scheduler

    g = torch.Generator().manual_seed(config.seed + 4)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
    decoder = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(decoder, lr=config.decoder_lr)
    schedule = get_scheduler("cosine", opt, num_warmup_steps=0, num_training_steps=max(1, config.decoder_steps))
    vae.decoder.train()
    for step in range(config.decoder_steps):
        index = torch.randint(0, len(x), (config.vae_batch,), generator=g)
        recon = vae.decode(latents[index]).sample
        # L1 keeps edges sharp where MSE alone blurs them.
        loss = F.mse_loss(recon, x[index]) + F.l1_loss(recon, x[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if report:
            report("step", stage="decoder", step=step + 1, total=config.decoder_steps, loss=loss.item())
    vae.eval()
    with torch.no_grad():
        recon = torch.cat([vae.decode(latents[i:i + 256]).sample for i in range(0, 1024, 256)])
    return float(F.mse_loss(recon, x[:1024]))


def pixels_tensor(pictures):
    """PIL RGB pictures -> a (N, 3, H, W) float tensor in [-1, 1], as the VAE takes them."""
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(p) for p in pictures])).permute(0, 3, 1, 2).float() / 127.5 - 1


def min_snr_weight(scheduler, t, gamma: float):
    """Min-SNR-γ weighting (Hang et al. 2023) for ε-prediction, from diffusers' ``compute_snr``: stops
    easy, low-noise steps dominating the loss."""
    import torch
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, t)
    return torch.clamp(snr, max=gamma) / snr


def _images_tensor(config: DemoTrainingConfig):
    from genimg.demo.shapes import dataset, training_caption

    rng = random.Random(config.seed + 1)
    pictures, captions = [], []
    for image, scene in dataset(config.images, seed=config.seed, side=config.side):
        pictures.append(image)
        captions.append(training_caption(scene, rng))
    return pixels_tensor(pictures), captions


def train_demo_model(output: Path, config: DemoTrainingConfig | None = None,
                     progress: Callable[..., None] | None = None) -> dict:
    """Train and save the demo pipeline to ``output``; returns the recorded training report."""
    from genimg.pipeline_setup import quiet_libraries

    quiet_libraries()  # diffusers' and transformers' own bars would leak into a log
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionPipeline
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    config = config or DemoTrainingConfig()
    report = progress or (lambda *a, **k: None)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    output = Path(output)
    work = output.parent / f".{output.name}-work"
    tokenizer, text_encoder, vae, unet, scheduler = build_components(config, work / "tokenizer")
    began = time.perf_counter()
    x, captions = _images_tensor(config)
    g = torch.Generator().manual_seed(config.seed)

    # Stage 1: the VAE (reconstruction + a tiny KL term, as in latent diffusion).
    opt = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    vae.train()
    for step in range(config.vae_steps):
        batch = x[torch.randint(0, len(x), (config.vae_batch,), generator=g)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        loss = F.mse_loss(recon, batch) + config.kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        report("step", stage="vae", step=step + 1, total=config.vae_steps, loss=loss.item())
    vae.eval()
    vae_seconds = time.perf_counter() - began

    # Stage 2: encode every image once; scale latents to unit variance (SD's scaling_factor).
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    latents = latents * scaling
    with torch.no_grad():
        recon = torch.cat([vae.decode(latents[i:i + 256] / scaling).sample for i in range(0, 1024, 256)])
    vae_mse = float(F.mse_loss(recon, x[:1024]))

    # Stage 3: text encoder and UNet together.
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    schedule = get_scheduler("cosine", opt, num_warmup_steps=config.warmup, num_training_steps=config.unet_steps)
    # diffusers' EMA warms up as (1 + step) / (10 + step) until it reaches ema_decay.
    ema = EMAModel(unet.parameters(), decay=config.ema_decay)
    unet.train()
    text_encoder.train()
    stage3 = time.perf_counter()
    for step in range(config.unet_steps):
        index = torch.randint(0, len(latents), (config.batch,), generator=g)
        z0 = latents[index]
        tokens = ids[index].clone()
        drop = torch.rand(config.batch, generator=g) < config.caption_dropout
        tokens[drop] = empty
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch,), generator=g)
        zt = scheduler.add_noise(z0, noise, t)
        hidden = text_encoder(tokens)[0]
        pred = unet(zt, t, encoder_hidden_states=hidden).sample
        loss = (min_snr_weight(scheduler, t, config.min_snr_gamma) * F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        schedule.step()
        ema.step(unet.parameters())
        report("step", stage="unet", step=step + 1, total=config.unet_steps, loss=loss.item())
    ema.copy_to(unet.parameters())
    unet.eval()
    text_encoder.eval()
    decoder_mse = sharpen_decoder(vae, x, config, report)
    total = time.perf_counter() - began

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    from genimg.files import give_umask_mode

    pipe.save_pretrained(output, safe_serialization=True)
    give_umask_mode(Path(output).rglob("*"))  # safetensors writes its files 0600
    record = {"config": asdict(config), "vae_reconstruction_mse": vae_mse, "decoder_reconstruction_mse": decoder_mse,
              "latent_scaling_factor": scaling,
              "seconds": {"vae": round(vae_seconds, 1), "unet": round(time.perf_counter() - stage3, 1),
                          "total": round(total, 1)},
              "torch": torch.__version__, "threads": config.threads}
    (output / "genimg_training.json").write_text(json.dumps(record, indent=2))
    # The folder carries its own generation defaults, so `-m FOLDER` runs as the shipped demo does.
    (output / "genimg.toml").write_text(GENERATION_DEFAULTS.format(side=config.side))
    shutil.rmtree(work, ignore_errors=True)
    return record


GENERATION_DEFAULTS = """# Generation defaults for this model folder: genimg reads them whenever the folder is used
# (by the `demo` alias or by its path), the same fields an alias may set.
width = {side}
height = {side}
steps = 20
guidance = 5.0
scheduler = "DPM++ 2M"
"""
