"""The server keeps models warm up to --keep and only while the device has room for the next one."""

from genimg.generation import plan
from genimg.serve import warm as warm_models
from genimg.spec import GenerationSpec


def _plans(tiny_models):
    return [plan(GenerationSpec(prompt="x", model=str(tiny_models[family]), preset="cpu")) for family in ("sd", "sdxl")]


def test_models_stay_warm_up_to_keep_while_memory_allows(tiny_models, monkeypatch):
    sd, sdxl = _plans(tiny_models)
    monkeypatch.setattr(warm_models, "memory_free", lambda device: 10 * 2**30)
    warm = warm_models.WarmModels(keep=2)
    first = warm.factory_for(sd)
    warm.factory_for(sdxl)
    assert warm.loaded() == [sd.ref.name, sdxl.ref.name]
    assert warm.factory_for(sd) is first and warm.loaded() == [sdxl.ref.name, sd.ref.name]  # most recent last


def test_a_model_the_device_has_no_room_for_lets_the_least_recent_go_first(tiny_models, monkeypatch):
    sd, sdxl = _plans(tiny_models)
    need = warm_models.weights_bytes(sdxl.ref.location)
    assert need > 100_000  # the tiny model's real weight files, counted
    monkeypatch.setattr(warm_models, "memory_free", lambda device: int(need * warm_models.HEADROOM) - 1)
    warm = warm_models.WarmModels(keep=3)
    warm.factory_for(sd)
    warm.factory_for(sdxl)
    assert warm.loaded() == [sdxl.ref.name]
    monkeypatch.setattr(warm_models, "memory_free", lambda device: int(need * warm_models.HEADROOM) + 1)
    warm.factory_for(sd)
    assert warm.loaded() == [sdxl.ref.name, sd.ref.name]


def test_the_room_a_plan_needs_counts_its_controlnets_and_a_gpus_cached_free_blocks(tiny_models, tiny_controlnets,
                                                                                   monkeypatch, tmp_path):
    import torch
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "edges.png")
    plain = plan(GenerationSpec(prompt="x", model=str(tiny_models["sd"]), preset="cpu"))
    steered = plan(GenerationSpec(prompt="x", model=str(tiny_models["sd"]), preset="cpu", width=64, height=64,
                                  controls=[f"none={tmp_path / 'edges.png'},model={tiny_controlnets['sd']}"]))
    net = warm_models.weights_bytes(str(tiny_controlnets["sd"]))
    assert net > 10_000 and warm_models.plan_bytes(steered) == warm_models.plan_bytes(plain) + net
    # A GPU's free memory is the driver's free memory and the blocks torch keeps cached but unused
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (3 * 2**30, 24 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=0: 5 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index=0: 4 * 2**30)
    assert warm_models.memory_free("cuda:0") == 4 * 2**30
