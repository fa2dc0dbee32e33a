"""A small UNet for the teaching DDPM: residual blocks told the time step (and class) by an embedding.

The shape of Ho et al.'s model, scaled down to train on a CPU: sinusoidal time embedding
(Transformer-style), two resolutions of residual blocks with GroupNorm, self-attention at the lowest
resolution, skip connections from each down block to its up block.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer time steps (Vaswani et al. 2017, §3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x):
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """ε_θ(x_t, t, y): predicts the noise in x_t. ``num_classes`` adds a class embedding whose extra
    last index means "no class" (used for label dropout and classifier-free guidance)."""

    def __init__(self, channels: int = 1, base: int = 32, mults=(1, 2), num_classes: int | None = None,
                 dropout: float = 0.1):
        super().__init__()
        emb_dim = base * 4
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.num_classes = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        widths = [base * m for m in mults]
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        c = base
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(c, w, emb_dim, dropout), ResBlock(w, w, emb_dim, dropout),
                                            nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity()]))
            c = w
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.mid_attn = SelfAttention(c)
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([ResBlock(c + w, w, emb_dim, dropout), ResBlock(w + w, w, emb_dim, dropout),
                                          nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity()]))
            c = w
        self.norm_out = nn.GroupNorm(8, c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)

    def null_like(self, y):
        """The "no class" label for each of ``y``: the embedding's extra last index."""
        return torch.full_like(y, self.num_classes)

    def embed(self, t, y=None):
        """The time step's embedding, plus the class's when the model knows classes (none given: "no class")."""
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.num_classes, device=t.device, dtype=torch.long)
            emb = emb + self.class_emb(y)
        return emb

    def encode(self, h, emb):
        """The down path and the middle from the input convolution's features: (middle, skip features)."""
        skips = []
        for block1, block2, downsample in self.down:
            h = block1(h, emb)
            skips.append(h)
            h = block2(h, emb)
            skips.append(h)
            h = downsample(h)
        return self.mid2(self.mid_attn(self.mid1(h, emb)), emb), skips

    def forward(self, x, t, y=None, residuals=None):
        """ε_θ(x_t, t, y). ``residuals`` (a ControlNet's, controlnet.py) are added to each skip connection and,
        the last, to the middle — diffusers' down_block_additional_residuals and mid_block_additional_residual."""
        emb = self.embed(t, y)
        h, skips = self.encode(self.conv_in(x), emb)
        if residuals is not None:
            *to_skips, to_middle = residuals
            skips = [s + r for s, r in zip(skips, to_skips)]
            h = h + to_middle
        for block1, block2, upsample in self.up:
            h = block1(torch.cat([h, skips.pop()], 1), emb)
            h = block2(torch.cat([h, skips.pop()], 1), emb)
            h = upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
