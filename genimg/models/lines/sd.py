"""Stable Diffusion 1.x/2.x: one CLIP text encoder, a UNet trained to predict noise (or v)."""

from __future__ import annotations

from genimg.models.lines import ModelLine


def draw_each(generators: list, draw):
    """One draw per sample, each from its own generator, stacked."""
    import torch

    return torch.stack([draw(g) for g in generators])


class Objective:
    """lora-train's loss for a UNet line: the DDPM forward process's noise (or v) to predict, weighted by
    min-SNR-γ. Each sample draws its noise and time from its own generator, so a sample is trained the same
    whether it shares a batch or sits on another GPU."""

    def __init__(self, pipe, config, device, weight_dtype):
        self.pipe = pipe
        self.config = config
        self.device = device
        self.weight_dtype = weight_dtype

    @property
    def denoiser(self):
        return self.pipe.unet

    def encode_latents(self, pixels):
        vae = self.pipe.vae
        latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mean
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * vae.config.scaling_factor).float()

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        import torch

        with torch.no_grad() if not self.config.train_text_encoder else torch.enable_grad():
            embeds = self.pipe.encode_prompt(captions, self.device, 1, False)[0]
        return {"encoder_hidden_states": embeds}

    def loss(self, latents, cond: dict, generators: list, sizes=None):
        """Per-sample losses."""
        import torch
        from torch.nn import functional as F

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
        import torch

        def cast(value):
            if isinstance(value, dict):
                return {k: cast(v) for k, v in value.items()}
            return value.to(self.device, self.weight_dtype) if torch.is_tensor(value) and value.is_floating_point() else value

        return {k: cast(v) for k, v in cond.items()}


class SDLine(ModelLine):
    name = "sd"
    objective = Objective

    def prompt_hidden(self, encoder, out, clip_skip):
        """The last layer after CLIP's final layer norm, or ``clip_skip`` layers earlier, normed (as
        diffusers' encode_prompt picks it)."""
        if not clip_skip:
            return out[0]
        text_model = getattr(encoder, "text_model", encoder)  # transformers 4 wraps the transformer; 5 does not
        return text_model.final_layer_norm(out.hidden_states[-(clip_skip + 1)])

    def kohya_name(self, key: str) -> str:
        """SD1.x's single text encoder is kohya's ``lora_te_``."""
        return "lora_te_" + key[len("lora_te1_"):] if key.startswith("lora_te1_") else key


LINE = SDLine()
