"""The part every generating command shares: settings (and ``--from IMAGE``) to a spec, the spec to
files, and each image reported."""

from __future__ import annotations

# What belongs to one task: dropped when --from takes settings from an image of another task (an img2img
# of a txt2img PNG keeps the input's size, not the size the txt2img run started from).
_TASK_SETTINGS = ("image", "strength", "resize", "mask", "outpaint", "hires", "width", "height")


def build_spec(own: dict, common):
    """The spec of a command: its own settings and the shared flags, laid over ``--from``'s settings
    where that is given (then only the flags actually typed override the image's)."""
    from genimg.spec import GenerationSpec

    settings = {**common.settings(), **own}
    task = own.get("task", "txt2img")
    image_left_out = task not in ("txt2img", "controlnet") and own.get("image") is None
    if common.from_image is None:
        if image_left_out:
            from genimg.errors import UsageError

            raise UsageError(f"give the input image: genimg {task} IMAGE ... (or --from a PNG whose input it takes)")
        return GenerationSpec.from_dict(settings)
    from genimg.output.metadata import spec_from_png

    read = spec_from_png(common.from_image)
    if read.warnings and not common.quiet:
        from genimg.cli.render import warning_line

        for message in read.warnings:
            warning_line(message)
    base = read.spec.to_dict()
    if image_left_out:  # the input the record names, if it is still there unchanged
        own = {**own, "image": _recorded_input(read, common.from_image)}
    if base.get("task", "txt2img") != task:
        base = {k: v for k, v in base.items() if k not in _TASK_SETTINGS}
    base["task"] = task  # the command's own task, whatever the image was made by
    typed = common.given_settings({**common.values, **own})
    if "preset_overrides" in typed:
        typed["preset_overrides"] = {**base.get("preset_overrides", {}), **typed["preset_overrides"]}
    # A command's own arguments that are not flags (the input image, a prompt) count as typed when present.
    typed.update({k: v for k, v in own.items() if v is not None and k in ("task", "image", "prompt")})
    return GenerationSpec.from_dict({**base, **typed})


def _recorded_input(read, png) -> str:
    """The input image a PNG's record names, when it is still there unchanged (its hash as recorded): as
    written, else beside the PNG. One line says which file is missing or changed."""
    from pathlib import Path

    from genimg.errors import UsageError
    from genimg.inputs import file_hash

    recorded = read.spec.image
    if not recorded:
        raise UsageError(f"--from {png}: it records no input image (made by txt2img); give IMAGE")
    found = next((p for p in (Path(recorded), Path(png).parent / Path(recorded).name) if p.is_file()), None)
    if found is None:
        raise UsageError(f"--from {png}: its input image {recorded} is not here (nor beside it); give IMAGE")
    if read.source_hash and file_hash(found) != read.source_hash:
        raise UsageError(f"--from {png}: its input image {found} has changed since (its hash differs); give IMAGE")
    return str(found)


def generate_and_report(own: dict, common) -> None:
    from genimg.cli.render import print_result, progress_reporter
    from genimg.errors import GenimgError

    spec = build_spec(own, common)
    as_json, quiet = common.json, common.quiet
    written = []
    try:
        with progress_reporter(quiet) as report:
            report = _noting_the_demo_model(report, spec.model is None and not quiet)
            for path, image in _generate(spec, common, report):
                print_result(path, image, as_json)
                written.append(path)
    except KeyboardInterrupt:
        from genimg.errors import Interrupted

        left = spec.count - len(written)
        raise Interrupted(f"interrupted: {len(written)} of {spec.count} images written"
                          + (f" (last {written[-1]})" if written else "")
                          + f"; {left} not made, nothing half-written") from None
    except GenimgError as e:
        if not written:
            raise
        # What was made before the failure stays made: say so, or the user remakes it (or thinks it lost).
        raise type(e)(f"{e}; {len(written)} of {spec.count} images were written before it (last {written[-1]})",
                      exit_code=e.exit_code) from e


def plot_and_report(own: dict, common, axes_text) -> bool:
    """An X/Y/Z plot (``--xyz``, or ``--from`` a plot's grid): every image and the grids written and reported;
    False when there is no plot to make."""
    from genimg.cli.render import print_result, progress_reporter
    from genimg.errors import UsageError
    from genimg.output.naming import default_output, is_folder_target
    from genimg.xyz import make_plot, parse_axis

    if not axes_text:  # --from: a grid's record holds its plot
        from genimg.output.metadata import spec_from_png

        axes_text = spec_from_png(common.from_image).xyz
        if not axes_text:
            return False
    axes = [parse_axis(text) for text in axes_text]
    folder = common.output if common.output is not None else default_output()
    if not is_folder_target(folder):
        raise UsageError(f"--xyz writes several images and grids: -o must be a folder (got {folder})")
    spec = build_spec(own, common)
    from genimg.api import executor
    from genimg.serve.safety import named_paths

    run = executor(common.server, common.local, named_paths(spec), fallback=common.auto_fallback,
                   overwrite=common.overwrite)
    with progress_reporter(common.quiet) as report:
        run.progress = report
        for path, summary in make_plot(spec, axes, folder, run):
            print_result(path, summary, common.json)
    return True


def _generate(spec, common, report):
    """(path, image or its summary) of each image made, through the one executor: by a running genimg server
    when there is one and the spec names no local files (a server opens no path a client names; the
    control maps of --save-control are made here), else in this process."""
    from genimg.api import executor
    from genimg.serve.safety import named_paths

    run = executor(common.server, common.local or common.save_control, named_paths(spec), progress=report,
                   fallback=common.auto_fallback, overwrite=common.overwrite)
    return ((w.path, w.image or w.summary) for w in run.generate(spec, common.output, common.save_control))


def _noting_the_demo_model(report, may_note: bool):
    """``report``, first saying that the built-in demo model is in use when no model was named: once work
    starts (the first progress event comes after planning), so a usage error stays one line."""
    from genimg import config
    from genimg.cli.render import stderr

    pending = [may_note]

    def reporting(event, **info):
        if pending[0]:
            pending[0] = False
            if config.generation_defaults({})["model"] == "demo":
                stderr.print("using the built-in demo model (64x64 shapes); for real images pass --model "
                             "sd15|sdxl|flux-schnell")
        report(event, **info)

    return reporting
