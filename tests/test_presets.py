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


def test_auto_on_a_machine_without_gpu_is_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    preset, reason = pick_auto()
    assert preset.name == "cpu" and "no CUDA" in reason


def test_user_presets_are_loaded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "laptop.toml").write_text('device = "cuda"\nvram_gb = 4\ndtype = "fp16"\noffload = "sequential"\n')
    assert get_preset("laptop").offload == "sequential"
    (tmp_path / "presets" / "broken.toml").write_text('dtype = "fp8"\n')
    with pytest.raises(UsageError, match="fp8"):
        load_presets()


def test_presets_command_says_what_auto_picks(cli):
    result = cli("presets", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["auto"]["preset"] in data["presets"]
    assert cli("presets", "--family", "flux").code == 0
    assert cli("presets", "--family", "kandinsky").code == 2
