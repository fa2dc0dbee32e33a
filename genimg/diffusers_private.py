"""The private diffusers names genimg relies on, where diffusers has no public one, each named once here.
tests/test_diffusers_private.py pins the behaviour each is used for, so a diffusers release that changes
one fails there, in one place, not deep inside a run."""

from __future__ import annotations


def execution_device(pipe):
    """The device a pipeline runs its models on: under CPU offload the accelerator, not where the weights
    rest between calls (``DiffusionPipeline._execution_device``)."""
    return pipe._execution_device


def pack_flux_latents(latents):
    """FLUX's 2×2 patches of VAE latents ``[B, C, H, W]`` as the transformer's tokens ``[B, H/2·W/2, 4C]``."""
    from diffusers import FluxPipeline

    b, c, h, w = latents.shape
    return FluxPipeline._pack_latents(latents, b, c, h, w)


def unpack_flux_latents(tokens, height: int, width: int, vae_scale: int):
    """The inverse of :func:`pack_flux_latents` for an image of ``height`` × ``width`` pixels."""
    from diffusers import FluxPipeline

    return FluxPipeline._unpack_latents(tokens, height, width, vae_scale)


def flux_image_ids(batch: int, height: int, width: int, device, dtype):
    """The position ids of the packed latent tokens (``height`` × ``width`` in patches)."""
    from diffusers import FluxPipeline

    return FluxPipeline._prepare_latent_image_ids(batch, height, width, device, dtype)


def flux2_image_latents(pipe, pixels):
    """FLUX.2's VAE latents of ``pixels`` as its transformer reads them: the distribution's mode, 2×2 patches
    as channels, normalised by the VAE's batch-norm statistics ``[B, 4C, H/2, W/2]``."""
    return pipe._encode_vae_image(pixels, generator=None)


def flux2_tokens(latents):
    """FLUX.2's latents ``[B, C, H, W]`` as tokens ``[B, H·W, C]``, and their position ids ``[B, H·W, 4]``."""
    from diffusers import Flux2Pipeline

    return Flux2Pipeline._pack_latents(latents), Flux2Pipeline._prepare_latent_ids(latents).to(latents.device)
