"""genimg doctor (never fails, --json for bug reports) and shell completion."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("kind,total,expected", [("cuda", 8.0, "8gb"), ("cpu", 0.0, "cpu")])
def test_doctor_json_names_the_preset_auto_picks(cli, monkeypatch, kind, total, expected):
    from genimg import device, presets

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo(kind, f"Fake {total:g} GB", total, total))
    monkeypatch.setattr(presets, "_AUTO", {})
    result = cli("doctor", "--json")
    assert result.code == 0, result
    found = json.loads(result.out)
    assert found["auto_preset"]["preset"] == expected  # the fake CPU has no bf16 instructions
    assert found["packages"]["torch"] not in (None, "missing") and found["packages"]["diffusers"] != "missing"
    assert {"config", "cache", "hf_cache"} <= set(found["folders"]) and found["folders"]["config"]["free_gb"] > 0
    assert found["hub"]["offline"] is True  # the tests run with HF_HUB_OFFLINE=1
    assert set(found["accelerators"]) == {"xformers", "bitsandbytes", "torchao", "triton", "gguf"}
    assert found["devices"]["cpu"]["openvino"] == "found"  # a dependency: the route auto picks on a CPU
    # conftest's CPU has no flags: the route's recipe for fp32-only CPUs
    assert found["devices"]["cpu"]["kind"] == "fp32" and "Winograd" in found["devices"]["cpu"]["openvino_recipe"]


def test_doctor_reports_what_fails_instead_of_failing(cli, monkeypatch):
    from genimg import presets

    def broken():
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(presets, "pick_auto", broken)
    result = cli("doctor", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["auto_preset"] == {"error": "RuntimeError: CUDA driver version is insufficient"}


def _complete(shell: str, words: str) -> list[str]:
    env = dict(os.environ, _GENIMG_COMPLETE=f"complete_{shell}", _TYPER_COMPLETE_ARGS=words,
               COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1), _TYPER_COMPLETE_FISH_ACTION="get-args")
    done = subprocess.run([sys.executable, "-m", "genimg"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_and_values_for_each_shell(shell):
    script = subprocess.run([sys.executable, "-m", "genimg", "--show-completion", shell], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"))
    assert script.returncode == 0 and "_GENIMG_COMPLETE" in script.stdout, script
    assert "lcm-sd15" in _complete(shell, "genimg txt2img --model lcm")
    samplers = _complete(shell, "genimg img2img --sampler DPM++")
    assert "DPM++ 2M Karras" in samplers and "DPM++ SDE" in samplers and "Euler a" not in samplers
    assert "cpu-bf16" in _complete(shell, "genimg txt2img --preset cpu")
    assert "cinematic" in _complete(shell, "genimg txt2img --style cine")
