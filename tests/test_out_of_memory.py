"""Out of memory is always the out-of-memory path (one line naming a smaller preset, --auto-fallback),
wherever it happens: loading a LoRA is not "is it for another model family?"."""

import pytest
import torch

from genimg.errors import is_out_of_memory


@pytest.mark.parametrize("error,expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"), True),
    (RuntimeError("size mismatch for lora_A.weight: copying a param with shape [4, 32]"), False),
    (ValueError("Target modules {'to_q'} not found in the base model"), False),
])
def test_cuda_and_mps_out_of_memory_are_recognised(error, expected):
    assert is_out_of_memory(error) is expected


def test_out_of_memory_loading_a_lora_is_reported_as_out_of_memory(cli, tmp_path, tiny_models, monkeypatch):
    import diffusers

    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sd"], tmp_path / "lora")

    def no_room(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "load_lora_weights", no_room)
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "64", "-H", "64", "--steps", "2",
                 "--lora", lora, "-o", tmp_path / "a.png")
    assert result.code == 1, result
    assert "out of GPU memory loading" in result.err and "another model family" not in result.err
    assert result.err.count("\n") == 1 and not (tmp_path / "a.png").exists()


def test_a_lora_that_does_not_fit_is_still_one_line_about_the_family(cli, tmp_path, tiny_models):
    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sdxl"], tmp_path / "xl-lora")
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "64", "-H", "64", "--steps", "2",
                 "--lora", lora, "-o", tmp_path / "a.png")
    assert result.code == 2 and "Stable Diffusion XL" in result.err and result.err.count("\n") == 1, result


def test_the_retry_loads_only_after_the_pipeline_that_ran_out_and_its_latents_are_freed(tiny_models, monkeypatch):
    """--auto-fallback: what ran out of memory (the pipeline, its loaded model, the latents its frames held)
    is gone before the smaller preset loads — else the retry would load a second model beside the first."""
    import gc
    import weakref
    from types import SimpleNamespace

    import numpy as np
    from transformers import CLIPTokenizer

    from genimg import device, presets
    from genimg.factory import LoadedModel
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo("cuda", "Fake 12 GB", 12.0, 11.0))
    monkeypatch.setattr(presets, "_AUTO", {})
    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")

    class Latents:
        pass

    class Pipe:
        scheduler = None

        def __init__(self, fits):
            self.fits, self.tokenizer = fits, tokenizer

        def __call__(self, **kwargs):
            latents = Latents()
            watched["latents"] = weakref.ref(latents)
            return self._denoise(latents, kwargs)

        def _denoise(self, latents, kwargs):
            if not self.fits:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return SimpleNamespace(images=np.full((len(kwargs["prompt"]), 64, 64, 3), 0.25, dtype=np.float32))

    watched, alive_at_retry = {}, []

    class Factory:
        def __init__(self):
            self.current = None

        def get(self, ref, preset, choice=None, progress=None):
            if watched:  # the retry's load: nothing of the first attempt may still be held
                alive_at_retry.extend(name for name, ref_ in watched.items() if ref_() is not None)
            pipe = Pipe(fits=preset.vram_gb <= 8)
            self.current = LoadedModel(ref=ref, preset=preset, scheduler_config={})
            if not watched:
                watched.update(pipe=weakref.ref(pipe), loaded=weakref.ref(self.current))
            return pipe, self.current

        def release(self):  # as PipelineFactory.release: drop the model, collect what cycles held
            self.current = None
            gc.collect()

    the_plan = plan(GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=2, seed=1))
    [image] = run(the_plan, Factory(), fallback=True)
    assert image.plan.preset.name == "8gb"
    assert set(watched) == {"pipe", "loaded", "latents"} and alive_at_retry == []
