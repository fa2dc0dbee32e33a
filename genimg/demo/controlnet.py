"""Train a ControlNet for the built-in ``demo`` model on the shapes' Canny edges, on a CPU.

The ControlNet starts as a copy of the demo UNet's encoder with zero-initialised output layers
(``ControlNetModel.from_unet``: at step 0 it changes nothing) and learns, with the UNet and the
text encoder frozen, to add what the edges say about where the shape is and what outline it has.
Half of the captions are dropped, as in the ControlNet paper, so the edges alone must carry the
layout; the caption still carries the colours.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable


@dataclass
class DemoControlNetConfig:
    seed: int = 0
    side: int = 64
    images: int = 8000
    steps: int = 3000
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 100
    caption_dropout: float = 0.5
    min_snr_gamma: float = 5.0
    threads: int = 2


def edge_maps(images):
    """Canny edge maps of PIL images as a float tensor in [0, 1], the ControlNet's input."""
    import numpy as np
    import torch

    from genimg.control import preprocess

    maps = np.stack([np.asarray(preprocess(image, "canny")) for image in images])
    return torch.from_numpy(maps).permute(0, 3, 1, 2).float() / 255


def train_demo_controlnet(model: Path, output: Path, config: DemoControlNetConfig | None = None,
                          progress: Callable[..., None] | None = None) -> dict:
    """Train on the demo pipeline at ``model`` and save the ControlNet to ``output``; returns the record."""
    from genimg.pipeline_setup import quiet_libraries

    quiet_libraries()  # diffusers' and transformers' own bars would leak into a log
    import torch
    import torch.nn.functional as F
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from diffusers.optimization import get_scheduler

    from genimg.demo.model import min_snr_weight, pixels_tensor
    from genimg.demo.shapes import dataset, training_caption

    config = config or DemoControlNetConfig()
    report = progress or (lambda *a, **k: None)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    began = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    # One stride-2 block of the control embedding per VAE downsampling: edges arrive at latent size.
    levels = len(pipe.vae.config.block_out_channels)
    controlnet = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=tuple(16 * 2**i for i in range(levels)))

    rng = random.Random(config.seed + 1)
    pictures, captions = [], []
    for image, scene in dataset(config.images, seed=config.seed + 100, side=config.side):
        pictures.append(image)
        captions.append(training_caption(scene, rng))
    edges = edge_maps(pictures)
    x = pixels_tensor(pictures)
    tokenizer = pipe.tokenizer
    ids = tokenizer(captions + [""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        latents = latents * pipe.vae.config.scaling_factor
        texts = torch.cat([pipe.text_encoder(ids[i:i + 512])[0] for i in range(0, len(ids), 512)])
    empty = texts[-1]

    scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = get_scheduler("cosine", opt, num_warmup_steps=config.warmup, num_training_steps=config.steps)
    g = torch.Generator().manual_seed(config.seed)
    controlnet.train()
    for step in range(config.steps):
        index = torch.randint(0, len(latents), (config.batch,), generator=g)
        hidden = texts[index].clone()
        hidden[torch.rand(config.batch, generator=g) < config.caption_dropout] = empty
        noise = torch.randn(latents[index].shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch,), generator=g)
        zt = scheduler.add_noise(latents[index], noise, t)
        down, mid = controlnet(zt, t, encoder_hidden_states=hidden, controlnet_cond=edges[index], return_dict=False)
        pred = pipe.unet(zt, t, encoder_hidden_states=hidden, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample
        loss = (min_snr_weight(scheduler, t, config.min_snr_gamma) * F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        schedule.step()
        report("step", stage="controlnet", step=step + 1, total=config.steps, loss=loss.item())
    controlnet.eval()
    from genimg.files import give_umask_mode

    controlnet.save_pretrained(output, safe_serialization=True)
    give_umask_mode(Path(output).rglob("*"))  # safetensors writes its files 0600
    record = {"config": asdict(config), "base_model": str(model), "seconds": round(time.perf_counter() - began, 1),
              "torch": torch.__version__}
    (Path(output) / "genimg_training.json").write_text(json.dumps(record, indent=2))
    return record
