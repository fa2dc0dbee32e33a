"""What differs between families when training: how captions condition the denoiser, and the loss.

SD1.x and SDXL learn to predict the noise (or v) added by the DDPM forward process, weighted by
min-SNR-γ; FLUX.1 and FLUX.2 learn the velocity of a rectified flow, noise − x₀, at logit-normal times.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def draw_each(generators: list[torch.Generator], draw) -> torch.Tensor:
    return torch.stack([draw(g) for g in generators])


class Objective:
    def __init__(self, pipe, config, device, weight_dtype):
        self.pipe = pipe
        self.config = config
        self.device = device
        self.weight_dtype = weight_dtype

    @property
    def denoiser(self):
        return self.pipe.unet

    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mean
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * vae.config.scaling_factor).float()

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        with torch.no_grad() if not self.config.train_text_encoder else torch.enable_grad():
            embeds = self.pipe.encode_prompt(captions, self.device, 1, False)[0]
        return {"encoder_hidden_states": embeds}

    def loss(self, latents: torch.Tensor, cond: dict, generators: list[torch.Generator], sizes=None) -> torch.Tensor:
        """Per-sample losses. Each sample draws its noise and time from its own generator, so a sample
        is trained the same whether it shares a batch or sits on another GPU."""
        scheduler = self.pipe.scheduler
        noise = draw_each(generators, lambda g: torch.randn(latents.shape[1:], generator=g)).to(latents)
        if self.config.noise_offset:
            # Crosslabs' noise offset: lets the model learn overall brightness (very dark or light images).
            offset = draw_each(generators, lambda g: torch.randn((latents.shape[1], 1, 1), generator=g))
            noise = noise + self.config.noise_offset * offset.to(latents)
        t = draw_each(generators, lambda g: torch.randint(0, scheduler.config.num_train_timesteps, (), generator=g))
        t = t.to(self.device)
        noisy = scheduler.add_noise(latents, noise, t)
        v_prediction = scheduler.config.prediction_type == "v_prediction"
        target = scheduler.get_velocity(latents, noise, t) if v_prediction else noise
        pred = self.denoiser(noisy.to(self.weight_dtype), t, **self._cast(cond), return_dict=False)[0]
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=list(range(1, pred.dim())))
        if self.config.min_snr_gamma:
            from diffusers.training_utils import compute_snr

            snr = compute_snr(scheduler, t.cpu()).to(self.device)
            clipped = torch.clamp(snr, max=self.config.min_snr_gamma)
            per_sample = per_sample * (clipped / (snr + 1) if v_prediction else clipped / snr)
        return per_sample

    def _cast(self, cond: dict) -> dict:
        def cast(value):
            if isinstance(value, dict):
                return {k: cast(v) for k, v in value.items()}
            return value.to(self.device, self.weight_dtype) if torch.is_tensor(value) and value.is_floating_point() else value

        return {k: cast(v) for k, v in cond.items()}


class SDXLObjective(Objective):
    def encode_text(self, captions: list[str], sizes=None) -> dict:
        with torch.no_grad() if not self.config.train_text_encoder else torch.enable_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(captions, device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=False)
        return {"encoder_hidden_states": embeds, "pooled": pooled}

    def loss(self, latents, cond, generators, sizes=None):
        # SDXL's micro-conditioning: original size, crop offset, target size (no crop after bucketing).
        h, w = sizes
        time_ids = torch.tensor([[h, w, 0, 0, h, w]] * latents.shape[0], device=self.device, dtype=torch.float32)
        cond = {"encoder_hidden_states": cond["encoder_hidden_states"],
                "added_cond_kwargs": {"text_embeds": cond["pooled"], "time_ids": time_ids}}
        return super().loss(latents, cond, generators, sizes)


class FluxObjective(Objective):
    @property
    def denoiser(self):
        return self.pipe.transformer

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        with torch.no_grad():
            embeds, pooled, text_ids = self.pipe.encode_prompt(
                captions, prompt_2=None, device=self.device,
                max_sequence_length=min(512, self.pipe.tokenizer_2.model_max_length))
        return {"encoder_hidden_states": embeds, "pooled": pooled, "text_ids": text_ids}

    def loss(self, latents, cond, generators, sizes=None):
        from genimg.diffusers_private import flux_image_ids, pack_flux_latents, unpack_flux_latents

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


class Flux2Objective(FluxObjective):
    """FLUX.2 ([dev], [klein]), as diffusers' train_dreambooth_lora_flux2(_klein) examples train it: the
    latents are the VAE's 2×2 patches normalised by its batch-norm statistics, the prompt a language model's
    stacked hidden states; [dev] takes the guidance as an embedding, [klein] none."""

    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        from genimg.diffusers_private import flux2_image_latents

        return flux2_image_latents(self.pipe, pixels.to(self.device, self.pipe.vae.dtype)).float()

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        with torch.no_grad():
            embeds, text_ids = self.pipe.encode_prompt(captions, device=self.device)
        return {"encoder_hidden_states": embeds, "text_ids": text_ids}

    def loss(self, latents, cond, generators, sizes=None):
        from genimg.diffusers_private import flux2_tokens

        b = latents.shape[0]
        noise = draw_each(generators, lambda g: torch.randn(latents.shape[1:], generator=g)).to(latents)
        sigmas = torch.sigmoid(draw_each(generators, lambda g: torch.randn((), generator=g))).to(self.device)
        s = sigmas.view(b, 1, 1, 1)
        tokens, image_ids = flux2_tokens((1 - s) * latents + s * noise)
        target, _ = flux2_tokens(noise - latents)
        transformer = self.denoiser
        guidance = None
        if transformer.config.guidance_embeds:
            guidance = torch.full((b,), self.config.flux_guidance, device=self.device, dtype=self.weight_dtype)
        pred = transformer(hidden_states=tokens.to(self.weight_dtype), timestep=sigmas.to(self.weight_dtype),
                           guidance=guidance, encoder_hidden_states=cond["encoder_hidden_states"].to(self.weight_dtype),
                           txt_ids=cond["text_ids"], img_ids=image_ids, return_dict=False)[0]
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2))


# By model line (families.toml `line`): FLUX.2 [dev] and [klein] train the same way.
OBJECTIVES = {"sd": Objective, "sdxl": SDXLObjective, "flux": FluxObjective, "flux2": Flux2Objective}
