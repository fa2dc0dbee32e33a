"""DCGAN as Radford, Metz & Chintala 2016 describe it, for 32x32 and 64x64 images.

Generator: a stack of transposed convolutions from a 100-d noise vector, BatchNorm and ReLU between
them, Tanh at the end. Discriminator: strided convolutions, BatchNorm (not on the first layer) and
LeakyReLU(0.2), one logit at the end. Weights from N(0, 0.02); Adam with lr 2e-4 and β1 = 0.5.

Conditional (Mirza & Osindero 2014, "Conditional GANs", on this architecture): the class goes in as a
one-hot vector beside the noise for G, and as one-hot planes beside the image channels for D, so D
judges "is this a real 3?" rather than "is this real?" and G cannot pass off an in-between stroke.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _layers_for(size: int) -> int:
    if size not in (32, 64):
        raise ValueError(f"DCGAN here is sized for 32x32 or 64x64 images, not {size}")
    return int(math.log2(size)) - 2  # 4x4 -> size, doubling each layer


class Generator(nn.Module):
    def __init__(self, z_dim: int = 100, channels: int = 1, size: int = 32, features: int = 64,
                 num_classes: int | None = None):
        super().__init__()
        n = _layers_for(size)
        width = features * 2 ** (n - 1)
        inputs = z_dim + (num_classes or 0)
        layers = [nn.ConvTranspose2d(inputs, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        self.num_classes = num_classes

    def forward(self, z, y=None):
        z = z.view(z.shape[0], self.z_dim)
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, channels: int = 1, size: int = 32, features: int = 64, num_classes: int | None = None):
        super().__init__()
        n = _layers_for(size)
        width = features
        inputs = channels + (num_classes or 0)
        layers = [nn.Conv2d(inputs, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.num_classes = num_classes

    def forward(self, x, y=None):
        if self.num_classes:
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        return self.net(x).view(-1)  # logits; the sigmoid lives in the loss


def init_weights(module: nn.Module) -> None:
    """DCGAN §4: all weights from N(0, 0.02); BatchNorm scales from N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def optimizers(g: Generator, d: Discriminator, lr: float = 2e-4, beta1: float = 0.5):
    return (torch.optim.Adam(g.parameters(), lr=lr, betas=(beta1, 0.999)),
            torch.optim.Adam(d.parameters(), lr=lr, betas=(beta1, 0.999)))


def gan_step(g, d, opt_g, opt_d, real: torch.Tensor, generator: torch.Generator | None = None,
             real_label: float = 1.0, labels: torch.Tensor | None = None) -> tuple[float, float]:
    """One round of the minimax game (Goodfellow et al. 2014, Algorithm 1, with the non-saturating
    generator loss): D learns to tell real (label ``real_label``; 0.9 is one-sided label smoothing)
    from fake, then G learns to make D call its fakes real. A conditional pair is shown the real
    images' classes (``labels``), and G draws fakes of those same classes."""
    b = real.shape[0]
    z = torch.randn(b, g.z_dim, generator=generator).to(real.device)
    fake = g(z, labels)
    loss_d = (F.binary_cross_entropy_with_logits(d(real, labels), torch.full((b,), real_label, device=real.device))
              + F.binary_cross_entropy_with_logits(d(fake.detach(), labels), torch.zeros(b, device=real.device)))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = F.binary_cross_entropy_with_logits(d(fake, labels), torch.ones(b, device=real.device))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()
