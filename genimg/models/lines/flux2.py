"""FLUX.2 ([dev] and [klein]): what the line needs beyond its data.

Both read the prompt with a language model through its chat template ([dev]: Mistral Small 3 with Black
Forest Labs' system message; [klein]: Qwen3 with thinking turned off), so the template's tokens count
against ``max_sequence_length`` too. Everything else (reference images, LoRAs, the 32-channel VAE and its
packing) diffusers' pipelines do themselves."""

from __future__ import annotations

from genimg.errors import UsageError
from genimg.models.lines import ModelLine
from genimg.models.lines.flux import FluxObjective
from genimg.models.lines.sd import draw_each

MIN_SIDE = 64  # Flux2ImageProcessor refuses reference images smaller than this on either side


class Flux2Objective(FluxObjective):
    """FLUX.2 ([dev], [klein]), as diffusers' train_dreambooth_lora_flux2(_klein) examples train it: the
    latents are the VAE's 2×2 patches normalised by its batch-norm statistics, the prompt a language model's
    stacked hidden states; [dev] takes the guidance as an embedding, [klein] none."""

    def encode_latents(self, pixels):
        from genimg.third_party import flux2_image_latents

        return flux2_image_latents(self.pipe, pixels.to(self.device, self.pipe.vae.dtype)).float()

    def encode_text(self, captions: list[str], sizes=None) -> dict:
        import torch

        with torch.no_grad():
            embeds, text_ids = self.pipe.encode_prompt(captions, device=self.device)
        return {"encoder_hidden_states": embeds, "text_ids": text_ids}

    def loss(self, latents, cond, generators, sizes=None):
        import torch
        from torch.nn import functional as F

        from genimg.third_party import flux2_tokens

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


class Flux2Line(ModelLine):
    name = "flux2"
    seamless_tiling = False
    objective = Flux2Objective

    def noise_shape(self, pipe, width: int, height: int) -> tuple[int, ...]:
        """Flux2Pipeline.prepare_latents's noise: 2×2 patches already as channels (it packs them itself)."""
        scale = pipe.vae_scale_factor
        return (pipe.transformer.config.in_channels, height // (scale * 2), width // (scale * 2))

    def check_reference(self, what: str, size: tuple[int, int]) -> None:
        """An image the pipeline reads as a reference (the input of an edit, each --ref) is large enough."""
        if min(size) < MIN_SIDE:
            raise UsageError(f"{what} is {size[0]}x{size[1]}; FLUX.2 reads images at least {MIN_SIDE} pixels on each "
                             "side: pass a larger one (or upscale it)")

    def cut_prompt(self, pipe, text: str, limit: int) -> str | None:
        """The end of ``text`` past ``limit`` tokens of the templated prompt, as the pipeline truncates it."""
        tokenizer = getattr(pipe.tokenizer, "tokenizer", pipe.tokenizer)  # [dev]'s is a Pixtral processor
        total = len(tokenizer(_templated(pipe, text), add_special_tokens=False).input_ids)
        if total <= limit:
            return None
        own = tokenizer(text, add_special_tokens=False).input_ids
        return tokenizer.decode(own[max(0, len(own) - (total - limit)):], skip_special_tokens=True)


def _templated(pipe, text: str) -> str:
    """The prompt as the pipeline gives it to its text encoder (see Flux2Pipeline and Flux2KleinPipeline)."""
    if hasattr(pipe, "system_message"):  # [dev]
        messages = [{"role": "system", "content": [{"type": "text", "text": pipe.system_message}]},
                    {"role": "user", "content": [{"type": "text", "text": text}]}]
        return pipe.tokenizer.apply_chat_template(messages, tokenize=False)
    return pipe.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                              add_generation_prompt=True, enable_thinking=False)


LINE = Flux2Line()
