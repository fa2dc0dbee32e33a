"""Setting up a freshly loaded diffusers pipeline the way a preset says: dtype, memory and speed settings,
the libraries' own progress bars silenced. Shared by the model factory and the diffusion upscalers."""

from __future__ import annotations

from genimg.presets import Preset

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def quiet_libraries() -> None:
    """genimg draws its own progress; the libraries' per-file bars and notices would interleave."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def apply_preset(pipe, preset: Preset, progress=None, model: str = "", denoiser: str = "unet") -> None:
    """Memory and speed settings of ``preset`` on a freshly loaded pipeline (``model``: its name, for what
    it leaves in the cache; ``denoiser``: the component that denoises, the family's UNet or transformer)."""
    import torch

    denoiser = getattr(pipe, denoiser)
    if preset.vae_fp32:
        _upcast_vae(pipe.vae)
    if preset.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if preset.vae_slicing:
        pipe.vae.enable_slicing()
    if preset.vae_tiling:
        pipe.vae.enable_tiling()
    if preset.channels_last:
        denoiser.to(memory_format=torch.channels_last)
    if preset.offload == "model":
        pipe.enable_model_cpu_offload(device=preset.device)
    elif preset.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=preset.device)
    else:
        pipe.to(preset.device)
    if preset.compile == "openvino":
        _openvino_route(pipe, progress, model)
    elif preset.compile != "off":
        denoiser.compile(mode=None if preset.compile == "default" else preset.compile)
    pipe.set_progress_bar_config(disable=True)


def _openvino_route(pipe, progress, model: str) -> None:
    """The UNet, the VAE's encoder and decoder and the text encoders run by OpenVINO (``openvino_unet``,
    ``openvino_vae``, ``openvino_text``), in the dtype the preset loaded them in, converted by this CPU
    kind's recipe; planning has already sent the jobs the route cannot take, models without a UNet among
    them, to a torch preset (``generation``)."""
    from genimg.openvino_text import install_text, is_text_encoder
    from genimg.openvino_unet import install, recipe_for_this_cpu
    from genimg.openvino_vae import install_vae
    from genimg.paths import cache_dir

    def note(message):
        if progress:
            progress("warning", message=message)

    recipe, cache = recipe_for_this_cpu(), cache_dir() / "openvino"
    install(pipe.unet, cache, progress, note, recipe, model=model, scale=pipe.vae_scale_factor)
    install_vae(pipe.vae, cache, recipe, note, model=model, scale=pipe.vae_scale_factor)
    for name, component in pipe.components.items():  # SD's text encoder, SDXL's two
        if is_text_encoder(component):
            install_text(component, cache, recipe, note, model=model, part=name.replace("_", " "))


def _upcast_vae(vae) -> None:
    """Run the VAE in float32 while the rest runs in half precision: the cure for black (NaN) images
    from VAEs that overflow fp16. Both directions are wrapped: the pipelines hand the VAE half-precision
    images to encode (img2img, inpaint, the hires pass) and latents to decode, and expect encoded
    latents back in their own dtype."""
    import torch

    vae.to(torch.float32)
    # SDXL's pipelines upcast a VAE with force_upcast for encoding, then cast it back to the pipeline's
    # dtype: this VAE stays float32 throughout, so the pipeline must leave it alone.
    if getattr(vae.config, "force_upcast", False):
        vae.register_to_config(force_upcast=False)
    from genimg.third_party import wrap_vae_io

    def encode_fp32(encode, x, *args, **kwargs):
        return _latents_as(encode(x.to(torch.float32), *args, **kwargs), x.dtype)

    def decode_fp32(decode, z, *args, **kwargs):
        return decode(z.to(torch.float32), *args, **kwargs)

    wrap_vae_io(vae, encode_fp32, decode_fp32)


def _latents_as(output, dtype):
    """A VAE's encode output whose latents come out in ``dtype``: a KL VAE's distribution is sampled in
    float32 (the same noise as a float32 pipeline draws), then cast; a tiny VAE's latents are cast."""
    if isinstance(output, tuple):
        return tuple(_latents_as(part, dtype) for part in output)
    if hasattr(output, "latent_dist"):
        output.latent_dist = CastDistribution(output.latent_dist, dtype)
    elif hasattr(output, "latents"):
        output.latents = output.latents.to(dtype)
    elif hasattr(output, "sample"):  # a bare distribution (return_dict=False)
        return CastDistribution(output, dtype)
    return output


class CastDistribution:
    """A float32 latent distribution whose samples and mode come out in the pipeline's dtype."""

    def __init__(self, dist, dtype):
        self.dist, self.dtype = dist, dtype

    def sample(self, generator=None):
        return self.dist.sample(generator).to(self.dtype)

    def mode(self):
        return self.dist.mode().to(self.dtype)

    def __getattr__(self, name):
        return getattr(self.dist, name)
