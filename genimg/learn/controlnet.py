"""ControlNet: Zhang, Rao & Agrawala 2023, "Adding Conditional Control to Text-to-Image Diffusion Models".

A trained diffusion model is locked. A trainable copy of its encoder (the down path and the middle)
reads the noisy image together with a control image c — edges, a pose, a depth map — and its features
join the locked model's skip connections through *zero convolutions*: 1×1 convolutions whose weight and
bias start at zero (§3.1, eq. 2):

    y_c = F(x; Θ) + Z(F(x + Z(c; Θ_z1); Θ_c); Θ_z2)

F(·; Θ) is the locked block, F(·; Θ_c) its trainable copy, Z the zero convolutions. At initialisation
both Z output zeros, so y_c = y: training starts from exactly the model it was given, and no random
layer adds noise to its features. The zero weights still learn from the first step: ∂Z(h)/∂W = h, which is
not zero, so the gradient reaches W although W is (§3.1, last paragraph).

The control image is first encoded to the features' size by a small convolutional network that ends in a
zero convolution (the paper's E, which brings 512² maps to SD's 64² latents; here the maps are the
images' own size). Training is the diffusion loss of ddpm.py with the locked weights frozen; the paper
drops half the prompts (here: the class labels) so the copy learns to read the control map on its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


def zero_conv(channels_in: int, channels_out: int) -> nn.Conv2d:
    """A 1×1 convolution with weight and bias zero: it outputs zeros until it has learnt something."""
    conv = nn.Conv2d(channels_in, channels_out, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ControlNet(nn.Module):
    """The trainable copy of ``base``'s encoder (a ``unet.UNet``), the control image's encoder, and a zero
    convolution for each skip connection and the middle. Returns the residuals the locked UNet adds."""

    def __init__(self, base: nn.Module, control_channels: int = 1):
        super().__init__()
        self.copy = copy.deepcopy(base)  # starts as the trained weights, not random ones (§3.1)
        self.copy.up = self.copy.norm_out = self.copy.conv_out = None  # the decoder stays the locked model's
        self.copy.requires_grad_(True)
        width = base.conv_in.out_channels
        self.hint = nn.Sequential(nn.Conv2d(control_channels, 16, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.SiLU(), zero_conv(32, width))
        skips = [c for block1, block2, _ in base.down for c in (block1.conv2.out_channels, block2.conv2.out_channels)]
        self.zero_skips = nn.ModuleList(zero_conv(c, c) for c in skips)
        middle = base.mid2.conv2.out_channels
        self.zero_middle = zero_conv(middle, middle)

    def forward(self, x, t, y, control):
        emb = self.copy.embed(t, y)
        h = self.copy.conv_in(x) + self.hint(control)  # x + Z(c; Θ_z1), in features
        middle, skips = self.copy.encode(h, emb)
        return [z(s) for z, s in zip(self.zero_skips, skips)] + [self.zero_middle(middle)]


class ControlledUNet(nn.Module):
    """The locked UNet steered by its ControlNet, as one ε_θ(x_t, t, y) for ddpm.py's GaussianDiffusion:
    set ``control`` (one map per image) before training or sampling; guidance's doubled batch reuses it."""

    def __init__(self, base: nn.Module, controlnet: ControlNet):
        super().__init__()
        self.base, self.controlnet = base.requires_grad_(False), controlnet
        self.num_classes = base.num_classes
        self.control: torch.Tensor | None = None

    def null_like(self, y):
        return self.base.null_like(y)

    def forward(self, x, t, y=None):
        control = self.control.repeat(x.shape[0] // self.control.shape[0], 1, 1, 1)
        return self.base(x, t, y, residuals=self.controlnet(x, t, y, control))


def edge_map(images: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """The control the course trains on: where the brightness changes, by Sobel's filters, as a map in
    {−1, 1} (1 on an edge) — what a Canny map is to Stable Diffusion's edge ControlNet."""
    x = (images + 1) / 2
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None].to(x)
    gradient = F.conv2d(x.flatten(0, 1)[:, None], kernels, padding=1).view(*x.shape[:2], 2, *x.shape[2:])
    magnitude = gradient.square().sum(2).sqrt().amax(1, keepdim=True)
    return (magnitude > threshold).to(x) * 2 - 1
