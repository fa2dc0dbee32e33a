"""SD1.5, SD2.1, SDXL and FLUX.1 with their published architectures and random weights, for speed and
memory benchmarks where no checkpoint can be downloaded.

Time and memory per step depend on the shapes, not on the values, so a LoRA step on these costs what
it costs on the real models. The configurations are those of ``runwayml/stable-diffusion-v1-5``,
``stabilityai/sd-turbo`` (SD2.1-base: its UNet and OpenCLIP ViT-H text encoder),
``stabilityai/stable-diffusion-xl-base-1.0`` (UNet, VAE, CLIP ViT-L and OpenCLIP bigG text
encoders) and ``black-forest-labs/FLUX.1-dev`` (12B transformer, T5-XXL, CLIP ViT-L, 16-channel VAE);
the tokenizers are genimg's offline ones, whose token ids fit inside the real vocabularies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CLIP_VOCAB = 49408
# (hidden, layers, heads, intermediate, projection) of the text encoders
CLIP_L = (768, 12, 12, 3072, 768)
OPENCLIP_H = (1024, 23, 16, 4096, 512)
OPENCLIP_BIG_G = (1280, 32, 20, 5120, 1280)

SD15_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280))
SD21_UNET = dict(SD15_UNET, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SDXL_UNET = dict(sample_size=128, cross_attention_dim=2048, attention_head_dim=(5, 10, 20), layers_per_block=2,
                 block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)


FLUX_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                        guidance_embeds=True, axes_dims_rope=(16, 56, 56))
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)


def _text_encoder(sizes, tokenizer, with_projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    hidden, layers, heads, intermediate, projection = sizes
    config = CLIPTextConfig(vocab_size=CLIP_VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=intermediate, projection_dim=projection,
                            hidden_act="quick_gelu" if hidden == 768 else "gelu", max_position_embeddings=77,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _vae(sample_size: int, **extra):
    from diffusers import AutoencoderKL

    extra.setdefault("latent_channels", 4)
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
                         sample_size=sample_size, **extra)


def build(family: str, work: Path):
    """The ``sd`` (SD1.5), ``sd2`` (SD2.1-base, as sd-turbo), ``sdxl`` or ``flux`` pipeline, random weights
    in fp32 (FLUX in bf16)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    from genimg.testing.tokenizers import clip_tokenizer

    tokenizer = clip_tokenizer(work / "_tok")
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    if family in ("sd", "sd2"):
        text_encoder, unet = (CLIP_L, SD15_UNET) if family == "sd" else (OPENCLIP_H, SD21_UNET)
        return StableDiffusionPipeline(
            vae=_vae(512), text_encoder=_text_encoder(text_encoder, tokenizer), tokenizer=tokenizer,
            unet=UNet2DConditionModel(**unet), scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
    if family == "sdxl":
        return StableDiffusionXLPipeline(
            vae=_vae(1024, scaling_factor=0.13025, force_upcast=True), text_encoder=_text_encoder(CLIP_L, tokenizer),
            text_encoder_2=_text_encoder(OPENCLIP_BIG_G, tokenizer, with_projection=True), tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=UNet2DConditionModel(**SDXL_UNET), scheduler=scheduler)
    if family == "flux":
        return _flux(tokenizer)
    raise ValueError(f"full-size builds are for sd, sd2, sdxl and flux, not {family}")


def _flux(tokenizer):
    """FLUX.1-dev's architecture, built in bf16 (fp32 would need 64 GB of RAM for the transformer and T5)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    from genimg.testing.tokenizers import t5_tokenizer

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        return FluxPipeline(
            transformer=FluxTransformer2DModel(**FLUX_TRANSFORMER),
            text_encoder=_text_encoder(CLIP_L, tokenizer, with_projection=False), tokenizer=tokenizer,
            text_encoder_2=T5EncoderModel(T5Config(**T5_XXL)), tokenizer_2=t5_tokenizer(),
            vae=_vae(1024, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                     use_post_quant_conv=False),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                      max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096))
    finally:
        torch.set_default_dtype(default)


def save_full_size(family: str, folder: Path) -> Path:
    """Build and save as a diffusers folder in fp16 (FLUX in bf16): half the disk; loading picks its own dtype."""
    import torch
    from diffusers.utils import logging

    if (folder / "model_index.json").is_file():
        return folder
    work = folder.parent / f".{folder.name}-build"
    torch.manual_seed(0)
    pipe = build(family, work)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its notice on casting a whole model to fp16 concerns inference, not a file
    try:
        pipe.to(torch.bfloat16 if family == "flux" else torch.float16).save_pretrained(folder, safe_serialization=True)
    finally:
        logging.set_verbosity(verbosity)
    shutil.rmtree(work, ignore_errors=True)
    return folder
