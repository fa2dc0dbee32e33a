"""A1111's hires fix: the first pass's images upscaled, then repainted by img2img at the larger size."""

from __future__ import annotations

from dataclasses import replace

from genimg.denoising import apply_image_prompts, denoise
from genimg.planning import Plan
from genimg.schedulers import build
from genimg.tasks import TaskInputs


def hires_fix(plan: Plan, factory, batch, images, progress) -> tuple[list, int]:
    """A1111's hires fix: each image upscaled to the hires size, then repainted by img2img there with the
    same prompt, seed, sampler and LoRAs (the pipelines share one loaded model)."""
    from genimg.prompting.inline import split_tags
    from genimg.upscale.run import upscale_image

    hires = plan.spec.hires
    upscaler = factory.upscaler(plan.hires_upscaler, plan.preset, progress)
    pipe, loaded = factory.get(plan.ref, plan.preset, plan.hires_choice, progress)
    pipe.scheduler = build(plan.scheduler, loaded.scheduler_config)
    apply_image_prompts(pipe, loaded, plan)  # the second pass sees the same image prompts
    width, height = plan.hires_size
    spec = plan.spec.replace(task="img2img", strength=hires.strength, steps=hires.steps or plan.spec.steps,
                             width=width, height=height, controls=(), hires=None)
    finished, steps = [], 0
    for planned, image in zip(batch, images):
        if plan.hires_upscaler.kind == "sd-x4":  # the x4 upscaler is prompt-guided: the image's own prompt
            upscaler = replace(upscaler, prompt=split_tags(planned.text)[0], negative=planned.negative_text or "")
        big = upscale_image(upscaler, image, width / image.width, planned.seed)
        if big.size != (width, height):
            big = big.resize((width, height))
        inputs = TaskInputs(big, None, "")
        second = replace(plan, spec=spec, inputs=inputs, controls=(), images=(planned,), choice=plan.hires_choice)
        [result], steps, _ = denoise(pipe, loaded, second, [planned], progress)
        finished.append(result)
    return finished, steps
