"""Exactly the arguments a plan's pipeline is called with: the common ones, the family's, the task's and
the controls', and A1111-style prompt embeddings in place of the text where the prompt needs them."""

from __future__ import annotations

from typing import Sequence

from genimg.models.families import line_of
from genimg.planning import Plan, PlannedImage


def pipeline_arguments(plan: Plan, batch: Sequence[PlannedImage]) -> dict:
    """Exactly the arguments this plan's pipeline takes: the common ones, the family's, the task's and
    the controls'. Nothing is filtered afterwards, so an argument a pipeline lacks is an error, not a
    silently ignored setting."""
    import torch

    from genimg.models.families import FAMILIES
    from genimg.prompting.inline import split_tags
    from genimg.prompting.weighting import has_syntax, plain_text

    spec = plan.spec
    entry = plan.choice.entry
    unweighted = not FAMILIES[plan.ref.family].weighted_prompts
    texts = [split_tags(im.text)[0] for im in batch]
    kwargs = dict(
        prompt=[plain_text(t) if unweighted and has_syntax(t) else t for t in texts],
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(im.seed) for im in batch],
        output_type="np",
    )
    family = FAMILIES[plan.ref.family]
    if family.negative_prompt:
        kwargs["negative_prompt"] = [im.negative_text for im in batch]
    if "max_sequence_length" in family.pipeline_arguments and spec.max_sequence_length:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    if entry.sized:
        kwargs.update(width=spec.width, height=spec.height)
    if entry.area_arg:
        kwargs[entry.area_arg] = spec.width * spec.height
    if plan.inputs is not None:
        kwargs["image"] = plan.inputs.image
        if entry.reference_arg == "image":  # FLUX.2: the input first, then the references, as one list
            kwargs["image"] = [plan.inputs.image, *plan.inputs.references]
        elif entry.reference_arg and plan.inputs.references:
            kwargs[entry.reference_arg] = list(plan.inputs.references)
        if entry.strength:
            kwargs["strength"] = spec.strength
        kwargs.update(entry.fixed)
        if plan.inputs.mask is not None:
            kwargs["mask_image"] = plan.inputs.mask
            if plan.inputs.mask_padding is not None:
                # diffusers' own "only masked area": crop around the mask, inpaint at full size, paste back.
                kwargs.update(padding_mask_crop=plan.inputs.mask_padding, output_type="pil")
    if plan.controls:
        one = len(plan.controls) == 1
        maps = [c.image for c in plan.controls]
        kwargs[entry.control_arg] = maps[0] if one else maps
        if plan.controls[0].mode is not None:  # union ControlNets: each map with its mode, as the line takes them
            kwargs.update(line_of(plan.ref.family).control_mode_arguments(entry.control_arg, maps,
                                                                          [c.mode for c in plan.controls]))
        for arg, values in (("controlnet_conditioning_scale", [c.spec.scale for c in plan.controls]),
                            ("control_guidance_start", [c.spec.start for c in plan.controls]),
                            ("control_guidance_end", [c.spec.end for c in plan.controls])):
            if entry.control_scales:
                kwargs[arg] = float(values[0]) if one else [float(v) for v in values]
    if plan.ip_adapters:
        kwargs["ip_adapter_image"] = [a.image for a in plan.ip_adapters]  # one per adapter, for every image
    return kwargs


def prompt_embeddings(pipe, plan: Plan, kwargs: dict) -> dict:
    """SD and SDXL prompts with weights, BREAK or more than 75 tokens: A1111's embeddings in place of the
    text (the pipeline would read the brackets literally and cut the prompt at 77 tokens)."""
    from genimg.models.families import FAMILIES
    from genimg.prompting.encode import encode, needs_own_encoding

    if not FAMILIES[plan.ref.family].weighted_prompts:
        return kwargs
    prompts, negatives = kwargs["prompt"], kwargs.get("negative_prompt")
    # A1111's Clip skip N reads the layer N − 1 before the last (diffusers' clip_skip counts the same way,
    # but its own path does not run with transformers 5's CLIPTextModel, so genimg encodes those itself).
    skip = plan.spec.clip_skip - 1 if plan.spec.clip_skip else 0
    if not skip and not needs_own_encoding(pipe.tokenizer, prompts + list(negatives or [])):
        return kwargs
    rest = {k: v for k, v in kwargs.items() if k not in ("prompt", "negative_prompt")}
    return {**rest, **encode(pipe, plan.ref.family, prompts, negatives, skip or None)}


def cut_prompts(pipe, plan: Plan, kwargs: dict) -> list[str]:
    """What a prompt loses past ``max_sequence_length`` tokens, as the model line counts them (FLUX.1's T5,
    FLUX.2's chat-templated language model)."""
    line = line_of(plan.ref.family)
    if "max_sequence_length" not in kwargs or "prompt" not in kwargs:
        return []
    limit = kwargs["max_sequence_length"]
    cuts = [line.cut_prompt(pipe, text, limit) for text in dict.fromkeys(kwargs["prompt"])]
    return [f"the prompt is longer than the text encoder reads; past --max-sequence-length {limit} this is cut: "
            f"{cut!r}" for cut in cuts if cut]


def prompt_schedule(pipe, plan: Plan, kwargs: dict):
    """A1111's prompt editing: when a prompt of the batch changes over the steps ([from:to:when], [a|b]), the
    arguments with the first step's embeddings, and ``switch(step)`` -> the embeddings step ``step`` (from 0)
    reads when they differ from the step before's, else None. (kwargs, None) when nothing is scheduled."""
    from genimg.prompting.encode import encode
    from genimg.prompting.schedule import is_scheduled, schedule, text_at

    prompts, negatives = list(kwargs.get("prompt") or []), list(kwargs.get("negative_prompt") or [])
    texts = prompts + negatives
    if not any(is_scheduled(t) for t in texts):
        return kwargs, None
    steps = plan.spec.steps
    pairs = [schedule(t, steps) for t in texts]
    if plan.spec.task != "txt2img":  # the hires fix's second pass: the prompt as the first pass ended it
        finals = [p[-1][1] for p in pairs]
        return {**kwargs, "prompt": finals[:len(prompts)], "negative_prompt": finals[len(prompts):]}, None
    skip = plan.spec.clip_skip - 1 if plan.spec.clip_skip else None
    segments, encoded = [], {}
    for last in sorted({end for p in pairs for end, _ in p}):
        at = tuple(text_at(p, last) for p in pairs)
        if at not in encoded:  # each distinct set of texts encoded once
            encoded[at] = encode(pipe, plan.ref.family, list(at[:len(prompts)]), list(at[len(prompts):]), skip or None)
        segments.append((last, encoded[at]))

    def embeds_at(step: int) -> dict:
        return next((e for last, e in segments if step <= last), segments[-1][1])

    def switch(step: int):
        now = embeds_at(step)
        return now if step > 0 and now is not embeds_at(step - 1) else None

    rest = {k: v for k, v in kwargs.items() if k not in ("prompt", "negative_prompt")}
    return {**rest, **embeds_at(0)}, switch


def refiner_arguments(plan: Plan, batch: Sequence[PlannedImage], latents) -> dict:
    """The refiner's call in diffusers' ensemble of experts: the base's latents, the same prompts, steps, guidance
    and seeds, starting where the base stopped. (The refiner reads the prompts as text: weights and
    A1111's prompt editing are the base's.)"""
    import torch

    from genimg.prompting.inline import split_tags
    from genimg.prompting.schedule import schedule
    from genimg.prompting.weighting import has_syntax, plain_text

    spec = plan.spec

    def text(t: str) -> str:
        t = schedule(split_tags(t)[0], spec.steps)[-1][1]
        return plain_text(t) if has_syntax(t) else t

    return dict(prompt=[text(im.text) for im in batch], negative_prompt=[text(im.negative_text or "") for im in batch],
                image=latents, num_inference_steps=spec.steps, denoising_start=spec.refiner_switch,
                guidance_scale=spec.guidance, generator=[torch.Generator("cpu").manual_seed(im.seed) for im in batch],
                output_type="np")
