"""FLUX LoRAs in kohya's sd-scripts layout (``lora_unet_double_blocks_0_img_attn_qkv…``), the one
A1111 Forge, ComfyUI and sd-scripts itself read.

sd-scripts names FLUX's modules as Black Forest Labs wrote them, where one linear layer computes
what diffusers splits in several: ``img_attn_qkv`` is diffusers' ``to_q``, ``to_k`` and ``to_v``
stacked, and a single block's ``linear1`` is ``to_q``, ``to_k``, ``to_v`` and ``proj_mlp``. A LoRA on
such a fused layer is exact when its down matrix stacks the parts' down matrices and its up matrix
holds their up matrices on the block diagonal (a part that was not trained contributes zeros):

    [B_q A_q; B_k A_k; B_v A_v] = blockdiag(B_q, B_k, B_v) · [A_q; A_k; A_v]

diffusers' kohya reader recognises this block-diagonal form and splits it back without loss.
"""

from __future__ import annotations

import re

from genimg.errors import UsageError

# sd-scripts module (after ``lora_unet_``) -> the diffusers modules it fuses, in order.
DOUBLE_BLOCK = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "img_attn_proj": ("attn.to_out.0",),
    "img_mlp_0": ("ff.net.0.proj",),
    "img_mlp_2": ("ff.net.2",),
    "img_mod_lin": ("norm1.linear",),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "txt_attn_proj": ("attn.to_add_out",),
    "txt_mlp_0": ("ff_context.net.0.proj",),
    "txt_mlp_2": ("ff_context.net.2",),
    "txt_mod_lin": ("norm1_context.linear",),
}
SINGLE_BLOCK = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation_lin": ("norm.linear",),
}
OUTSIDE_BLOCKS = {
    "img_in": ("x_embedder",),
    "txt_in": ("context_embedder",),
    "time_in_in_layer": ("time_text_embed.timestep_embedder.linear_1",),
    "time_in_out_layer": ("time_text_embed.timestep_embedder.linear_2",),
    "guidance_in_in_layer": ("time_text_embed.guidance_embedder.linear_1",),
    "guidance_in_out_layer": ("time_text_embed.guidance_embedder.linear_2",),
    "vector_in_in_layer": ("time_text_embed.text_embedder.linear_1",),
    "vector_in_out_layer": ("time_text_embed.text_embedder.linear_2",),
}


def fused_modules(transformer) -> dict[str, tuple[str, ...]]:
    """Every sd-scripts module name of this transformer and the diffusers modules behind it."""
    table = {f"lora_unet_{k}": v for k, v in OUTSIDE_BLOCKS.items()}
    for i in range(len(transformer.transformer_blocks)):
        table |= {f"lora_unet_double_blocks_{i}_{k}": tuple(f"transformer_blocks.{i}.{p}" for p in v)
                  for k, v in DOUBLE_BLOCK.items()}
    for i in range(len(transformer.single_transformer_blocks)):
        table |= {f"lora_unet_single_blocks_{i}_{k}": tuple(f"single_transformer_blocks.{i}.{p}" for p in v)
                  for k, v in SINGLE_BLOCK.items()}
    return table


def to_kohya(layers: dict, transformer) -> dict:
    """peft LoRA tensors of a FLUX transformer (``<module>.lora_A.weight``/``lora_B``, scale already
    multiplied in) -> sd-scripts tensors, with ``.alpha`` = rank so that loaders apply them as they are."""
    import torch

    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in layers.items():
        match = re.fullmatch(r"(.+)\.lora_([AB])\.weight", key)
        if match is None:
            raise UsageError(f"unexpected LoRA tensor {key} in a FLUX LoRA")
        pairs.setdefault(match[1], {})[match[2]] = value
    out, used = {}, set()
    for name, parts in fused_modules(transformer).items():
        present = [p for p in parts if p in pairs]
        if not present:
            continue
        used.update(present)
        rank = pairs[present[0]]["A"].shape[0]
        downs, ups = [], []
        for part in parts:
            base = transformer.get_submodule(part)
            if part in pairs:
                downs.append(pairs[part]["A"])
                ups.append(pairs[part]["B"])
            else:
                like = pairs[present[0]]["A"]
                downs.append(like.new_zeros(rank, base.in_features))
                ups.append(like.new_zeros(base.out_features, rank))
        down = torch.cat(downs) if len(downs) > 1 else downs[0]
        up = torch.block_diag(*ups) if len(ups) > 1 else ups[0]
        out[f"{name}.lora_down.weight"] = down.contiguous()
        out[f"{name}.lora_up.weight"] = up.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))
    left = sorted(set(pairs) - used)
    if left:
        raise UsageError(f"sd-scripts' FLUX layout has no name for {left[0]} (and {len(left) - 1} more); "
                         "train without those --target-modules or save in the diffusers layout")
    return out
