"""FLUX.1: CLIP's pooled summary and T5's tokens, a transformer trained by flow matching on packed latents,
dedicated Fill (inpainting) models, and ControlNets told their map's kind by an int."""

from __future__ import annotations

from genimg.models.lines import ModelLine
from genimg.models.lines.sd import Objective, draw_each


class FluxObjective(Objective):
    """The velocity of a rectified flow, noise − x₀, at logit-normal times."""

    @property
    def denoiser(self):
        return self.pipe.transformer

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        import torch

        with torch.no_grad():
            embeds, pooled, text_ids = self.pipe.encode_prompt(
                captions, prompt_2=None, device=self.device,
                max_sequence_length=min(512, self.pipe.tokenizer_2.model_max_length))
        return {"encoder_hidden_states": embeds, "pooled": pooled, "text_ids": text_ids}

    def loss(self, latents, cond, generators, sizes=None):
        import torch
        from torch.nn import functional as F

        from genimg.third_party import flux_image_ids, pack_flux_latents, unpack_flux_latents

        b, c, h, w = latents.shape
        noise = draw_each(generators, lambda g: torch.randn(latents.shape[1:], generator=g)).to(latents)
        # Logit-normal times (SD3 paper §3.1), the diffusers FLUX example's default weighting scheme. Drawn
        # here rather than by diffusers' compute_density_for_timestep_sampling, which takes no generator:
        # each sample's own generator is what makes N processes train what one process would.
        sigmas = torch.sigmoid(draw_each(generators, lambda g: torch.randn((), generator=g))).to(self.device)
        s = sigmas.view(b, 1, 1, 1)
        noisy = (1 - s) * latents + s * noise
        target = noise - latents
        packed = pack_flux_latents(noisy)
        image_ids = flux_image_ids(b, h // 2, w // 2, self.device, self.weight_dtype)
        transformer = self.denoiser
        guidance = None
        if getattr(transformer.config, "guidance_embeds", False):
            guidance = torch.full((b,), self.config.flux_guidance, device=self.device)
        pred = transformer(hidden_states=packed.to(self.weight_dtype), timestep=sigmas.to(self.weight_dtype),
                           guidance=guidance, pooled_projections=cond["pooled"].to(self.weight_dtype),
                           encoder_hidden_states=cond["encoder_hidden_states"].to(self.weight_dtype),
                           txt_ids=cond["text_ids"], img_ids=image_ids, return_dict=False)[0]
        vae_scale = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)
        pred = unpack_flux_latents(pred, h * vae_scale, w * vae_scale, vae_scale)
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))


class FluxLine(ModelLine):
    name = "flux"
    seamless_tiling = False
    objective = FluxObjective

    def cut_prompt(self, pipe, text: str, limit: int) -> str | None:
        """What T5 does not read of ``text`` (CLIP's pooled summary is cut at 77 tokens anyway)."""
        ids = pipe.tokenizer_2(text, add_special_tokens=True).input_ids
        if len(ids) <= limit:
            return None
        return pipe.tokenizer_2.decode(ids[limit - 1:-1], skip_special_tokens=True)

    def noise_shape(self, pipe, width: int, height: int) -> tuple[int, ...]:
        """FluxPipeline.prepare_latents's noise: a quarter of the transformer's input channels, at an even
        latent size (packed into 2×2 patches after)."""
        scale = pipe.vae_scale_factor
        return (pipe.transformer.config.in_channels // 4, 2 * (height // (scale * 2)), 2 * (width // (scale * 2)))

    def noise_as_latents(self, pipe, noise):
        from genimg.third_party import pack_flux_latents

        return pack_flux_latents(noise)  # FluxPipeline takes its latents packed

    def control_mode_arguments(self, control_arg: str, maps: list, modes: list) -> dict:
        """FluxControlNetPipeline takes an int and a map for one ControlNet, lists for several."""
        one = len(maps) == 1
        return {control_arg: maps[0] if one else maps, "control_mode": modes[0] if one else modes}

    def fill_variant(self, task: str) -> str | None:
        """FLUX.1 Fill [dev]: its own pipeline (SD/SDXL's inpaint pipelines take 9-channel UNets as they are)."""
        return "fill"

    def kohya_state(self, peft_layers: dict, denoiser) -> dict:
        """sd-scripts' own FLUX names: fused qkv (see flux_kohya.py)."""
        from genimg.models.lines.flux_kohya import to_kohya

        return to_kohya(peft_layers["transformer"], denoiser)


LINE = FluxLine()
