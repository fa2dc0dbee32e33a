"""Every private name of another library genimg relies on, and every patch it makes to another library's
objects, each named once here: diffusers' private helpers where it has no public one, Kontext's private
call argument, instance patches of a VAE's and a UNet's methods, torch's version counters and module
swaps, tomesd's state, OpenVINO's TorchScript decoder. tests/test_third_party.py pins the behaviour each is
used for, so a release that changes one fails there, in one place, not deep inside a run."""

from __future__ import annotations

# FluxKontextPipeline's private call argument: False keeps the input's size (or -W/-H) instead of resizing it
# to the sizes Kontext was trained at.
KONTEXT_KEEPS_SIZE = (("_auto_resize", False),)


def execution_device(pipe):
    """The device a pipeline runs its models on: under CPU offload the accelerator, not where the weights
    rest between calls (``DiffusionPipeline._execution_device``)."""
    return pipe._execution_device


def pack_flux_latents(latents):
    """FLUX's 2×2 patches of VAE latents ``[B, C, H, W]`` as the transformer's tokens ``[B, H/2·W/2, 4C]``."""
    from diffusers import FluxPipeline

    b, c, h, w = latents.shape
    return FluxPipeline._pack_latents(latents, b, c, h, w)


def unpack_flux_latents(tokens, height: int, width: int, vae_scale: int):
    """The inverse of :func:`pack_flux_latents` for an image of ``height`` × ``width`` pixels."""
    from diffusers import FluxPipeline

    return FluxPipeline._unpack_latents(tokens, height, width, vae_scale)


def flux_image_ids(batch: int, height: int, width: int, device, dtype):
    """The position ids of the packed latent tokens (``height`` × ``width`` in patches)."""
    from diffusers import FluxPipeline

    return FluxPipeline._prepare_latent_image_ids(batch, height, width, device, dtype)


def flux2_image_latents(pipe, pixels):
    """FLUX.2's VAE latents of ``pixels`` as its transformer reads them: the distribution's mode, 2×2 patches
    as channels, normalised by the VAE's batch-norm statistics ``[B, 4C, H/2, W/2]``."""
    return pipe._encode_vae_image(pixels, generator=None)


def flux2_tokens(latents):
    """FLUX.2's latents ``[B, C, H, W]`` as tokens ``[B, H·W, C]``, and their position ids ``[B, H·W, 4]``."""
    from diffusers import Flux2Pipeline

    return Flux2Pipeline._pack_latents(latents), Flux2Pipeline._prepare_latent_ids(latents).to(latents.device)


def replace_forward(module, forward) -> None:
    """``module`` (a torch module) computes with ``forward`` from now on, on this instance only: torch's
    ``Module.__call__`` looks ``forward`` up on the instance first."""
    module.forward = forward


def wrap_vae_io(vae, encode, decode) -> None:
    """This VAE instance's ``encode`` and ``decode`` replaced by ``encode(original, *args, **kwargs)`` and
    ``decode(original, ...)``: diffusers' pipelines call ``self.vae.encode``/``decode``, so every pipeline
    sharing the VAE goes through them."""
    original_encode, original_decode = vae.encode, vae.decode
    vae.encode = lambda *args, **kwargs: encode(original_encode, *args, **kwargs)
    vae.decode = lambda *args, **kwargs: decode(original_decode, *args, **kwargs)


def tensor_version(tensor) -> int:
    """How often ``tensor`` was written in place (torch's ``_version`` counter); inference tensors keep none."""
    return 0 if tensor.is_inference() else tensor._version


def swap_module(parent, name: str, module) -> None:
    """``parent``'s child ``name`` replaced by ``module`` (what ``named_modules`` and ``forward`` see)."""
    setattr(parent, name, module)


def seed_tome(unet, generator) -> None:
    """ToMe's random choice of tokens drawn from ``generator``: tomesd keeps its arguments in the patched
    UNet's private ``_tome_info`` and forks torch's global generator when it has none."""
    unet._tome_info["args"]["generator"] = generator



def fresh_accelerator_state() -> None:
    """accelerate's per-process singletons cleared of the mixed-precision setting and accumulation plugin an
    earlier ``Accelerator`` fixed (a second one with another setting raises), keeping the process group's
    state (``AcceleratorState._reset_state``, ``GradientState._reset_state``)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def finish_early(pipe) -> None:
    """Tell a running diffusers pipeline to skip its remaining steps and decode the latents it has: its loop
    ``continue``s while ``pipe.interrupt`` (``_interrupt``) is set; each call starts with it cleared."""
    pipe._interrupt = True



def pad_circularly(conv, x_axis: bool, y_axis: bool):
    """A torch ``Conv2d`` that pads circularly along the axes named (zeros along the other) — seamless
    tiling — on this instance, until the returned function is called: ``Conv2d.forward`` calls
    ``self._conv_forward``, replaced here on the instance and removed again to restore the class's."""
    import torch.nn.functional as F

    pad_y, pad_x = conv.padding

    def forward(input, weight, bias):
        x = F.pad(input, (pad_x, pad_x, 0, 0), mode="circular" if x_axis else "constant")
        x = F.pad(x, (0, 0, pad_y, pad_y), mode="circular" if y_axis else "constant")
        return F.conv2d(x, weight, bias, conv.stride, 0, conv.dilation, conv.groups)

    conv._conv_forward = forward
    return lambda: conv.__dict__.pop("_conv_forward", None)


def convert_traced(module, example_input: tuple):
    """``openvino.convert_model(module, example_input=…)`` without torch's check of the trace.

    OpenVINO traces the module with ``torch.jit.trace``, whose default ``check_trace`` runs the module twice
    more and traces it again to compare — most of a conversion (a full-size SD1.5 UNet: 75 s with it, 27 s
    without), for a check that only warns (genimg's parts keep their shapes as constants on purpose). OpenVINO passes torch's keywords only through its
    TorchScript decoder's ``trace_kwargs``, built here as ``convert_model`` builds it."""
    import openvino as ov
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    decoder = TorchScriptPythonDecoder(module, example_input=example_input, trace_kwargs={"check_trace": False})
    return ov.convert_model(decoder, example_input=example_input)
