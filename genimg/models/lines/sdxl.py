"""Stable Diffusion XL: two CLIP text encoders (the second's pooled output conditions too), size and crop
micro-conditioning, and a VAE that overflows in fp16."""

from __future__ import annotations

from genimg.models.lines import ModelLine
from genimg.models.lines.sd import Objective


class SDXLObjective(Objective):
    def encode_text(self, captions: list[str], sizes=None) -> dict:
        import torch

        with torch.no_grad() if not self.config.train_text_encoder else torch.enable_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(captions, device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=False)
        return {"encoder_hidden_states": embeds, "pooled": pooled}

    def loss(self, latents, cond, generators, sizes=None):
        import torch

        # SDXL's micro-conditioning: original size, crop offset, target size (no crop after bucketing).
        h, w = sizes
        time_ids = torch.tensor([[h, w, 0, 0, h, w]] * latents.shape[0], device=self.device, dtype=torch.float32)
        cond = {"encoder_hidden_states": cond["encoder_hidden_states"],
                "added_cond_kwargs": {"text_embeds": cond["pooled"], "time_ids": time_ids}}
        return super().loss(latents, cond, generators, sizes)


class SDXLLine(ModelLine):
    name = "sdxl"
    refines = True
    objective = SDXLObjective
    pooled_prompt = True
    embedding_keys = ("clip_l", "clip_g")

    def prompt_encoders(self, pipe):
        return [(t, e) for t, e in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2))
                if e is not None]

    def prompt_hidden(self, encoder, out, clip_skip):
        """The penultimate layer of each encoder, or ``clip_skip`` earlier, not normed."""
        return out.hidden_states[-((clip_skip or 0) + 2)]

    def black_image_advice(self, ref) -> str:
        return "" if ref.vae else ", --vae sdxl-vae-fp16-fix"

    @property
    def train_vae_dtype(self):
        """SDXL's VAE overflows in fp16 (NaN latents at step 1): diffusers' own SDXL script encodes in fp32."""
        import torch

        return torch.float32


LINE = SDXLLine()
