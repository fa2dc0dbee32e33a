"""The text encoders on the `cpu-openvino` route: a CLIP text encoder (SD's, SDXL's two) run by OpenVINO, as
the UNet and the VAE are. On a one-step model the prompt's encoding is a fair part of the image, and the
peer (optimum-intel) runs it on OpenVINO too.

A call gives what transformers' model gives — the last hidden state, the pooled (or projected) embedding
and every layer's hidden states, which prompt weighting, clip skip and SDXL read — as the same output
class. The graph takes the token ids alone: a call with an attention mask, position ids or other inputs
runs on torch. Each encoder is converted once per weights (a textual inversion changes them) and token
shape, and kept with the UNet's conversions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genimg.openvino_unet import Recipe
from genimg.openvino_vae import PartForward
from genimg.third_party import replace_forward


def is_text_encoder(module) -> bool:
    """A CLIP text encoder (with or without its projection): what this route converts."""
    return type(module).__name__ in ("CLIPTextModel", "CLIPTextModelWithProjection")


def install_text(encoder, cache: Path, recipe: Recipe, note=None, model: str = "", part: str = "text encoder") -> None:
    """Run ``encoder`` with OpenVINO from its next call, on this instance only."""
    encoder.eval()
    replace_forward(encoder, TextForward(encoder, encoder, f"{model} ({part})", cache, recipe, note, scale=1))


class TextForward(PartForward):
    """A CLIP text encoder's forward run by OpenVINO: the same call (token ids) and output class."""

    def __call__(self, input_ids=None, attention_mask=None, position_ids=None, output_hidden_states=None,
                 return_dict=None, **kwargs):
        if input_ids is None or attention_mask is not None or position_ids is not None or \
                any(value for value in kwargs.values()):
            if not self.noted and self.note:
                self.note(f"OpenVINO: {self.model} runs on torch for this call (an attention mask or other inputs)")
            self.noted = True
            return self.torch_forward(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                      output_hidden_states=output_hidden_states, return_dict=return_dict, **kwargs)
        ids = input_ids.detach().to(torch.int64)
        outputs = self._request((ids,)).infer([ids.numpy()])
        dtype = next(self.module.parameters()).dtype
        last, pooled, *layers = (torch.from_numpy(outputs[n].copy()).to(dtype) for n in range(len(outputs)))
        hidden = tuple(layers) if output_hidden_states else None
        if hasattr(self.module, "text_projection"):  # CLIPTextModelWithProjection (SDXL's second encoder)
            from transformers.models.clip.modeling_clip import CLIPTextModelOutput

            out = CLIPTextModelOutput(text_embeds=pooled, last_hidden_state=last, hidden_states=hidden)
        else:
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            out = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled, hidden_states=hidden)
        return out.to_tuple() if return_dict is False else out

    def traced(self) -> torch.nn.Module:
        return _TracedText(self.module, self.torch_forward).eval()


class _TracedText(torch.nn.Module):
    """The encoder with token ids in and float32 outputs: the last hidden state, the pooled embedding, then
    every layer's hidden states (the embeddings' first)."""

    def __init__(self, module, torch_forward):
        super().__init__()
        self.module, self.torch_forward = module, torch_forward

    def forward(self, input_ids):
        out = self.torch_forward(input_ids, output_hidden_states=True, return_dict=True)
        pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        return (out.last_hidden_state.float(), pooled.float(), *(h.float() for h in out.hidden_states))
