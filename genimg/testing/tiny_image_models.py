"""Tiny models of the real classes beside the diffusion ones, with random weights, saved in the formats users
download: spandrel upscalers and face restorers, BLIP and Florence-2 captioners, a WD14 tagger."""

from __future__ import annotations

from pathlib import Path


def save_random_spandrel(path: Path, architecture: str = "esrgan", scale: int = 4, seed: int = 0) -> Path:
    """A small upscaler of a spandrel architecture with random weights, as a .safetensors state dict."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    if architecture == "esrgan":
        from spandrel.architectures.ESRGAN import ESRGAN

        model = ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=scale)
    elif architecture == "span":
        from spandrel.architectures.SPAN import SPAN

        model = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=scale)
    else:
        from spandrel.architectures.Compact import Compact

        model = Compact(num_feat=16, num_conv=4, upscale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_random_face_restorer(path: Path, architecture: str = "RestoreFormer", seed: int = 0) -> Path:
    """A face restorer of a real architecture with random weights, as a .safetensors state dict spandrel
    recognises: a RestoreFormer narrowed to 1 M parameters (its loader reads the widths from the weights), or
    GFPGAN v1.4's full network (86 M: spandrel reads no width from its weights)."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    if architecture == "RestoreFormer":
        from spandrel.architectures.RestoreFormer import RestoreFormer

        # six levels take 512 pixels down to the 16 of the attention its loader assumes
        model = RestoreFormer(n_embed=32, embed_dim=32, ch=32, out_ch=3, ch_mult=(1, 1, 1, 1, 1, 2), num_res_blocks=1,
                              attn_resolutions=(16,), dropout=0.0, in_channels=3, resolution=512, z_channels=32,
                              double_z=False, enable_mid=True, head_size=8)
    else:
        from spandrel.architectures.GFPGAN import GFPGAN

        model = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                       fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path

def save_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """A BLIP captioner (transformers' BlipForConditionalGeneration and BlipProcessor) with a 20-word
    vocabulary and random weights: it writes deterministic nonsense captions through the real classes."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "dog", "cat", "red", "blue",
             "circle", "on", "the", "grass", "sks", "with", "and"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    config = BlipConfig(text_config=dict(vocab_size=len(words), max_position_embeddings=64, bos_token_id=5,
                                         pad_token_id=0, sep_token_id=3, eos_token_id=3, **small),
                        vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=32)
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer).save_pretrained(folder)
    return folder

def save_tiny_florence2(folder: Path, seed: int = 0) -> Path:
    """A Florence-2 captioner (transformers' Florence2ForConditionalGeneration and Florence2Processor: a DaViT of
    one stage and a one-layer BART) with a 40-token BPE vocabulary, saved as its hub folders are."""
    import json

    import torch
    from transformers import (BartTokenizer, CLIPImageProcessor, Florence2Config, Florence2ForConditionalGeneration,
                              Florence2Processor)

    folder.mkdir(parents=True, exist_ok=True)
    words = ["<s>", "<pad>", "</s>", "<unk>", "<image>", *"abcdefghijklmnopqrstuvwxyz",
             *("Ġ" + w for w in ("a", "red", "circle", "on", "blue", "background", "the", "image", "shows", "."))]
    (folder / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = BartTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                              extra_special_tokens={"image_token": "<image>"})
    # 32 px in patches of stride 4: 8 x 8 image tokens and one pooled
    processor = Florence2Processor(CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False,
                                                      image_seq_length=65), tokenizer)
    config = Florence2Config(
        text_config=dict(model_type="bart", vocab_size=len(tokenizer), max_position_embeddings=320, encoder_layers=1,
                         encoder_ffn_dim=16, encoder_attention_heads=1, decoder_layers=1, decoder_ffn_dim=16,
                         decoder_attention_heads=1, d_model=16, eos_token_id=2, bos_token_id=0, pad_token_id=1,
                         decoder_start_token_id=2),
        vision_config=dict(patch_size=[7], depths=[1], patch_stride=[4], patch_padding=[3], patch_prenorm=[False],
                           embed_dim=[16], num_heads=[1], num_groups=[1], window_size=12, projection_dim=16),
        image_token_id=tokenizer.image_token_id)
    torch.manual_seed(seed)
    Florence2ForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


WD14_TAGS = (("general", 9), ("sensitive", 9), ("1girl", 0), ("long_hair", 0), ("red_background", 0), ("^_^", 0),
             ("smile", 0), ("circle", 0), ("hatsune_miku", 4), ("ganyu_(genshin_impact)", 4))


def save_tiny_wd14(folder: Path, seed: int = 0) -> Path:
    """A WD14 tagger as SmilingWolf's v3 repos ship it for timm — config.json (timm's architecture and
    pretrained_cfg), model.safetensors, selected_tags.csv — with a two-block ViT at 64 px and ten tags."""
    import csv
    import json

    import timm
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    args = {"img_size": 64, "class_token": False, "global_pool": "avg", "fc_norm": False, "act_layer": "gelu_tanh",
            "embed_dim": 32, "depth": 2, "num_heads": 2}
    config = {"architecture": "vit_base_patch16_224", "num_classes": len(WD14_TAGS), "num_features": 32,
              "global_pool": "avg", "model_args": args,
              "pretrained_cfg": {"custom_load": False, "input_size": [3, 64, 64], "fixed_input_size": False,
                                 "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center",
                                 "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": len(WD14_TAGS)}}
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = timm.create_model(config["architecture"], pretrained=False, num_classes=len(WD14_TAGS), **args)
    with torch.no_grad():  # logits spread over both sides of the thresholds
        model.head.bias.copy_(torch.linspace(-3, 3, len(WD14_TAGS)))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["tag_id", "name", "category", "count"])
        writer.writerows((n, name, category, 100 - n) for n, (name, category) in enumerate(WD14_TAGS))
    return folder
