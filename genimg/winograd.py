"""Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015) for the UNet's 3×3 convolutions, written as torch ops for the OpenVINO route to trace.

A 3×3 convolution computes each 2×2 block of outputs from a 4×4 tile of inputs with 36 multiply-adds per
channel pair; Winograd's transforms turn that into 16 (Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A), and the 16
products for all tiles are 16 matrix products, [tiles × C] @ [C × K], which run at the CPU's matrix peak.
The route ran at 90–94% of this CPU's bf16 peak already, so doing fewer multiplications is what was left:
1.13× a full-size SD1.5 step and 1.15× SDXL's (docs/benchmarks.md, "Winograd's convolutions"), at the cost
of one more bf16 rounding of the transformed tiles (SD1.5's latents after four steps 0.031 from fp32's,
0.033 with it). F(4×4, 3×3) does 4× fewer but its transforms' larger coefficients cost ten times the error
in bf16, so it is not used.

The transforms read and write four times the input's size, which only pays where a tile's matrix product is
large: small images (at most 32×32 outputs) or wide layers (both channel counts 640 or more). Which
convolutions those are at the traced sizes is found first on the meta device.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from genimg.third_party import swap_module

SMALL_IMAGE = 32 * 32  # output pixels at or under which a 3×3 conv pays for its transforms at 320 channels
WIDE_LAYER = 640  # channels in and out from which it pays at any size

# G of F(2×2, 3×3); its Bᵀ and Aᵀ hold only 0 and ±1, so they are applied as adds below.
G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def pays(channels_in: int, channels_out: int, height: int, width: int) -> bool:
    """Whether Winograd beats the CPU's direct convolution for this layer (measured layer by layer:
    docs/benchmarks.md)."""
    return height * width <= SMALL_IMAGE or min(channels_in, channels_out) >= WIDE_LAYER


def eligible(module: torch.nn.Module) -> bool:
    """A plain 3×3 convolution with stride 1, padding 1, no dilation or groups."""
    return (type(module) is torch.nn.Conv2d and module.kernel_size == (3, 3) and module.stride == (1, 1)
            and module.padding == (1, 1) and module.dilation == (1, 1) and module.groups == 1
            and module.padding_mode == "zeros")


def transformed_filter(weight: torch.Tensor) -> torch.Tensor:
    """G g Gᵀ for each (out, in) pair of a [K, C, 3, 3] filter, as the 16 [C, K] matrices of the products,
    computed in fp32 and returned in the weight's dtype."""
    u = torch.einsum("ai,kcij,bj->abck", G, weight.float(), G)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(weight.dtype)


def _input_transform(d0, d1, d2, d3):
    """Bᵀ d along one axis of the tile: four rows (or columns) in, four out."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _output_transform(m0, m1, m2, m3):
    """Aᵀ m along one axis: four in, two out."""
    return m0 + m1 + m2, m1 - m2 - m3


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3×3 convolution (stride 1, zero padding 1) of ``x`` [N, C, H, W] by the transformed filter ``u``."""
    n, c, h, w = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2  # 2×2 output tiles; an odd side is padded and cropped
    x = F.pad(x, (1, 2 * tw - w + 1, 1, 2 * th - h + 1)).permute(0, 2, 3, 1)  # channels last: [N, H, W, C]
    rows = _input_transform(*(x[:, k:k + 2 * th:2] for k in range(4)))  # tile rows 2t … 2t+3
    v = [part for row in rows for part in _input_transform(*(row[:, :, k:k + 2 * tw:2] for k in range(4)))]
    m = torch.matmul(torch.stack(v).reshape(16, n * th * tw, c), u).reshape(4, 4, n * th * tw, -1)
    rows = _output_transform(m[0], m[1], m[2], m[3])
    y = [part for row in rows for part in _output_transform(row[0], row[1], row[2], row[3])]
    y = torch.stack(y).reshape(2, 2, n, th, tw, -1).permute(2, 5, 3, 0, 4, 1).reshape(n, -1, 2 * th, 2 * tw)
    y = y[:, :, :h, :w]
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


class Winograd3x3(torch.nn.Module):
    """Stands in for a 3×3 ``Conv2d`` while a UNet is traced. Its transformed filter is a buffer, computed
    in fp32 and kept in the weight's dtype, so the tracer and OpenVINO take it as they take a weight
    (shared, not copied): computed inside ``forward``, the tracer kept it as a constant of its own and
    converting SD1.5 peaked at 15 GB of anonymous memory, 5.3 GB this way (3.2 GB without Winograd)."""

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.conv = conv
        with torch.no_grad():
            self.register_buffer("u", transformed_filter(conv.weight.detach()), persistent=False)

    # Read by what wraps a conv, as peft's LoRA layers do (the dtype of their lora_A, the base layer's weight)
    @property
    def weight(self) -> torch.nn.Parameter:
        return self.conv.weight

    @property
    def bias(self) -> torch.nn.Parameter | None:
        return self.conv.bias

    def forward(self, x):
        return winograd_conv3x3(x, self.u, self.conv.bias)


def input_sizes(root: torch.nn.Module, inputs: tuple) -> dict[torch.nn.Module, tuple[int, int]]:
    """The height and width each plain 3×3 conv under ``root`` sees when ``root(*inputs)`` runs, found by
    running it on the meta device (shapes only, no arithmetic: a fraction of a second for a UNet)."""
    from torch.func import functional_call

    sizes = {}

    def record(module, args) -> None:  # a pre-hook that returned a value would replace the conv's input
        sizes.setdefault(module, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in root.modules() if eligible(m)]
    tensors = {name: torch.empty_like(t, device="meta")
               for name, t in [*root.named_parameters(), *root.named_buffers()]}
    try:
        with torch.no_grad():
            functional_call(root, tensors, tuple(x.to("meta") for x in inputs))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


@contextmanager
def winograd_convs(root: torch.nn.Module, inputs: tuple, enabled: bool = True):
    """Within the block, the plain 3×3 convolutions under ``root`` for which Winograd pays at the sizes
    ``root(*inputs)`` gives them are computed by it; the modules are put back after, so the torch model
    (LoRAs, the fallback, training) never sees them."""
    sizes = input_sizes(root, inputs) if enabled else {}
    swapped = []
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if child in sizes and pays(child.in_channels, child.out_channels, *sizes[child]):
                swap_module(parent, name, Winograd3x3(child))
                swapped.append((parent, name, child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            swap_module(parent, name, child)
