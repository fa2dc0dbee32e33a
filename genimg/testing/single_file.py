"""Write a diffusers SD1.x pipeline as one original-layout (LDM) ``.safetensors`` checkpoint.

The reverse of what ``from_single_file`` does, so that tests can feed genimg the kind of file
users download from civitai. Unlike diffusers' conversion script this follows the UNet's actual
config (block count, layers per block), so it works on tiny models too.
"""

from __future__ import annotations

from pathlib import Path

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def _unet_prefixes(config: dict) -> list[tuple[str, str]]:
    layers = config["layers_per_block"]
    n = len(config["block_out_channels"])
    up_has_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.attentions.0.", "middle_block.1."),
             ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(n):
        for j in range(layers):
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{i * (layers + 1) + j + 1}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{i * (layers + 1) + j + 1}.1."))
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (layers + 1)}.0.op."))
            slot = 2 if up_has_attention[i] else 1
            pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (layers + 1) + layers}.{slot}."))
        for j in range(layers + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (layers + 1) + j}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (layers + 1) + j}.1."))
    return pairs


def unet_to_ldm(state: dict, config: dict) -> dict:
    pairs = _unet_prefixes(config)
    out = {}
    for key, value in state.items():
        new = key
        for hf, ldm in pairs:
            if key.startswith(hf):
                rest = key[len(hf):]
                if ".resnets." in hf:
                    for a, b in _RESNET:
                        if rest.startswith(a + "."):
                            rest = b + rest[len(a):]
                new = ldm + rest
                break
        out[new] = value
    return out


def vae_to_ldm(state: dict, config: dict) -> dict:
    n = len(config["block_out_channels"])
    layers = config["layers_per_block"]
    pairs = [("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."), ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1.")]
    for part in ("encoder", "decoder"):
        for i in range(2):
            pairs.append((f"{part}.mid_block.resnets.{i}.", f"{part}.mid.block_{i + 1}."))
    for i in range(n):
        for j in range(layers):
            pairs.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
        for j in range(layers + 1):
            pairs.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}."))
        if i < n - 1:
            pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
            pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    attn = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out."))
    out = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        for hf, ldm in pairs:
            if new.startswith(hf):
                rest = new[len(hf):]
                if "attn_1" in ldm:
                    for a, b in attn:
                        if rest.startswith(a):
                            rest = b + rest[len(a):]
                    if rest.endswith("weight") and value.ndim == 2:
                        value = value[:, :, None, None]  # LDM stores these as 1x1 convolutions
                new = ldm + rest
                break
        out[new] = value
    return out


def save_sd_single_file(pipe, path: Path) -> Path:
    """Save an SD1.x ``pipe`` as an original-layout checkpoint at ``path``."""
    from safetensors.torch import save_file

    state = {}
    state.update({f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config).items()})
    state.update({f"first_stage_model.{k}": v for k, v in vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config).items()})
    for key, value in pipe.text_encoder.state_dict().items():
        # LDM files name CLIP's weights as the transformers 4 layout did, under `text_model.`.
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        state[f"cond_stage_model.transformer.{key}"] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
