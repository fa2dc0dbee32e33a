"""`--vae-fp32` runs the VAE in float32 in both directions: img2img, inpaint and the hires pass encode
through it with a half-precision image, and get latents back in the pipeline's dtype."""

import numpy as np
from PIL import Image

from genimg.generation import plan, run
from genimg.spec import GenerationSpec


def test_img2img_under_bf16_with_the_vae_in_fp32_encodes_and_decodes(tiny_models, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    spec = GenerationSpec("a ring", model=str(tiny_models["sd"]), task="img2img", image=str(tmp_path / "in.png"),
                          steps=4, strength=0.5, seed=2, preset="cpu",
                          preset_overrides={"dtype": "bf16", "vae_fp32": True})
    [made] = run(plan(spec))
    pixels = np.asarray(made.image, dtype=np.int16)
    assert made.image.size == (64, 64) and made.steps == 2
    # The same run with the whole pipeline in float32: bf16's denoiser rounds, the VAE does not.
    [full] = run(plan(spec.replace(preset_overrides={})))
    assert np.abs(pixels - np.asarray(full.image, dtype=np.int16)).mean() < 8


def test_the_vae_stays_float32_and_encodes_to_the_pipelines_dtype(tiny_models):
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from genimg.pipeline_setup import apply_preset
    from genimg.presets import get_preset

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_models["sd"], dtype=torch.bfloat16)
    apply_preset(pipe, get_preset("cpu").with_overrides(dtype="bf16", vae_fp32=True))
    image = torch.rand(1, 3, 64, 64, dtype=torch.bfloat16) * 2 - 1
    latents = pipe.vae.encode(image).latent_dist.sample(torch.Generator().manual_seed(0))
    assert pipe.vae.dtype == torch.float32 and latents.dtype == torch.bfloat16 and latents.shape[1] == 4
    # The same draw as a float32 VAE's, rounded once at the end.
    reference = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_models["sd"]).vae
    expected = reference.encode(image.float()).latent_dist.sample(torch.Generator().manual_seed(0))
    assert torch.allclose(latents.float(), expected, atol=2e-2)
