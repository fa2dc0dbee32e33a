"""genimg: generate images with Stable Diffusion 1.x/2.x, SDXL and FLUX from the shell or Python.

>>> import genimg
>>> images = genimg.generate(genimg.GenerationSpec("a red circle on a blue background", seed=1))

Heavy libraries (torch, diffusers) load only when a generation runs, so importing genimg is instant.
"""

__version__ = "0.1.0"

from genimg.errors import GenimgError, RunFailure, UsageError
from genimg.spec import GenerationSpec


def generate(spec, factory=None, progress=None):
    """Generate the images of a :class:`GenerationSpec`; see :func:`genimg.generation.generate`."""
    from genimg.generation import generate as _generate

    return _generate(spec, factory, progress)


def txt2img(prompt: str, output=None, overwrite: bool = False, **settings):
    """The twin of ``genimg txt2img``: generate and save; returns the written paths."""
    from genimg.api import generate_files

    return [path for path, _ in generate_files(GenerationSpec(prompt=prompt, **settings), output, overwrite)]


__all__ = ["GenerationSpec", "GenimgError", "RunFailure", "UsageError", "generate", "txt2img", "__version__"]
