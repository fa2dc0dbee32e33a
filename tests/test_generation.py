"""plan() and run(): a frozen plan, step counts from the pipeline, dark images, the auto preset once."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.errors import RunFailure, UsageError
from genimg.factory import LoadedModel
from genimg.generation import plan, run
from genimg.spec import GenerationSpec


def test_a_plan_is_frozen_and_holds_one_entry_per_image(tiny_models, tmp_path):
    the_plan = plan(GenerationSpec("x", model=str(tiny_models["sd"]), seed=7, count=3, width=64, height=64),
                    output=tmp_path)
    assert [(im.index, im.seed) for im in the_plan.images] == [(0, 7), (1, 8), (2, 9)]
    assert [im.path.name for im in the_plan.images] == ["x-7.png", "x-8.png", "x-9.png"]
    assert the_plan.spec.steps == 25 and the_plan.spec.scheduler == "DPM++ 2M Karras"  # the family's defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        the_plan.spec = the_plan.spec.replace(steps=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        the_plan.spec.steps = 1
    assert not tmp_path.joinpath("x-7.png").exists()  # planning writes nothing


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    Image.fromarray(data.astronaut()).resize((64, 64)).save(tmp_path / "in.png")
    return tmp_path / "in.png"


@pytest.mark.parametrize("family,strength,expected", [("flux", 0.02, 1), ("flux", 0.5, 10), ("sd", 0.5, 10),
                                                      ("sd", 0.55, 11)])
def test_img2img_reports_the_steps_the_pipeline_ran(cli, tmp_path, tiny_models, photo, family, strength, expected):
    # FLUX rounds strength x steps up (SD3-style), SD down: the count must come from the pipeline itself.
    result = cli("img2img", photo, "x", "-m", tiny_models[family], "--steps", "20", "--strength", str(strength),
                 "--seed", "1", "-o", tmp_path / "out.png", "--json")
    assert result.code == 0, result
    record = json.loads(result.out)
    if family == "flux" and strength == 0.02:
        expected = 1  # ceil(20 x 0.02 = 0.4)
        source = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
        assert np.abs(pixels(tmp_path / "out.png") - source).mean() > 0.5  # it did denoise, not copy the input
    assert record["steps_run"] == expected
    from genimg.output.metadata import read_metadata

    assert read_metadata(tmp_path / "out.png")["genimg"]["denoising_steps"] == expected


def test_sd_strength_too_small_for_one_step_is_a_clear_error(cli, tmp_path, tiny_models, photo):
    result = cli("img2img", photo, "x", "-m", tiny_models["sd"], "--steps", "20", "--strength", "0.02",
                 "-o", tmp_path / "out.png")
    assert result.code == 2 and "leaves no denoising step" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


class _FakePipe:
    """Stands in for a pipeline: returns the given pixels for every image asked for."""

    def __init__(self, value, tokenizer):
        self.value = value
        self.scheduler = None
        self.tokenizer = tokenizer  # read by the prompt encoder to decide whether the text needs its own embeddings

    def __call__(self, **kwargs):
        n = len(kwargs["prompt"])
        return SimpleNamespace(images=np.full((n, 8, 8, 3), self.value, dtype=np.float32))


class _FakeFactory:
    def __init__(self, pipe):
        self.pipe = pipe

    def get(self, ref, preset, choice=None, progress=None):
        loaded = LoadedModel(ref=ref, preset=preset, scheduler_config={})
        return self.pipe, loaded


def test_a_dark_image_is_an_image_and_only_nan_is_a_failure(tiny_models):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")
    the_plan = plan(GenerationSpec("a black cat in a dark room", model=str(tiny_models["sd"]), seed=1, width=64, height=64))
    [dark] = run(the_plan, _FakeFactory(_FakePipe(0.0, tokenizer)))
    assert np.asarray(dark.image).max() == 0
    with pytest.raises(RunFailure, match="NaN"):
        list(run(the_plan, _FakeFactory(_FakePipe(np.nan, tokenizer))))


def test_auto_preset_is_picked_once_per_process_from_total_memory(monkeypatch):
    from genimg import device, presets

    free = iter([23.0, 3.0, 1.0])

    def fake_detect(_=None):
        return device.DeviceInfo("cuda", "Fake 24 GB", total_gb=24.0, free_gb=next(free))

    monkeypatch.setattr(device, "detect", fake_detect)
    monkeypatch.setattr(presets, "_AUTO", {})
    first, reason = presets.pick_auto()
    second, _ = presets.pick_auto()  # a model now fills the card: the tier must not drop
    assert first.name == second.name == "24gb" and "24.0 GB" in reason


def test_each_task_passes_exactly_the_arguments_its_pipeline_takes(tiny_models, photo):
    """Every argument is one the pipeline's __call__ names (diffusers' **kwargs would swallow any other
    silently), with the value the spec asked for."""
    import inspect

    import diffusers

    from genimg.call_arguments import pipeline_arguments
    from genimg.pipelines import pipeline_entry

    sd = dict(model=str(tiny_models["sd"]), seed=1, steps=2, negative="blurry")
    cases = [
        (GenerationSpec("x", width=64, height=48, **sd), {"width": 64, "height": 48, "negative_prompt": ["blurry"]}),
        (GenerationSpec("x", task="img2img", image=str(photo), strength=0.5, **sd), {"strength": 0.5}),
        (GenerationSpec("x", model=str(tiny_models["flux"]), seed=1, steps=2, width=64, height=64,
                        max_sequence_length=32), {"max_sequence_length": 32, "width": 64}),
    ]
    for spec, expected in cases:
        planned = plan(spec)
        args = pipeline_arguments(planned, planned.images)
        cls = getattr(diffusers, pipeline_entry(planned.ref.family, spec.task, planned.ref.variant).class_name)
        takes = set(inspect.signature(cls.__call__).parameters)
        assert set(args) <= takes, (cls.__name__, set(args) - takes)
        assert {k: args[k] for k in expected} == expected
        if spec.task == "img2img":  # SD img2img takes the input's size, not width/height
            assert "width" not in args and args["image"].size == Image.open(photo).size
        if cls.__name__ == "FluxPipeline":
            assert "negative_prompt" not in args


def test_a_strength_of_zero_is_the_input_unchanged(tiny_models, photo):
    the_plan = plan(GenerationSpec("x", model=str(tiny_models["sd"]), task="img2img", image=str(photo), strength=0.0,
                                   seed=1, steps=3))
    [image] = run(the_plan)
    assert image.steps == 0
    assert np.array_equal(np.asarray(image.image), np.asarray(Image.open(photo).convert("RGB")))


def test_unknown_setting_in_the_python_api_is_a_usage_error():
    with pytest.raises(UsageError, match="did you mean 'guidance'"):
        GenerationSpec.from_dict({"prompt": "x", "guidanse": 3})
