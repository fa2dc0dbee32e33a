"""The ``genimg`` app: registers each command module and renders errors once, as one line."""

from __future__ import annotations

import functools
import logging
import sys

import typer

from genimg import __version__
from genimg.cli.batch import batch
from genimg.cli.config import app as config_app
from genimg.cli.controlnet import controlnet
from genimg.cli.doctor import doctor
from genimg.cli.edit import edit
from genimg.cli.help_format import App
from genimg.cli.img2img import img2img
from genimg.cli.info import info
from genimg.cli.inpaint import inpaint, outpaint
from genimg.cli.learn import app as learn_app
from genimg.cli.lora_train import lora_train
from genimg.cli.models import app as models_app
from genimg.cli.preprocess import preprocess
from genimg.cli.presets import presets
from genimg.cli.schedulers import schedulers
from genimg.cli.serve import serve
from genimg.cli.styles import styles
from genimg.cli.txt2img import txt2img
from genimg.cli.upscale import upscale
from genimg.cli.caption import caption

app = App(
    name="genimg",
    help="Generate images with Stable Diffusion 1.x/2.x, SDXL and FLUX: from a 6 GB GPU to an H100, or a CPU.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish and PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("txt2img")(txt2img)
app.command("img2img")(img2img)
app.command("inpaint")(inpaint)
app.command("outpaint")(outpaint)
app.command("controlnet")(controlnet)
app.command("edit")(edit)
app.command("upscale")(upscale)
app.command("preprocess")(preprocess)
app.command("batch")(batch)
app.command("lora-train")(lora_train)
app.command("caption")(caption)
app.command("presets")(presets)
app.command("schedulers")(schedulers)
app.command("styles")(styles)
app.add_typer(models_app, name="models")
app.command("info")(info)
app.command("doctor")(doctor)
app.add_typer(learn_app, name="learn")
app.add_typer(config_app, name="config")
app.command("serve")(serve)


def _version(value: bool) -> None:
    if value:
        print(f"genimg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Generate images with Stable Diffusion 1.x/2.x, SDXL and FLUX."""


@functools.cache
def _command():
    """The click command typer makes of the app — once a process: a Python program or a test calling
    :func:`main` many times would otherwise rebuild every command's options each time (60–80 ms)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, turn every error into one line and an exit code."""
    from genimg.cli.render import error_line
    from genimg.errors import GenimgError

    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is the root's flag, taken wherever it stands before a "--" (after one it is a prompt's text)
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end]
    if debug:
        args = ["--debug", *(a for a in args[:end] if a != "--debug"), *args[end:]]
    if not debug:
        # peft imports bitsandbytes when it is installed, and on some CPUs that logs a missing optional kernel
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    command = next((a for a in args if not a.startswith("-")), None)
    command = command if command in names else None
    click = _click_exceptions()
    try:
        from genimg.config import apply_hub_settings

        apply_hub_settings()  # before anything imports huggingface_hub, which reads them once
    except GenimgError:
        pass  # a broken config file is reported, with its line, by the command that reads it
    try:
        code = _command().main(args=args, prog_name="genimg", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)  # click hands back a command's Exit(code) as a return value here
    except click.NoArgsIsHelpError:
        sys.exit(0)  # typer has printed the help already
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        _traceback(debug)
        hint = f" (see `genimg {command} --help`)" if command else " (see `genimg --help`)"
        error_line(e.format_message().replace("\n", " ") + hint, command)
        sys.exit(2)
    except typer.Abort:
        error_line("aborted", command)
        sys.exit(130)
    except KeyboardInterrupt:
        error_line("interrupted", command)
        sys.exit(130)
    except GenimgError as e:
        _traceback(debug)
        error_line(str(e), command)
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        _traceback(debug)
        error_line(f"{type(e).__name__}: {e}" + ("" if debug else " (run again with --debug for the traceback)"), command)
        sys.exit(1)


def _traceback(debug: bool) -> None:
    """With --debug, the traceback of the error being handled, before its one line (the exit code stays)."""
    if debug:
        import traceback

        traceback.print_exc()


def entry() -> None:
    """The ``genimg`` command: :func:`main`, with Ctrl-C made to work inside long steps too (not installed
    when main is called in-process, by the tests or an embedding program)."""
    from genimg.interrupts import stop_promptly_on_ctrl_c

    stop_promptly_on_ctrl_c()
    main()


def _click_exceptions():
    """Click's exception classes from the copy of click that typer runs on (newer typers vendor it), found
    through typer's public ``BadParameter`` instead of typer's private module."""
    import importlib

    usage_error = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")
    return importlib.import_module(usage_error.__module__)
