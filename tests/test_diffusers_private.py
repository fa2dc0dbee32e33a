"""What genimg relies on in diffusers' private names (genimg/diffusers_private.py), pinned: a diffusers
release that changes one of these fails here."""

import torch

from genimg.diffusers_private import execution_device, flux_image_ids, pack_flux_latents, unpack_flux_latents


def test_the_execution_device_of_a_cpu_pipeline_is_the_cpu_and_under_offload_the_target(tiny_models):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    assert execution_device(pipe) == torch.device("cpu")
    pipe.enable_model_cpu_offload(device="cpu")
    assert execution_device(pipe).type == "cpu"  # accelerate's hooks name the target (cpu:0 here, cuda:0 on a GPU)


def test_flux_packing_makes_2x2_patch_tokens_and_unpacking_inverts_it():
    latents = torch.arange(2 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 4, 6, 8)
    tokens = pack_flux_latents(latents)
    assert tokens.shape == (2, 3 * 4, 16)
    assert torch.equal(tokens[0, 0], latents[0, :, :2, :2].reshape(4, 4).reshape(-1))  # one patch, channels first
    vae_scale = 8
    assert torch.equal(unpack_flux_latents(tokens, 6 * vae_scale, 8 * vae_scale, vae_scale), latents)
    ids = flux_image_ids(2, 3, 4, torch.device("cpu"), torch.float32)
    assert ids.shape == (12, 3) and ids[5].tolist() == [0.0, 1.0, 1.0]  # (unused, row, column) of token 5
