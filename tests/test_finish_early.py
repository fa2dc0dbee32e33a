"""Finishing early (A1111's interrupt): the remaining steps skipped, the latents as far as they got decoded,
and nothing more made — neither the other images nor the hires pass."""

from __future__ import annotations

import numpy as np
import torch

from genimg.spec import GenerationSpec, HiresSpec


def _stopping_at(step: int, seen: list):
    from genimg.interrupts import FinishEarly

    def progress(event, **info):
        seen.append(event)
        if event == "step" and info["step"] == step:
            raise FinishEarly

    return progress


def test_an_image_finished_at_step_k_is_the_decoded_latents_of_step_k(tmp_path, tiny_models):
    from genimg.api import Executor
    from genimg.factory import PipelineFactory

    factory, seen = PipelineFactory(), []
    spec = GenerationSpec("a red circle", model=str(tiny_models["sd"]), width=64, height=64, steps=10, seed=4,
                          negative="", preset="cpu", scheduler="Euler", guidance=6.0, count=3,
                          hires=HiresSpec(scale=2.0, strength=0.5, upscaler="lanczos"))
    written = list(Executor(None, factory, _stopping_at(3, seen)).generate(spec, tmp_path / "x.png"))
    assert len(written) == 1 and written[0].summary["steps_run"] == 3  # not the other two, no hires pass
    assert seen.count("step") == 3 and seen.count("image") == 1
    from PIL import Image

    made = np.asarray(Image.open(written[0].path))
    assert made.shape == (64, 64, 3)

    # The same call in plain diffusers, its latents taken after step 3 and decoded by hand.
    pipe = factory.current.base
    latents = {}

    def keep(pipeline, step, _t, tensors):
        if step == 2:
            latents["x"] = tensors["latents"].clone()
        return tensors

    with torch.inference_mode():
        pipe(prompt=["a red circle"], negative_prompt=[""], num_inference_steps=10, height=64, width=64,
             guidance_scale=6.0,
             generator=[torch.Generator().manual_seed(4)], callback_on_step_end=keep)
        decoded = pipe.vae.decode(latents["x"] / pipe.vae.config.scaling_factor).sample
    expected = np.asarray(pipe.image_processor.postprocess(decoded, output_type="pil")[0])
    assert np.abs(made.astype(int) - expected.astype(int)).max() <= 1
