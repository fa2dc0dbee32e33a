"""The LoRA training loop: data cached once, exact resume, checkpoints, samples, logs.

Randomness is drawn from generators seeded by (seed, step) and data order from (seed, epoch), so a
run resumed from a checkpoint takes exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from genimg.errors import RunFailure, UsageError
from genimg.interrupts import StopFlag
from genimg.train.config import TEXT_TARGETS, LoraTrainConfig
from genimg.train.dataset import buckets, caption_for, collect, fit_to_bucket, load_images
from genimg.train.run_folder import (CHECKPOINTS, load_checkpoint, log_step, losses, named_trainable, prepare_output,
                                     save_checkpoint, saved_result, tensorboard_writer, trim_log, write_record)

Progress = Callable[..., None]


@dataclass
class TrainingRun:
    """Everything one LoRA training run works with, built once by :func:`train_lora`."""

    config: LoraTrainConfig
    out: Path
    ref: object  # ModelRef
    accelerator: object
    pipe: object
    objective: object
    trained: list  # the modules that carry LoRA layers
    params: list  # their trainable parameters
    items: list  # (latents, example, (h, w)) per image: the data, encoded once
    order_units: list  # item indices, each as often as its repeats
    steps_per_epoch: int
    max_steps: int
    optimizer: object
    lr_schedule: object
    ema: object | None
    text_cache: dict | None
    model: object  # LossModel as accelerate prepared it (under DDP when several processes run)

    @property
    def device(self):
        return self.accelerator.device

    @property
    def scaler(self):
        """fp16 loss scaling (accelerate's GradScaler on a GPU); None otherwise."""
        return self.accelerator.scaler


class LossModel(torch.nn.Module):
    """The trained modules as one module whose forward is the loss: what accelerate prepares, so DDP averages
    every LoRA gradient (the denoiser's and the text encoders') and the text encoding runs under the same
    mixed-precision autocast as the denoiser."""

    def __init__(self, objective, trained: list, text_cache: dict | None):
        super().__init__()
        self.trained = torch.nn.ModuleList(trained)
        self.objective = objective
        self.text_cache = text_cache

    def forward(self, latents, captions: list[str], generators: list, size):
        return self.objective.loss(latents, _text(self.objective, captions, self.text_cache), generators, size)


def train_lora(config: LoraTrainConfig, resume: str | None = None, overwrite: bool = False,
               progress: Progress | None = None, stop_after: int | None = None) -> dict:
    """Train the LoRA ``config`` describes; returns what was made (steps, seconds, losses, weights). The
    first Ctrl-C stops after the current step and saves a checkpoint to resume from (``--resume latest``)."""
    from accelerate import Accelerator

    from genimg.files import check_folder
    from genimg.models import resolve_model

    config.validate()
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise UsageError("--mixed-precision fp16 needs a GPU; on a CPU use bf16 or no")
    out = Path(config.output)
    check_folder(out)  # before the model loads: an unwritable folder fails in a second
    ref = resolve_model(config.model, config=config.model_config, allow_pickle=config.allow_pickle)
    config = config.with_family_defaults(ref.family, max(ref.defaults["width"], ref.defaults["height"]))
    examples = _examples(config, ref)
    from genimg.third_party import fresh_accelerator_state

    # accelerate keeps one mixed-precision setting per process; a second run in the same process (the
    # Python API, a server, the tests) starts from a fresh one, keeping the processes' group.
    fresh_accelerator_state()
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=config.mixed_precision,
                              cpu=not torch.cuda.is_available())
    checkpoint = prepare_output(out, resume, overwrite, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    report = progress or (lambda *a, **k: None)
    run = _build(config, out, ref, accelerator, examples, lambda message: report("warning", message=message), report)
    step = 0
    if checkpoint is not None:
        step = load_checkpoint(checkpoint, run.trained, run.optimizer, run.lr_schedule, run.ema, run.scaler)
        if accelerator.is_main_process:
            trim_log(out, step)  # steps logged after that checkpoint are taken again
    else:
        out.mkdir(parents=True, exist_ok=True)
    eval_before = _eval_loss(run) if step == 0 else saved_result(out).get("eval_loss_before")
    if accelerator.is_main_process:
        write_record(out, run, {"eval_loss_before": eval_before})
    began = time.perf_counter()
    start_step = step
    board = tensorboard_writer(out) if accelerator.is_main_process else None
    with StopFlag() as stop:
        for module in run.trained:
            module.train()
        while step < run.max_steps and not stop.stop:
            epoch = step // run.steps_per_epoch
            step_loss = _train_step(run, step)
            step += 1
            if run.ema is not None:
                run.ema.step([p for _, p in named_trainable(run.trained)])
            if accelerator.is_main_process:
                _after_step(run, step, epoch, step_loss, board)
            report("train_step", step=step, total=run.max_steps, loss=step_loss, lr=run.lr_schedule.get_last_lr()[0],
                   seconds=time.perf_counter() - began, start=start_step)
            if stop_after is not None and step >= stop_after:
                break
    if board is not None:
        board.close()
    if stop.stop and step < run.max_steps:
        _interrupted(run, step)
    # steps: where the run stands; steps_run and seconds: what this process did (a resumed run did only the rest)
    record = {"steps": step, "steps_run": step - start_step, "seconds": round(time.perf_counter() - began, 2)}
    if step >= run.max_steps and accelerator.is_main_process:
        record = _finish(run, {**record, "eval_loss_before": eval_before})
    return record


def _examples(config: LoraTrainConfig, ref) -> list:
    """The training images and their captions (and the class images), checked before any model loads."""
    from genimg.models.families import FAMILIES

    family = FAMILIES[ref.family]
    if config.train_text_encoder and not family.weighted_prompts:  # the CLIP encoders are the ones it trains
        raise UsageError(f"--train-text-encoder is for SD1.x and SDXL; {family.label} LoRAs train the transformer")
    if config.save_format == "kohya" and not family.kohya_version:
        raise UsageError(f"--save-format kohya is for SD1.x, SDXL and FLUX.1; {family.label} LoRAs are saved in the "
                         "diffusers layout, which ComfyUI and diffusers read")
    factor = FAMILIES[ref.family].factor
    if config.resolution % factor:
        raise UsageError(f"--resolution {config.resolution} must be a multiple of {factor} for this model family")
    caption = config.caption
    if caption == "auto":  # kohya users caption their datasets first: the images without a caption file
        from genimg.caption import caption_folder, load_captioner

        for _ in caption_folder(Path(config.dataset), load_captioner(config.captioner)):
            pass
        caption = None
    examples = collect(Path(config.dataset), caption, config.repeats)
    if config.class_images:
        from genimg.train.dataset import Example

        if not config.class_prompt:
            raise UsageError("--class-images needs --class-prompt (the caption of the class images)")
        examples += [Example(e.path, config.class_prompt, e.repeats, True)
                     for e in collect(Path(config.class_images), config.class_prompt, 1)]
    return examples


def _build(config, out, ref, accelerator, examples, warn, report) -> TrainingRun:
    """The model with its LoRA layers, the data encoded once, the optimizer, schedule, scaler and EMA."""
    from peft import LoraConfig

    from genimg.factory import PipelineFactory
    from genimg.models.families import FAMILIES, line_of
    from genimg.presets import get_preset

    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision, torch.float32)
    preset = get_preset("cpu" if device.type == "cpu" else "auto").with_overrides(
        device="cpu" if device.type == "cpu" else str(device), offload="none", compile="off", quantize=config.quantize,
        dtype={torch.float16: "fp16", torch.bfloat16: "bf16"}.get(weight_dtype, "fp32"))
    report("load", model=ref.name)
    pipe, _ = PipelineFactory().get(ref, preset)
    report("loaded", model=ref.name)
    line = line_of(ref.family)
    if line.train_vae_dtype is not None:  # SDXL's VAE encodes NaN in fp16: its latents in the line's dtype
        pipe.vae.to(line.train_vae_dtype)
    objective = line.objective(pipe, config, device, weight_dtype)
    denoiser = objective.denoiser
    for module in (pipe.vae, denoiser, *(getattr(pipe, n) for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None)):
        module.requires_grad_(False)
    if config.quantize != "none":
        from peft import prepare_model_for_kbit_training

        # QLoRA: the quantized base stays frozen; its norms and embeddings go to fp32 for stable gradients.
        prepare_model_for_kbit_training(denoiser, use_gradient_checkpointing=config.gradient_checkpointing)
    torch.manual_seed(config.seed)  # the LoRA's initial weights: the same run from the same seed
    denoiser.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                    init_lora_weights="gaussian", target_modules=config.target_modules))
    trained = [denoiser]
    if config.train_text_encoder:
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                encoder.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                               init_lora_weights="gaussian", target_modules=TEXT_TARGETS))
                trained.append(encoder)
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    # LoRA weights train in fp32 even when the model runs in fp16/bf16: fp16 master weights are what
    # make other trainers fail with "Attempting to unscale FP16 gradients".
    from diffusers.training_utils import cast_training_params

    cast_training_params(list(trained), dtype=torch.float32)
    params = [p for m in trained for p in m.parameters() if p.requires_grad]
    items = _encode_images(config, objective, examples, FAMILIES[ref.family].factor, warn)
    order_units = [i for i, (_, ex, _) in enumerate(items) for _ in range(ex.repeats)]
    steps_per_epoch = max(1, math.ceil(len(order_units) / (config.batch_size * config.grad_accum * accelerator.num_processes)))
    max_steps = config.max_steps or steps_per_epoch * config.epochs

    optimizer = _optimizer(params, config, device, warn)
    from diffusers.optimization import get_scheduler

    lr_schedule = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps,
                                num_training_steps=max_steps)
    # accelerate prepares the loss module (DDP across processes, autocast under mixed precision) and the
    # optimizer (fp16 loss scaling, no step while accumulating). The schedule stays outside: prepared, it
    # would step once per process, and N processes should train what one process with N× the batch does.
    text_cache = {} if not (config.shuffle_captions or config.train_text_encoder) else None
    # device_placement off: the modules are where the preset loaded them (a quantized model cannot move)
    model = accelerator.prepare_model(LossModel(objective, trained, text_cache), device_placement=False)
    optimizer = accelerator.prepare_optimizer(optimizer)
    ema = None
    if config.ema_decay:
        from diffusers.training_utils import EMAModel

        # min_decay = decay: a constant decay from the second step on (the first copies the weights)
        ema = EMAModel([p for _, p in named_trainable(trained)], decay=config.ema_decay, min_decay=config.ema_decay)
    return TrainingRun(config, out, ref, accelerator, pipe, objective, trained, params, items, order_units,
                       steps_per_epoch, max_steps, optimizer, lr_schedule, ema, text_cache, model)


def _encode_images(config, objective, examples, factor: int, warn) -> list:
    """Every image resized into its aspect-ratio bucket and encoded to latents, once."""
    import numpy as np

    sizes = buckets(config.resolution, 64 if config.resolution >= 256 else factor)
    items = []
    with torch.no_grad():
        for example, image in load_images(examples, config.strict, warn):
            fitted = fit_to_bucket(image, sizes, config.center_crop, config.resolution)
            pixels = torch.from_numpy(np.array(fitted)).permute(2, 0, 1)[None].float() / 127.5 - 1
            items.append((objective.encode_latents(pixels)[0].cpu(), example, (fitted.height, fitted.width)))
    return items


def _train_step(run: TrainingRun, step: int) -> float:
    """One optimizer step (``grad_accum`` micro-batches on every process); returns its mean loss."""
    config, accelerator = run.config, run.accelerator
    epoch = step // run.steps_per_epoch
    order = torch.randperm(len(run.order_units), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
    position = (step % run.steps_per_epoch) * config.batch_size * config.grad_accum * accelerator.num_processes
    step_loss = 0.0
    for micro in range(config.grad_accum):
        # Sample j of this step, whichever process or batch it lands in, gets the same image,
        # caption draws and noise: N processes train exactly what one process with N times the
        # batch would (when the batch's images share one bucket, as below).
        first = (micro * accelerator.num_processes + accelerator.process_index) * config.batch_size
        slots = range(first, first + config.batch_size)
        picks = [run.order_units[int(order[(position + j) % len(run.order_units)])] for j in slots]
        generators = [torch.Generator().manual_seed(config.seed * 7_919 + step * 131_071 + j) for j in slots]
        # A batch shares one bucket: take the first pick's bucket and fill it from the same bucket.
        size = run.items[picks[0]][2]
        picks = [p if run.items[p][2] == size else picks[0] for p in picks]
        latents = torch.stack([run.items[p][0] for p in picks]).to(run.device)
        captions = [caption_for(run.items[p][1], config.caption_prefix, config.shuffle_captions, config.caption_dropout,
                                random.Random(f"{config.seed}-{step}-{j}")) for p, j in zip(picks, slots)]
        with accelerator.accumulate(run.model):
            per_sample = run.model(latents, captions, generators, size)
            weights = torch.tensor([config.prior_weight if run.items[p][1].is_prior else 1.0 for p in picks],
                                   device=run.device)
            loss = (per_sample * weights).mean()
            if not torch.isfinite(loss):
                last = sorted((run.out / CHECKPOINTS).glob("step-*.safetensors"))
                raise RunFailure(f"the loss became {loss.item()} at step {step + 1}; stopped. The last good checkpoint "
                                 f"is {last[-1] if last else 'none'}; try a lower --lr or --mixed-precision bf16")
            accelerator.backward(loss)  # scaled under fp16, divided by the accumulation steps
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(run.params, config.max_grad_norm)  # unscales first under fp16
            run.optimizer.step()  # accelerate's: only when the gradients are synced, skipped on fp16 overflow
            if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                run.lr_schedule.step()
            run.optimizer.zero_grad(set_to_none=True)
        step_loss += accelerator.reduce(loss.detach(), "mean").item() / config.grad_accum
    return step_loss


def _after_step(run: TrainingRun, step: int, epoch: int, step_loss: float, board) -> None:
    """The main process's bookkeeping after a step: the log, TensorBoard, checkpoints, validation samples."""
    config, lr = run.config, run.lr_schedule.get_last_lr()[0]
    log_step(run.out, step, epoch + 1, step_loss, lr)
    if board is not None:
        board.add_scalar("train/loss", step_loss, step)
        board.add_scalar("train/lr", lr, step)
    if step % config.checkpoint_every == 0 or step == run.max_steps:
        _save(run, step)
    if config.validation_every and config.validation_prompts and step % config.validation_every == 0:
        _samples(run.pipe, config, run.out, step, run.trained)


def _save(run: TrainingRun, step: int) -> Path:
    return save_checkpoint(run.out, step, run.trained, run.optimizer, run.lr_schedule, run.ema, run.scaler,
                            run.config.keep_checkpoints)


def _interrupted(run: TrainingRun, step: int):
    """Ctrl-C: the steps made so far kept in a checkpoint (unless the last step just wrote one), and how
    to go on."""
    from genimg.errors import Interrupted

    saved = None
    if run.accelerator.is_main_process and step:
        saved = run.out / CHECKPOINTS / f"step-{step:06d}.safetensors"
        if not saved.is_file():
            saved = _save(run, step)
    kept = f"checkpoint {saved} saved; " if saved else "no step was finished; "
    raise Interrupted(f"interrupted at step {step} of {run.max_steps}: {kept}continue with the same command and "
                      "--resume latest")


def _finish(run: TrainingRun, record: dict) -> dict:
    """The finished run: EMA weights in place, the loss on the training images after, the LoRA saved, the
    loss curve drawn and the run's record written; returns the record."""
    from genimg.output.plots import loss_curve
    from genimg.train.export import save_lora

    if run.ema is not None:
        run.ema.copy_to([p for _, p in named_trainable(run.trained)])
    result = {**record, "eval_loss_after": _eval_loss(run),
              "weights": str(save_lora(run.pipe, run.ref, run.trained, run.config, run.out))}
    loss_curve({"loss": losses(run.out)}, run.out / "loss.png")
    write_record(run.out, run, result)
    return result


def _text(objective, captions, cache):
    if cache is None:
        return objective.encode_text(captions)
    missing = [c for c in dict.fromkeys(captions) if c not in cache]
    if missing:
        encoded = objective.encode_text(missing)
        for i, caption in enumerate(missing):
            cache[caption] = {k: v[i:i + 1].detach() if torch.is_tensor(v) and v.dim() > 1 and k != "text_ids" else v
                              for k, v in encoded.items()}
    parts = [cache[c] for c in captions]
    return {k: (torch.cat([p[k] for p in parts]) if torch.is_tensor(parts[0][k]) and k != "text_ids" else parts[0][k])
            for k in parts[0]}


@torch.no_grad()
def _eval_loss(run: TrainingRun) -> float:
    """The loss on every training image at fixed noise and times: comparable before and after."""
    total = 0.0
    for i, (latents, example, size) in enumerate(run.items):
        g = torch.Generator().manual_seed(10_000 + i)
        cond = _text(run.objective, [example.caption or ""], run.text_cache)
        total += run.objective.loss(latents[None].to(run.objective.device), cond, [g], size).mean().item()
    return round(total / len(run.items), 6)


def _optimizer(params, config, device, warn):
    if config.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            warn("--use-8bit-adam needs bitsandbytes (pip install bitsandbytes); using AdamW")
        else:
            if _runs_8bit_adam(bnb, device):
                return bnb.optim.AdamW8bit(params, lr=config.lr, weight_decay=1e-2)
            warn(f"this bitsandbytes has no 8-bit AdamW for {device.type} (CUDA always has one); using AdamW")
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-2)


def _runs_8bit_adam(bnb, device) -> bool:
    """One step on a throwaway tensor: bitsandbytes' CPU and other non-CUDA backends vary by version,
    and a missing kernel should cost a warning at the start, not a crash at the first step."""
    probe = torch.nn.Parameter(torch.zeros(4096, device=device))
    probe.grad = torch.ones_like(probe)
    try:
        bnb.optim.AdamW8bit([probe]).step()
    except (RuntimeError, NotImplementedError, AttributeError):
        return False
    return True



@torch.no_grad()
def _samples(pipe, config, out, step, trained) -> None:
    folder = out / "samples"
    folder.mkdir(exist_ok=True)
    for module in trained:
        module.eval()
    for i, prompt in enumerate(config.validation_prompts):
        image = pipe(prompt, num_inference_steps=config.validation_steps, height=config.resolution,
                     width=config.resolution, generator=torch.Generator().manual_seed(config.seed + i)).images[0]
        image.save(folder / f"step-{step:06d}-{i}.png")
    for module in trained:
        module.train()
