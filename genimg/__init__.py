"""genimg: generate images with Stable Diffusion 1.x/2.x, SDXL and FLUX from the shell or Python.

>>> import genimg
>>> images = genimg.generate(genimg.GenerationSpec("a red circle on a blue background", seed=1))

Heavy libraries (torch, diffusers) load only when a generation runs, so importing genimg is instant.
"""

__version__ = "0.1.0"

from genimg.errors import GenimgError, RunFailure, UsageError
from genimg.spec import ControlSpec, GenerationSpec, IPAdapterSpec, LoraSpec, MaskSpec, OutpaintSpec


def generate(spec, factory=None, progress=None):
    """Generate the images of a :class:`GenerationSpec`; see :func:`genimg.generation.generate`."""
    from genimg.generation import generate as _generate

    return _generate(spec, factory, progress)


def read_spec(path) -> GenerationSpec:
    """The settings stored in a PNG (genimg's own record, else A1111's ``parameters`` text), as ``--from`` reads them."""
    from genimg.output.metadata import spec_from_png

    return spec_from_png(path).spec


def txt2img(prompt: str, output=None, overwrite: bool = False, **settings):
    """The twin of ``genimg txt2img``: generate and save; returns the written paths."""
    from genimg.api import generate_files

    return [path for path, _ in generate_files(GenerationSpec(prompt=prompt, **settings), output, overwrite)]


def plan(spec, output=None, overwrite: bool = False):
    """Resolve a spec into a frozen plan (model, preset, seeds, paths) without loading weights."""
    from genimg.generation import plan as _plan

    return _plan(spec, output, overwrite)


def run(plan, factory=None, progress=None):
    """Run a plan; yields each image as it is finished."""
    from genimg.generation import run as _run

    return _run(plan, factory, progress)


def run_batch(file, output=None, **options):
    """The twin of ``genimg batch``: see :func:`genimg.batch.plan.run_file`."""
    from genimg.batch.plan import run_file

    return run_file(file, output, **options)


def upscale_images(inputs, output=None, overwrite: bool = False, progress=None, **settings):
    """The twin of ``genimg upscale``: upscale images or folders; returns what was written."""
    from genimg.upscale.run import UpscaleSettings, upscale_files

    return list(upscale_files(inputs, UpscaleSettings(**settings), output, overwrite, progress))


def train_lora(config, resume=None, overwrite: bool = False, progress=None):
    """The twin of ``genimg lora-train``: train with a :class:`genimg.train.config.LoraTrainConfig`."""
    from genimg.train.loop import train_lora as _train_lora

    return _train_lora(config, resume, overwrite, progress)


__all__ = ["ControlSpec", "GenerationSpec", "GenimgError", "IPAdapterSpec", "LoraSpec", "MaskSpec", "OutpaintSpec",
           "RunFailure", "UsageError", "generate", "plan", "read_spec", "run", "run_batch", "train_lora", "txt2img", "upscale_images",
           "__version__"]
