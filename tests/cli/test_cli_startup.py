"""The CLI starts instantly: help must not import torch or diffusers."""

import subprocess
import sys
import sysconfig
from pathlib import Path


def test_importing_the_cli_leaves_torch_unimported():
    code = ("import sys, genimg.cli.main; heavy = [m for m in ('torch', 'diffusers', 'transformers', "
            "'controlnet_aux', 'peft', 'accelerate') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


COMMANDS = ("txt2img", "img2img", "inpaint", "outpaint", "controlnet", "upscale", "batch", "lora-train", "presets",
            "schedulers", "styles", "models", "info", "doctor", "learn", "config", "preprocess", "serve", "edit")


def test_help_lists_every_command(cli):
    import re

    result = cli("--help")
    assert result.code == 0
    listed = set(re.findall(r"^│ (\S+)\s", result.out, flags=re.M)) - {"--version", "--debug", "--help",
                                                                         "--install-completion", "--show-completion"}
    assert listed == set(COMMANDS)
    for command in COMMANDS:
        assert cli(command, "--help").code == 0


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("genimg ")


def test_installed_console_script_generates_an_image(tiny_models, tmp_path):
    script = Path(sysconfig.get_path("scripts")) / "genimg"
    assert script.exists(), "the genimg console script is not installed in this environment"
    target = tmp_path / "cli.png"
    proc = subprocess.run([str(script), "txt2img", "a red circle", "--model", str(tiny_models["sd"]), "-W", "64",
                           "-H", "64", "--steps", "2", "--seed", "5", "-o", str(target), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file()
    assert "seed=5" in proc.stdout
