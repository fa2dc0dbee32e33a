"""``genimg lora-train``: fine-tune a LoRA for SD1.x, SDXL or FLUX from a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o

DATA, LORA, OPT, RUN = "Data", "LoRA", "Optimisation", "Checkpoints and output"


def lora_train(
    dataset: Annotated[Optional[Path], typer.Argument(help="Images with .txt/.caption files, kohya N_name folders, or metadata.jsonl.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model: alias, hub id, folder or .safetensors.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder: the LoRA, checkpoints, samples, loss log.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="TOML file with any of these settings (flags win).")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print a commented configuration template and exit.")] = False,
    model_config: Annotated[Optional[Path], typer.Option("--model-config", help="Config folder for a single-file base model.")] = None,
    caption: Annotated[Optional[str], typer.Option("--caption", "--instance-prompt", help="One caption for every image (DreamBooth style); auto: caption the images that have none first (genimg caption).", rich_help_panel=DATA)] = None,
    captioner: Annotated[Optional[str], typer.Option("--captioner", help="With --caption auto: the captioning model (default: blip, or your captioner setting).", rich_help_panel=DATA)] = None,
    class_prompt: Annotated[Optional[str], typer.Option("--class-prompt", help="Caption of the class images (prior preservation).", rich_help_panel=DATA)] = None,
    class_images: Annotated[Optional[Path], typer.Option("--class-images", help="Folder of class images for prior preservation.", rich_help_panel=DATA)] = None,
    prior_weight: Annotated[Optional[float], typer.Option("--prior-weight", help="Weight of the class images' loss (default 1).", rich_help_panel=DATA)] = None,
    caption_prefix: Annotated[Optional[str], typer.Option("--caption-prefix", help="Trigger word put before every caption.", rich_help_panel=DATA)] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Times each image is seen per epoch.", rich_help_panel=DATA)] = None,
    shuffle_captions: Annotated[Optional[bool], typer.Option("--shuffle-captions/--no-shuffle-captions", help="Shuffle comma-separated tags (the first stays).", show_default=False, rich_help_panel=DATA)] = None,
    caption_dropout: Annotated[Optional[float], typer.Option("--caption-dropout", help="Share of steps with an empty caption.", rich_help_panel=DATA)] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="Training size (default: the model's own image size: 512 SD1.x, 1024 SDXL/FLUX, 64 the demo).", rich_help_panel=DATA)] = None,
    center_crop: Annotated[Optional[bool], typer.Option("--center-crop/--buckets", help="Square crops instead of aspect-ratio buckets.", show_default=False, rich_help_panel=DATA)] = None,
    strict: Annotated[Optional[bool], typer.Option("--strict/--skip-unreadable", help="Stop on unreadable images.", show_default=False, rich_help_panel=DATA)] = None,
    rank: Annotated[Optional[int], typer.Option("--rank", help="LoRA rank (default 32 SD1.x, 16 SDXL/FLUX).", rich_help_panel=LORA)] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="LoRA alpha (default 16).", rich_help_panel=LORA)] = None,
    dropout: Annotated[Optional[float], typer.Option("--dropout", help="LoRA dropout.", rich_help_panel=LORA)] = None,
    target_modules: Annotated[Optional[list[str]], typer.Option("--target-module", help="Module names to adapt (repeatable; default per family).", rich_help_panel=LORA)] = None,
    train_text_encoder: Annotated[Optional[bool], typer.Option("--train-text-encoder/--frozen-text-encoder", help="Also train the text encoder(s) (SD1.x, SDXL).", show_default=False, rich_help_panel=LORA)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (default 1e-4).", rich_help_panel=OPT)] = None,
    lr_scheduler: Annotated[Optional[str], typer.Option("--lr-scheduler", help="constant, constant_with_warmup, linear, cosine, ...", rich_help_panel=OPT)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option("--warmup-steps", rich_help_panel=OPT)] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Optimiser steps to train.", rich_help_panel=OPT)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Or: passes over the data.", rich_help_panel=OPT)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", rich_help_panel=OPT)] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum", help="Gradient accumulation steps.", rich_help_panel=OPT)] = None,
    gradient_checkpointing: Annotated[Optional[bool], typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", show_default=False, rich_help_panel=OPT)] = None,
    mixed_precision: Annotated[Optional[str], typer.Option("--mixed-precision", help="no, fp16 or bf16 (LoRA weights stay fp32).", rich_help_panel=OPT)] = None,
    use_8bit_adam: Annotated[Optional[bool], typer.Option("--use-8bit-adam/--adamw", help="bitsandbytes' AdamW8bit: moments in 8 bits (CUDA, and CPU with a recent bitsandbytes).", show_default=False, rich_help_panel=OPT)] = None,
    quantize: Annotated[Optional[str], typer.Option("--quantize", help="none, nf4 or int8: train on a base quantized with bitsandbytes (QLoRA, CUDA; for FLUX on small cards).", rich_help_panel=OPT)] = None,
    noise_offset: Annotated[Optional[float], typer.Option("--noise-offset", rich_help_panel=OPT)] = None,
    min_snr_gamma: Annotated[Optional[float], typer.Option("--min-snr-gamma", help="Min-SNR weighting γ (0: off).", rich_help_panel=OPT)] = None,
    ema_decay: Annotated[Optional[float], typer.Option("--ema-decay", help="Keep an EMA of the LoRA weights (e.g. 0.999).", rich_help_panel=OPT)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", rich_help_panel=OPT)] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Steps between checkpoints.", rich_help_panel=RUN)] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option("--keep-checkpoints", help="How many checkpoints to keep.", rich_help_panel=RUN)] = None,
    validation_prompts: Annotated[Optional[list[str]], typer.Option("--validation-prompt", help="Prompt to render every --validation-every steps (repeatable).", rich_help_panel=RUN)] = None,
    validation_every: Annotated[Optional[int], typer.Option("--validation-every", rich_help_panel=RUN)] = None,
    validation_steps: Annotated[Optional[int], typer.Option("--validation-steps", help="Sampling steps of each validation image.", rich_help_panel=RUN)] = None,
    save_format: Annotated[Optional[str], typer.Option("--save-format", help="diffusers or kohya.", rich_help_panel=RUN)] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue from the latest checkpoint in -o ('latest') or a checkpoint file.", rich_help_panel=RUN)] = None,
    overwrite: o.Overwrite = False,
    allow_pickle: o.AllowPickle = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Fine-tune a LoRA from a folder of captioned images."""
    if print_config:
        from genimg.train.config import TEMPLATE

        print(TEMPLATE, end="")
        return
    import os
    from dataclasses import replace

    from genimg.cli.render import progress_reporter, stderr
    from genimg.errors import UsageError
    from genimg.train.config import LoraTrainConfig, load_config_file

    given = {k: v for k, v in locals().items() if k in LoraTrainConfig.__dataclass_fields__ and v is not None}
    for key in ("dataset", "output", "class_images", "model_config"):
        if key in given:
            given[key] = str(given[key])
    if allow_pickle:
        given["allow_pickle"] = True
    table = load_config_file(config_file) if config_file else {}
    config = replace(LoraTrainConfig(), **{**table, **given})
    for key, flag in (("dataset", "DATASET"), ("model", "--model"), ("output", "-o")):
        if not getattr(config, key):
            raise UsageError(f"missing {flag} (on the command line or in --config)")
    # What needs no torch is checked before the training loop (and torch) is imported.
    from genimg.files import check_folder
    from genimg.train.dataset import collect

    config.validate()
    check_folder(Path(config.output))
    if config.caption == "auto":  # captioned when training starts: here only that there are images
        from genimg.caption import images_of

        if not images_of(Path(config.dataset)):
            raise UsageError(f"dataset {config.dataset} holds no images to caption")
    else:
        collect(Path(config.dataset), config.caption, config.repeats)
    # Under `accelerate launch` / torchrun every process runs this; the first one speaks for them.
    main_process = int(os.environ.get("RANK", "0")) == 0
    quiet = quiet or not main_process
    from genimg.train.loop import train_lora

    with progress_reporter(quiet) as report:
        task = {}

        def on_event(event, **info):
            report(event, **info)
            if event != "train_step" or report.progress is None:
                return
            if "id" not in task:
                task["id"] = report.progress.add_task("training", total=info["total"], completed=info["start"])
            report.progress.update(task["id"], completed=info["step"],
                                   description=f"training (loss {info['loss']:.4f}, lr {info['lr']:.2e})")

        record = train_lora(config, resume, overwrite, on_event)
    if not main_process:
        return
    if json:
        import json as _json

        print(_json.dumps(record))
    else:
        print(record.get("weights", f"stopped at step {record['steps']}"))
        if not quiet and "eval_loss_after" in record:
            resumed = f" (resumed at step {record['steps'] - record['steps_run']}, now {record['steps']})" \
                if record["steps_run"] < record["steps"] else ""
            stderr.print(f"{record['steps_run']} steps in {record['seconds']:.0f} s{resumed}; loss on the training images "
                         f"{record['eval_loss_before']} -> {record['eval_loss_after']}")
