"""One batch of a plan through its pipeline: the call, its progress, the decoded images checked, and
running out of memory turned into :class:`OutOfMemory` with nothing of the failed attempt kept alive."""

from __future__ import annotations

from typing import Callable, Sequence

from genimg.call_arguments import cut_prompts, pipeline_arguments, prompt_embeddings, prompt_schedule, refiner_arguments
from genimg.errors import RunFailure, is_out_of_memory
from genimg.interrupts import FinishEarly
from genimg.models.families import line_of
from genimg.planning import Plan, PlannedImage
from genimg.presets import Preset, load_presets
from genimg.step_savers import step_savers
from genimg.third_party import finish_early
from genimg.tiling import seamless

Progress = Callable[..., None]


def denoise(pipe, loaded, plan: Plan, batch: Sequence[PlannedImage], progress: Progress | None,
            refiner=None) -> tuple[list, int, bool]:
    """The batch's images, the steps run, and whether a progress callback asked to finish early
    (:class:`FinishEarly`: the images are as far as they got). With ``refiner`` (SDXL's), diffusers' ensemble
    of experts: the base stops at the switch and hands its latents to the refiner, which denoises the rest."""
    import numpy as np
    import torch
    from PIL import Image

    spec = plan.spec
    if plan.inputs is not None and spec.strength == 0:
        # Strength 0 asks for no change at all: the (resized) input, without a trip through the VAE.
        return [plan.inputs.image.copy() for _ in batch], 0, False
    steps, early = 0, []

    kwargs, switch = prompt_schedule(pipe, plan, pipeline_arguments(plan, batch))
    if switch is None:
        kwargs = prompt_embeddings(pipe, plan, kwargs)
    else:  # the prompt edits itself: its embeddings handed to the pipeline at the steps where they change
        kwargs["callback_on_step_end_tensor_inputs"] = ["latents", "prompt_embeds"] + (
            ["add_text_embeds"] if line_of(plan.ref.family).pooled_prompt else [])

    def on_step(pipeline, step, _timestep, tensors):
        nonlocal steps
        steps += 1  # both calls of a refined image count
        if switch is not None and (embeds := switch(step + 1)) is not None:
            tensors.update(step_tensors(pipeline, embeds, tensors))
        if progress:
            try:  # the pipeline's own count: img2img and inpaint run part of the schedule, rounded per family
                progress("step", step=step + 1, total=pipeline.num_timesteps)
            except FinishEarly:
                finish_early(pipeline)
                early.append(step + 1)
        return tensors

    if refiner is not None:  # the base's latents at the switch, not its picture
        kwargs.update(denoising_end=spec.refiner_switch, output_type="latent")
    if spec.varied:  # A1111's variation seed or seed resize: the noise made here, as the pipeline would draw it
        from genimg.noise import initial_noise

        denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
        kwargs["latents"] = initial_noise(pipe, line_of(plan.ref.family), spec, batch, denoiser.dtype)
    for message in cut_prompts(pipe, plan, kwargs):
        if progress:
            progress("warning", message=message)
    if plan.redux:  # FLUX.1 Redux: the prompt and the images as embeddings, in place of the text
        from genimg.redux import prior_for, redux_prompts

        with torch.inference_mode():
            kwargs = redux_prompts(prior_for(loaded, pipe, plan.redux[0].location), kwargs, plan.redux)
    try:
        with torch.inference_mode(), step_savers(pipe, plan.preset, batch[0].seed), seamless(pipe, spec.tiling), \
                seamless(refiner, spec.tiling):
            images = pipe(**kwargs, callback_on_step_end=on_step).images
            if refiner is not None:  # interrupted, it stops at its first step and decodes
                images = refiner(**refiner_arguments(plan, batch, images), callback_on_step_end=on_step).images
    except (IndexError, RuntimeError, ValueError) as e:
        if not is_out_of_memory(e):
            raise RunFailure(f"the pipeline failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        let_go(e)
        images = None
    if images is None:
        raise OutOfMemory(f"out of GPU memory at {spec.width}x{spec.height} with preset {plan.preset.name}",
                          smaller_preset(plan.preset))
    arrays = np.stack([np.asarray(im, dtype=np.float32) / 255 if isinstance(im, Image.Image) else im for im in images])
    if not np.isfinite(arrays).all():
        fix = line_of(plan.ref.family).black_image_advice(plan.ref)
        raise RunFailure(f"the image came out black (NaN in the {plan.preset.dtype} VAE decode); "
                         f"pass --vae-fp32{fix}, or --dtype bf16 / fp32")
    results = [Image.fromarray((a * 255).round().clip(0, 255).astype("uint8")) for a in arrays]
    if plan.inputs is not None:
        results = [plan.inputs.finish(im) for im in results]
    return results, steps, bool(early)


def step_tensors(pipeline, embeds: dict, tensors: dict) -> dict:
    """A prompt's embeddings as a running SD/SDXL pipeline holds them between steps: negative and positive
    joined along the batch under classifier-free guidance (and SDXL's pooled ones as ``add_text_embeds``)."""
    import torch

    def held(negative, positive, like):
        return (torch.cat([negative, positive]) if pipeline.do_classifier_free_guidance else positive).to(like)

    out = {"prompt_embeds": held(embeds["negative_prompt_embeds"], embeds["prompt_embeds"], tensors["prompt_embeds"])}
    if "add_text_embeds" in tensors:
        out["add_text_embeds"] = held(embeds["negative_pooled_prompt_embeds"], embeds["pooled_prompt_embeds"],
                                      tensors["add_text_embeds"])
    return out


def apply_image_prompts(pipe, loaded, plan: Plan) -> None:
    if plan.ip_adapters or loaded.ip_adapter_paths:
        from genimg.ip_adapters import apply_ip_adapters

        apply_ip_adapters(pipe, loaded, plan.ip_adapters)


def let_go(error: BaseException) -> None:
    """Clear the locals of the frames ``error`` passed through (the pipeline's latents, its model), so the
    memory they held is free once the handler ends; the out-of-memory error is then raised outside it,
    with no context that would keep them alive."""
    import traceback

    traceback.clear_frames(error.__traceback__)


def smaller_preset(preset: Preset) -> str | None:
    """The next smaller GPU tier, or None below the smallest."""
    smaller = [p.name for p in load_presets().values() if p.device == "cuda" and p.vram_gb < preset.vram_gb]
    return smaller[-1] if smaller else None


class OutOfMemory(RunFailure):
    """The GPU ran out of memory; ``smaller`` is the preset to try next (None: none is smaller)."""

    def __init__(self, what: str, smaller: str | None):
        self.what, self.smaller = what, smaller
        advice = f"--preset {smaller}" if smaller else "--offload sequential"
        super().__init__(f"{what}; try {advice}, a smaller size or --batch-size 1 (or --auto-fallback)")
