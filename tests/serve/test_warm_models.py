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
