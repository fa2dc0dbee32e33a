"""A1111's seamless tiling: every 3×3-style convolution of the denoiser, its ControlNets and the VAE pads
circularly (along both axes, or one) for one run, so the image's right edge continues its left (and its
bottom its top); the model is as it was after."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def seamless(pipe, axes: str | None):
    """Within the block, ``pipe``'s convolutions wrap around along ``axes`` ("xy", "x", "y"; None: as they are)."""
    if not axes:
        yield
        return
    import torch

    from genimg.third_party import pad_circularly

    restore = []
    for name in ("unet", "vae", "controlnet"):
        part = getattr(pipe, name, None)
        if not isinstance(part, torch.nn.Module):
            continue
        for module in part.modules():
            if isinstance(module, torch.nn.Conv2d) and isinstance(module.padding, tuple) and any(module.padding):
                restore.append(pad_circularly(module, "x" in axes, "y" in axes))
    try:
        yield
    finally:
        for undo in restore:
            undo()
