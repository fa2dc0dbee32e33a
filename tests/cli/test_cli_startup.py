"""The CLI starts instantly: help must not import torch or diffusers."""

import re
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
            "schedulers", "styles", "models", "info", "doctor", "learn", "config", "preprocess", "serve", "edit", "caption")


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
                           "-H", "64", "--steps", "2", "--seed", "5", "-o", str(target), "--quiet",
                           "--preset", "cpu"],  # a fresh process sees the host's CPU: auto could convert for OpenVINO
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file()
    assert "seed=5" in proc.stdout


def _every_command():
    import typer.main

    from genimg.cli.main import app

    def walk(command, path):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), ())


def test_every_commands_help_is_whole_at_80_columns(cli, monkeypatch):
    """Typer's tables cut long option names at 80 columns (``--attention-slic…``); the help must not."""
    monkeypatch.setenv("COLUMNS", "80")
    commands = list(_every_command())
    assert len(commands) > len(COMMANDS)
    for path, command in commands:
        result = cli(*path, "--help")
        assert result.code == 0, path
        lines = result.out.splitlines()
        assert max(len(line) for line in lines) <= 80, (path, max(lines, key=len))
        for param in command.params:
            for name in (*param.opts, *param.secondary_opts):
                if name.startswith("--"):
                    assert re.search(rf"{re.escape(name)}(?![\w-])", result.out), (path, name)


def test_wide_terminals_keep_typers_panels(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    result = cli("txt2img", "--help")
    assert "╭─ Model and memory" in result.out and "--attention-slicing" in result.out


def test_the_preset_and_model_lists_are_whole_at_80_columns(cli, monkeypatch):
    from genimg.models.resolve import aliases
    from genimg.presets import load_presets

    monkeypatch.setenv("COLUMNS", "80")
    presets = cli("presets")
    assert presets.code == 0
    table = presets.out.split("└")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert all(re.search(rf"│ {re.escape(name)}\s", table) for name in load_presets())
    models = cli("models")
    assert models.code == 0
    for name, row in aliases().items():
        assert re.search(rf"│ {re.escape(name)}\s", models.out), name
        if "repo" in row:
            assert row["repo"] in models.out, row["repo"]


def test_demo_model_help_gives_the_smoke_run_the_readme_shows(cli):
    import re
    from pathlib import Path

    shown = " ".join(cli("learn", "demo-model", "--help").out.split())
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    smoke = re.search(r"`(--unet-steps [^`]+)`\s+is a smoke run", readme.replace("\n", " ")).group(1)
    assert " ".join(smoke.split()) in shown
