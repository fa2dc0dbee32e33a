"""Less work per image on a UNet, as options users know from A1111 and the papers (off by default: each
costs some quality, measured in docs/benchmarks.md):

- **DeepCache** (Ma et al. 2023): the UNet's deep features change little from one step to the next, so
  every ``deepcache``-th step runs the whole UNet and the steps between reuse its deep features, running
  only the outermost down and up blocks (the DeepCache package's helper).
- **ToMe for Stable Diffusion** (Bolya & Hoffman 2023): self-attention merges the ``tome`` share of its most
  similar tokens before attending and unmerges after (the tomesd package).

Both wrap one pipeline call and leave the UNet as it was after it, so pipelines sharing the UNet (another
task from ``from_pipe``, the next job) run untouched. They need the packages of ``genimg[speed]``.
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager

from genimg.errors import UsageError

PACKAGES = {"deepcache": ("DeepCache", "DeepCache"), "tome": ("tomesd", "tomesd")}  # setting: (module, pip name)


def check_step_savers(preset, denoiser_class: str) -> None:
    """The preset's ``deepcache`` and ``tome`` are usable here: numbers in range, a UNet to run them on,
    no OpenVINO graph in the way, the package installed. Said before any model loads."""
    wanted = [name for name in PACKAGES if getattr(preset, name)]
    if not wanted:
        return
    if preset.deepcache < 0 or preset.deepcache == 1:
        raise UsageError(f"--deepcache {preset.deepcache}: give the interval between full UNet passes, 2 or more "
                         "(3 is DeepCache's usual setting), or 0 for off")
    if not 0 <= preset.tome < 1:
        raise UsageError(f"--tome {preset.tome:g}: give the share of tokens to merge, from 0 (off) to below 1 (0.5 is "
                         "ToMe's usual setting)")
    if denoiser_class != "UNet2DConditionModel":
        raise UsageError(f"--{wanted[0]} works on UNet models (SD 1.x/2.x, SDXL); this model's denoiser is a "
                         f"{denoiser_class}")
    if preset.compile != "off":
        raise UsageError(f"--{wanted[0]} changes what the UNet runs from step to step, which a compiled graph "
                         f"(compile = {preset.compile}) does not follow; pass --compile off or leave it out")
    for name in wanted:
        module, package = PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--{name} needs the {package} package: pip install \"genimg[speed]\"")


@contextmanager
def step_savers(pipe, preset, seed: int = 0):
    """``pipe`` running with the preset's DeepCache and ToMe for the duration of the block; ToMe's random
    choice of tokens drawn from ``seed`` (tomesd forks torch's global generator otherwise: the same seed
    would not give the same image)."""
    undo = []
    try:
        if preset.tome:
            import tomesd
            import torch

            from genimg.third_party import execution_device, seed_tome

            tomesd.apply_patch(pipe, ratio=preset.tome)
            undo.append(lambda: tomesd.remove_patch(pipe))
            seed_tome(pipe.unet, torch.Generator(execution_device(pipe)).manual_seed(seed))
        if preset.deepcache:
            from DeepCache import DeepCacheSDHelper

            helper = DeepCacheSDHelper(pipe=pipe)
            helper.set_params(cache_interval=preset.deepcache, cache_branch_id=0)
            helper.enable()
            undo.append(helper.disable)
        yield pipe
    finally:
        for step in reversed(undo):
            step()
