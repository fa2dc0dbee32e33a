"""The part every generating command shares: run a spec to files and report each image."""

from __future__ import annotations


def generate_and_report(spec, common) -> None:
    from genimg.api import generate_files
    from genimg.cli.render import print_result, progress_reporter, stderr

    output, overwrite, as_json, quiet = common.output, common.overwrite, common.json, common.quiet
    if spec.model is None and not quiet:
        from genimg.models.resolve import default_model

        name = default_model()
        if name == "demo":
            stderr.print("using the built-in demo model (64x64 shapes); for real images pass --model sd15|sdxl|flux-schnell")
    with progress_reporter(quiet) as report:
        for path, image in generate_files(spec, output, overwrite, progress=report):
            print_result(path, image, as_json)
