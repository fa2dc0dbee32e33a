import json

import pytest
from PIL import Image

from genimg.errors import UsageError
from genimg.presets import get_preset, load_presets, pick_auto


def test_every_tier_ships():
    assert {"cpu", "cpu-bf16", "mps", "6gb", "8gb", "12gb", "16gb", "24gb", "80gb"} <= set(load_presets())


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


@pytest.mark.parametrize("kind,total,expected", [
    ("cuda", 4, "6gb"), ("cuda", 6, "6gb"), ("cuda", 8, "8gb"), ("cuda", 12, "12gb"),
    ("cuda", 16, "16gb"), ("cuda", 24, "24gb"), ("cuda", 40, "80gb"), ("cuda", 80, "80gb"),
])
def test_auto_picks_the_tier_of_each_device(fake_device, kind, total, expected):
    fake_device(kind, total, free_gb=1.0)  # what is free now does not matter: a loaded model takes it
    preset, reason = pick_auto()
    assert preset.name == expected
    assert f"{total:.1f} GB" in reason


def test_auto_on_apple_silicon_runs_on_mps_in_half_precision(fake_device):
    fake_device("mps")
    preset, reason = pick_auto()
    assert preset.name == "mps" and "MPS" in reason
    assert (preset.device, preset.dtype, preset.offload, preset.quantize, preset.attention_slicing) == \
        ("mps", "fp16", "none", "none", True)
    assert preset.for_family("flux").dtype == "bf16"


@pytest.mark.parametrize("bf16,expected", [(True, "cpu-bf16"), (False, "cpu")])
def test_auto_runs_bf16_only_on_a_cpu_with_bf16_instructions(fake_device, bf16, expected):
    fake_device("cpu", bf16=bf16)
    preset, reason = pick_auto()
    assert preset.name == expected and preset.device == "cpu"
    assert (preset.dtype, preset.channels_last) == (("bf16", True) if bf16 else ("fp32", False))
    assert ("bfloat16" in reason) == bf16


@pytest.mark.parametrize("bf16", [True, False])
def test_auto_runs_unets_through_openvino_where_it_is_installed(fake_device, bf16):
    fake_device("cpu", bf16=bf16, openvino=True)
    preset, reason = pick_auto()
    assert (preset.name, preset.device, preset.compile) == ("cpu-openvino", "cpu", "openvino")
    assert ("in bfloat16" if bf16 else "in float32") in reason
    assert f"other models: {'cpu-bf16' if bf16 else 'cpu'}" in reason
    # the fp16 files serve it where OpenVINO computes in bf16 (asked of /proc/cpuinfo, which conftest pins)
    assert preset.half_weights() is False and get_preset("cpu-bf16").half_weights() is True


@pytest.mark.parametrize("flags,expected", [
    ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4, Intel Cooper Lake
    ("fpu sse avx2 avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
    ("fpu sse avx2 avx512f avx512bw", False),  # AVX-512 without bf16: torch emulates it, slower than fp32
    ("fpu sse avx2", False),
])
def test_bf16_instructions_are_read_from_cpuinfo(tmp_path, flags, expected):
    from genimg.device import cpu_has_bf16

    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_bf16(str(tmp_path / "cpuinfo")) is expected
    assert cpu_has_bf16(str(tmp_path / "missing")) is False


def test_the_bf16_cpu_preset_keeps_the_demo_models_image(tmp_path):
    """bf16 moves pixels by rounding, not the picture: measured 0.7/255 on average; another seed moves ~50."""
    import numpy as np

    from genimg.api import generate_files
    from genimg.spec import GenerationSpec

    def image(preset, seed):
        [(path, _)] = list(generate_files(GenerationSpec("a red circle on a blue background", seed=seed, preset=preset,
                                                         steps=12), tmp_path / f"{preset}-{seed}"))
        return np.asarray(Image.open(path), dtype=np.float64)

    fp32, bf16 = image("cpu", 5), image("cpu-bf16", 5)
    assert np.abs(fp32 - bf16).mean() < 3.0
    assert np.abs(fp32 - image("cpu", 6)).mean() > 10 * np.abs(fp32 - bf16).mean()


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


def test_on_linux_without_a_gpu_driver_auto_needs_no_torch(tmp_path):
    """`genimg presets` answers at once on a CPU machine: torch's import (3-10 s) only where a GPU may be."""
    import subprocess
    import sys

    code = ("import sys; import genimg.device as d; sys.platform = 'linux'; "
            f"d.GPU_DEVICE_FILES = ({str(tmp_path / 'nvidia')!r},); "
            "from genimg.presets import pick_auto; p, why = pick_auto(); "
            "print(p.device, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]
    (tmp_path / "nvidia").mkdir()  # a driver present: only torch can say whether a GPU is usable
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "True"


def test_a_device_may_carry_a_gpu_index():
    assert get_preset("8gb").with_overrides(device="cuda:1").device == "cuda:1"
    for wrong in ("cuda:x", "cpu:1", "tpu"):
        with pytest.raises(UsageError, match="device"):
            get_preset("8gb").with_overrides(device=wrong)
