"""Tiny SD1.5, SDXL, FLUX.1 and FLUX.2 pipelines with random weights, in the real diffusers formats.

Sizes follow ``shared/tiny-models.md``: each saves to a few MB and runs 4 steps at 64x64 on a CPU
in well under a second, yet goes through exactly the code paths of the full-size models.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _clip_text(vocab_size: int, with_projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=77, projection_dim=32, vocab_size=vocab_size,
                            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _vae(**extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         norm_num_groups=32, sample_size=64, **extra)


def _unet(**extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32,
                                in_channels=extra.pop("in_channels", 4), out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=8, norm_num_groups=32, **extra)


def build_sd(tmp: Path, seed: int = 0, inpaint: bool = False):
    import torch
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    from genimg.testing.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(tmp / "_tok")
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(
        vae=_vae(), text_encoder=_clip_text(len(tokenizer)), tokenizer=tokenizer,
        unet=_unet(cross_attention_dim=32, in_channels=9 if inpaint else 4),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def _sdxl_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                  timestep_spacing="leading")


def build_sdxl(tmp: Path, seed: int = 0):
    import torch
    from diffusers import StableDiffusionXLPipeline

    from genimg.testing.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(tmp / "_tok")
    unet = _unet(cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=8 * 6 + 32, transformer_layers_per_block=1)
    return StableDiffusionXLPipeline(
        vae=_vae(force_upcast=True), text_encoder=_clip_text(len(tokenizer)),
        text_encoder_2=_clip_text(len(tokenizer), with_projection=True), tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_sdxl_scheduler(),
    )


def build_flux(tmp: Path, seed: int = 0, control: bool = False):
    """The tiny FLUX.1; with ``control`` a FLUX.1 Depth/Canny-shaped one (FluxControlPipeline), whose
    transformer reads the control map's latents beside the picture's: twice the input channels."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxControlPipeline, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    from genimg.testing.tokenizers import clip_tokenizer, t5_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(tmp / "_tok")
    t5_tok = t5_tokenizer()
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=32 if control else 16, out_channels=16,
                                         num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0,
                                 eos_token_id=1))
    return (FluxControlPipeline if control else FluxPipeline)(
        transformer=transformer, text_encoder=_clip_text(len(tokenizer)), tokenizer=tokenizer,
        text_encoder_2=t5, tokenizer_2=t5_tok,
        vae=_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _flux2_parts(text_width: int, guidance_embeds: bool):
    """FLUX.2's transformer and VAE, tiny; the transformer reads three stacked text-encoder layers
    (``3 × text_width``), and with ``guidance_embeds`` the guidance as an embedding ([dev]'s distillation)."""
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel

    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                          attention_head_dim=16, num_attention_heads=2, joint_attention_dim=3 * text_width,
                                          timestep_guidance_channels=32, axes_dims_rope=(4, 4, 4, 4),
                                          guidance_embeds=guidance_embeds)
    vae = AutoencoderKLFlux2(block_out_channels=(32, 64), down_block_types=["DownEncoderBlock2D"] * 2,
                             up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
                             norm_num_groups=32, sample_size=64)
    return transformer, vae, FlowMatchEulerDiscreteScheduler(shift=3.0)


def build_flux2_klein(tmp: Path, seed: int = 0):
    """The tiny FLUX.2 [klein]: a Qwen3 text encoder deep enough for the layers the pipeline reads (9, 18, 27)."""
    import torch
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from genimg.testing.tokenizers import qwen_tokenizer

    torch.manual_seed(seed)
    tokenizer = qwen_tokenizer()
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=28, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=512, tie_word_embeddings=True))
    transformer, vae, scheduler = _flux2_parts(16, guidance_embeds=False)  # [klein]: true CFG, no embedding
    return Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              transformer=transformer, is_distilled=True)


def build_flux2(tmp: Path, seed: int = 0):
    """The tiny FLUX.2 [dev]: a Mistral 3 text encoder (with its Pixtral vision tower) deep enough for the
    layers the pipeline reads (10, 20, 30)."""
    import torch
    from diffusers import Flux2Pipeline
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig, PixtralVisionConfig

    from genimg.testing.tokenizers import PIXTRAL_SPECIAL, pixtral_processor

    torch.manual_seed(seed)
    processor = pixtral_processor()
    text_encoder = Mistral3ForConditionalGeneration(Mistral3Config(
        text_config=MistralConfig(vocab_size=len(processor.tokenizer), hidden_size=16, intermediate_size=32,
                                  num_hidden_layers=31, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                  max_position_embeddings=512),
        vision_config=PixtralVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, head_dim=8, image_size=64, patch_size=8),
        image_token_index=PIXTRAL_SPECIAL.index("[IMG]"), spatial_merge_size=2, vision_feature_layer=-1))
    transformer, vae, scheduler = _flux2_parts(16, guidance_embeds=True)
    return Flux2Pipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=processor,
                         transformer=transformer)


def build_sdxl_refiner(tmp: Path, seed: int = 0):
    """SDXL's refiner: the second text encoder only, and a UNet told the aesthetic score (five time ids)."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from genimg.testing.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(tmp / "_tok")
    unet = _unet(cross_attention_dim=32, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=8 * 5 + 32, transformer_layers_per_block=1)
    return StableDiffusionXLImg2ImgPipeline(
        vae=_vae(force_upcast=True), text_encoder=None, tokenizer=None, tokenizer_2=tokenizer,
        text_encoder_2=_clip_text(len(tokenizer), with_projection=True), unet=unet,
        scheduler=_sdxl_scheduler(),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )


BUILDERS = {"sd": build_sd, "sdxl": build_sdxl, "flux": build_flux, "sdxl-refiner": build_sdxl_refiner,
            "flux-control": lambda tmp, seed=0: build_flux(tmp, seed, control=True),
            "flux2": build_flux2, "flux2-klein": build_flux2_klein}


def save_tiny(family: str, folder: Path, seed: int = 0) -> Path:
    """Build the tiny ``family`` pipeline and save it as a diffusers folder (safetensors)."""
    pipe = BUILDERS[family](folder.parent / f".{folder.name}-build", seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder.parent / f".{folder.name}-build", ignore_errors=True)
    return folder


# The layers a new ControlNet starts with at zero (so that it first changes nothing), SD and FLUX.
ZERO_INITIALISED = ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out",
                    "controlnet_blocks", "controlnet_single_blocks", "controlnet_x_embedder")


def save_tiny_controlnet(model_folder: Path, folder: Path, seed: int = 0, modes: int | None = None) -> Path:
    """A ControlNet for the tiny model at ``model_folder`` (SD, SDXL or FLUX), saved in safetensors.
    Built from the model's own denoiser as ControlNet training starts, but with its zero
    convolutions given random weights, so that the control image visibly changes the result. FLUX
    with ``modes``: a union ControlNet (InstantX's) with that many control modes."""
    import json

    import torch
    from diffusers import ControlNetModel, FluxControlNetModel, FluxTransformer2DModel, UNet2DConditionModel

    torch.manual_seed(seed)
    index = json.loads((model_folder / "model_index.json").read_text())
    if "transformer" in index:
        base = FluxTransformer2DModel.from_pretrained(model_folder, subfolder="transformer")
        keys = ("patch_size", "in_channels", "num_layers", "num_single_layers", "attention_head_dim",
                "num_attention_heads", "joint_attention_dim", "pooled_projection_dim", "guidance_embeds", "axes_dims_rope")
        model = FluxControlNetModel(**{k: base.config[k] for k in keys}, num_mode=modes)
    else:
        # The control image is embedded down to the latent size: one stride-2 block per VAE downsampling.
        vae_blocks = len(json.loads((model_folder / "vae" / "config.json").read_text())["block_out_channels"])
        model = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(model_folder, subfolder="unet"),
                                          conditioning_embedding_out_channels=tuple(16 * 2**i for i in range(vae_blocks)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(ZERO_INITIALISED):
                param.normal_(0, 0.3)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_union_controlnet(model_folder: Path, folder: Path, seed: int = 0) -> Path:
    """A union ControlNet (xinsir's ControlNet++ architecture: one model, a control_mode per map) for
    the tiny SDXL model at ``model_folder``; its transformer over the conditions as wide as the UNet's
    first block, its zero-initialised outputs given random weights as in :func:`save_tiny_controlnet`."""
    import inspect
    import json

    import torch
    from diffusers import ControlNetUnionModel, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(model_folder, subfolder="unet")
    accepted = inspect.signature(ControlNetUnionModel.__init__).parameters
    width = unet.config.block_out_channels[0]
    vae_blocks = len(json.loads((model_folder / "vae" / "config.json").read_text())["block_out_channels"])
    model = ControlNetUnionModel(**{k: v for k, v in unet.config.items() if k in accepted}, num_control_type=8,
                                 num_trans_channel=width, num_trans_head=2, num_proj_channel=width,
                                 conditioning_embedding_out_channels=tuple(16 * 2**i for i in range(vae_blocks)))
    model.load_state_dict(unet.state_dict(), strict=False)  # the UNet's encoder, as from_unet copies it
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith((*ZERO_INITIALISED, "spatial_ch_projs")):
                param.normal_(0, 0.3)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def install_in_hf_cache(folder: Path, repo_id: str, cache: Path, commit: str = "0" * 40) -> Path:
    """Lay ``folder`` out as the Hugging Face cache entry of ``repo_id`` (as `hf download` would)."""
    entry = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = entry / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(commit)
    return snapshot


def model_or_tiny(model: str | None, workdir: Path, family: str = "sd") -> str:
    """``model`` if given, else the tiny ``family`` model built in ``workdir`` (for benchmarks)."""
    return model if model else str(save_tiny(family, workdir / f"tiny-{family}"))


def build_sd_upscaler(tmp: Path, seed: int = 0):
    """The SD x4 upscaler's shape, tiny: a UNet that takes 4 latent + 3 low-res RGB channels and a noise
    level class, a VAE that downsamples 4x, and the low-res scheduler: a 16² input gives 64²."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline

    from genimg.testing.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(tmp / "_tok")
    vae = AutoencoderKL(block_out_channels=[32, 32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        norm_num_groups=32, sample_size=64, scaling_factor=0.08333)
    unet = _unet(cross_attention_dim=32, in_channels=7, num_class_embeds=1000)
    return StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=_clip_text(len(tokenizer)), tokenizer=tokenizer, unet=unet,
        low_res_scheduler=DDPMScheduler(), scheduler=DDIMScheduler(prediction_type="v_prediction"),
        max_noise_level=350)


def save_tiny_upscaler(folder: Path, seed: int = 0) -> Path:
    pipe = build_sd_upscaler(folder.parent / f".{folder.name}-build", seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder.parent / f".{folder.name}-build", ignore_errors=True)
    return folder


def save_tiny_gguf(model_folder: Path, path: Path) -> Path:
    """The denoiser of a saved tiny model as a GGUF file, its 2-D weights in Q8_0 (as a downloaded
    ``*-Q8_0.gguf`` holds them), the rest in fp32; diffusers' key names."""
    import json

    import diffusers
    import gguf
    import numpy as np

    from genimg.models.families import FAMILIES, family_from_pipeline_class

    family = FAMILIES[family_from_pipeline_class(json.loads((model_folder / "model_index.json").read_text())["_class_name"])]
    class_name, subfolder = family.denoiser
    model = getattr(diffusers, class_name).from_pretrained(model_folder, subfolder=subfolder)
    writer = gguf.GGUFWriter(str(path), arch="sd" if subfolder == "unet" else family.line)
    for name, tensor in model.state_dict().items():
        array = tensor.float().numpy()
        if array.ndim == 2 and array.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
            packed = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def save_tiny_redux(folder: Path, seed: int = 0, text_width: int = 32) -> Path:
    """A tiny FLUX.1 Redux (FluxPriorReduxPipeline: SigLIP image encoder, its processor, the image
    embedder mapping SigLIP's features to ``text_width``, the tiny FLUX's T5 width), saved as a folder."""
    import torch
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    encoder = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                                   num_attention_heads=2, image_size=32, patch_size=8))
    prior = FluxPriorReduxPipeline(image_encoder=encoder, feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                                   image_embedder=ReduxImageEncoder(redux_dim=32, txt_in_features=text_width))
    prior.save_pretrained(folder, safe_serialization=True)
    return folder
