"""`plan` loads nothing: no weights fetched, no preprocessor run, the process not switched offline. What
needs them is `prepare`, which `run` calls; a batch plans each job once and `--check` stops at planning."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg import control
from genimg.generation import plan, prepare
from genimg.models import hub
from genimg.spec import GenerationSpec


@pytest.fixture
def ring(tmp_path):
    from genimg.testing.images import save_ring

    return save_ring(tmp_path / "ring.png")


@pytest.fixture
def counted_preprocess(monkeypatch):
    calls = []
    real = control.preprocess

    def counting(image, mode, *args, **kwargs):
        calls.append(mode)
        return real(image, mode, *args, **kwargs)

    monkeypatch.setattr(control, "preprocess", counting)
    control.forget_maps()
    return calls


def test_plan_runs_no_preprocessor_and_prepare_makes_the_map_once(tiny_models, tiny_controlnets, ring,
                                                                  counted_preprocess):
    spec = GenerationSpec("a ring", model=str(tiny_models["sd"]), steps=2, seed=3,
                          controls=[f"canny={ring},low=50,model={tiny_controlnets['sd']}"])
    planned = plan(spec)
    assert counted_preprocess == [] and planned.controls[0].image is None and not planned.prepared
    ready = prepare(planned)
    edges = np.asarray(ready.controls[0].image)
    assert ready.prepared and edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}
    assert np.array_equal(edges, np.asarray(control.preprocess(Image.open(ring).convert("RGB"), "canny",
                                                               settings={"low": 50})))
    counted_preprocess.clear()
    again = prepare(plan(spec))  # another plan of the same control image and settings: the map is remembered
    assert counted_preprocess == [] and np.array_equal(np.asarray(again.controls[0].image), edges)


def test_an_aliases_loras_are_fetched_by_prepare_not_by_plan(tiny_models, tmp_path, monkeypatch):
    from genimg.paths import config_dir
    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sd"], tmp_path / "lora")
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aliases.toml").write_text(f'[tiny]\nfamily = "sd"\npath = "{tiny_models["sd"]}"\n\n'
                                        '[tiny-fast]\nbase = "tiny"\nloras = "org/fast/lora.safetensors:0.5"\nsteps = 2\n')
    fetched = []
    monkeypatch.setattr(hub, "hub_file", lambda location: fetched.append(location) or str(lora))
    try:
        planned = plan(GenerationSpec("x", model="tiny-fast", seed=1))
        assert fetched == [] and planned.loras == ()
        ready = prepare(planned)
        assert fetched == ["org/fast/lora.safetensors"]
        assert [(l.path, l.weight) for l in ready.loras] == [(str((lora / "pytorch_lora_weights.safetensors").resolve()), 0.5)]
    finally:
        (folder / "aliases.toml").unlink()


def test_a_strength_that_leaves_no_step_is_refused_by_plan(tiny_models, tmp_path):
    from genimg.errors import UsageError

    Image.new("RGB", (64, 64), "red").save(tmp_path / "in.png")
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), task="img2img", image=str(tmp_path / "in.png"),
                          steps=4, strength=0.2)
    with pytest.raises(UsageError, match="leaves no denoising step"):
        plan(spec)
    plan(spec.replace(model=str(tiny_models["flux"])))  # FLUX rounds up: one step at 4 × 0.2


def test_batch_check_plans_each_row_once_and_runs_nothing(cli, tiny_models, tiny_controlnets, ring, tmp_path,
                                                          counted_preprocess, monkeypatch):
    from genimg import generation

    planned = []
    real_plan = generation.plan
    monkeypatch.setattr(generation, "plan", lambda spec, *a, **k: planned.append(spec.prompt) or real_plan(spec, *a, **k))
    rows = [{"prompt": f"ring {n}", "model": str(tiny_models["sd"]), "steps": 2, "seed": n,
             "control": f"canny={ring},model={tiny_controlnets['sd']}"} for n in range(3)]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    checked = cli("batch", tmp_path / "jobs.jsonl", "--check", "-o", tmp_path / "out")
    assert checked.code == 0, checked
    assert sorted(planned) == ["ring 0", "ring 1", "ring 2"] and counted_preprocess == []
    assert not (tmp_path / "out").exists()
    planned.clear()
    done = cli("batch", tmp_path / "jobs.jsonl", "-o", tmp_path / "out")
    assert done.code == 0, done
    assert sorted(planned) == ["ring 0", "ring 1", "ring 2"]  # planned once each, not again per run
    assert counted_preprocess == ["canny"]  # one control image, one map for the three rows
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
