import json

import pytest

from genimg.errors import UsageError
from genimg.presets import get_preset, load_presets, pick_auto


def test_every_tier_ships():
    assert {"cpu", "6gb", "8gb", "12gb", "16gb", "24gb", "80gb"} <= set(load_presets())


def test_family_tables_override_the_base():
    six = get_preset("6gb")
    assert six.quantize == "none" and six.offload == "model"
    flux = six.for_family("flux")
    assert (flux.dtype, flux.offload, flux.quantize) == ("bf16", "sequential", "nf4")
    assert six.for_family("sd") == six


def test_flags_override_preset_fields():
    preset = get_preset("8gb").with_overrides(offload="sequential", vae_tiling=False, dtype=None)
    assert (preset.offload, preset.vae_tiling, preset.dtype) == ("sequential", False, "fp16")
    with pytest.raises(UsageError, match="offload"):
        get_preset("8gb").with_overrides(offload="disk")


@pytest.fixture
def fake_device(monkeypatch):
    """Make genimg see the given device (what torch would report), and forget the tier picked before."""
    from genimg import device, presets

    def use(kind, total_gb=0.0, free_gb=None):
        info = device.DeviceInfo(kind, f"Fake {kind} {total_gb:g} GB", total_gb, total_gb if free_gb is None else free_gb)
        monkeypatch.setattr(device, "detect", lambda _=None: info)
        monkeypatch.setattr(presets, "_AUTO", {})

    return use


@pytest.mark.parametrize("kind,total,expected", [
    ("cpu", 0, "cpu"), ("cuda", 4, "6gb"), ("cuda", 6, "6gb"), ("cuda", 8, "8gb"), ("cuda", 12, "12gb"),
    ("cuda", 16, "16gb"), ("cuda", 24, "24gb"), ("cuda", 40, "80gb"), ("cuda", 80, "80gb"),
])
def test_auto_picks_the_tier_of_each_device(fake_device, kind, total, expected):
    fake_device(kind, total, free_gb=1.0)  # what is free now does not matter: a loaded model takes it
    preset, reason = pick_auto()
    assert preset.name == expected
    assert ("no CUDA" in reason) if kind == "cpu" else (f"{total:.1f} GB" in reason)


def test_auto_on_apple_silicon_runs_on_mps_in_half_precision(fake_device):
    fake_device("mps")
    preset, reason = pick_auto()
    assert (preset.device, preset.dtype, preset.offload, preset.quantize) == ("mps", "fp16", "none", "none")
    assert "MPS" in reason


def test_a_gpu_preset_plans_on_a_gpu_and_is_refused_without_one(fake_device, tiny_models):
    from genimg.generation import plan
    from genimg.spec import GenerationSpec

    spec = GenerationSpec("x", model=str(tiny_models["sd"]), preset="8gb", width=64, height=64)
    fake_device("cuda", 8)
    assert plan(spec).preset.device == "cuda"
    fake_device("cpu")
    with pytest.raises(UsageError, match="no GPU"):
        plan(spec)


def test_user_presets_are_loaded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "laptop.toml").write_text('device = "cuda"\nvram_gb = 4\ndtype = "fp16"\noffload = "sequential"\n')
    assert get_preset("laptop").offload == "sequential"
    (tmp_path / "presets" / "broken.toml").write_text('dtype = "fp8"\n')
    with pytest.raises(UsageError, match="fp8"):
        load_presets()


def test_presets_command_shows_a_family_and_refuses_an_unknown_one(cli):
    flux = json.loads(cli("presets", "--family", "flux", "--json").out)
    assert flux["presets"]["6gb"]["quantize"] == "nf4" and flux["presets"]["24gb"]["vae_tiling"] is True
    assert cli("presets", "--family", "kandinsky").code == 2
