"""LoRA written by hand: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models".

A frozen weight W (d_out × d_in) is adapted by a product of two small matrices (§4.1, eq. 3):

    h = W x + (α/r) · B A x,      A: r × d_in,  B: d_out × r,  r ≪ min(d_in, d_out)

A starts random (Kaiming-uniform, as peft draws it) and B at zero, so ΔW = BA is zero and the adapted
model starts as the model (§4.1). Only A and B train: r·(d_in + d_out) numbers per layer instead of
d_in·d_out. After training ΔW can be merged into W (W ← W + (α/r)·BA: no cost at inference) and taken
out again (unmerge), exactly.

``inject`` puts :class:`LoRALinear` in place of the chosen ``nn.Linear`` layers of any model (here the
course UNet's attention output projections and its time-embedding projections).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Settings of `genimg learn lora` (the fine-tune in train_lora.py reads them).
RANK = 4
ALPHA = 4.0
TARGETS = ("attn.out_proj", "emb", "time_mlp.0", "time_mlp.2")  # suffixes of the layers adapted


class LoRALinear(nn.Module):
    """``base`` (frozen) plus the low-rank update (α/r)·B A."""

    def __init__(self, base: nn.Linear, rank: int = RANK, alpha: float = ALPHA, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # what nn.Linear (and peft) use for A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta(self) -> torch.Tensor:
        """ΔW = (α/r) · B A, the update as a full d_out × d_in matrix."""
        return self.scale * self.lora_B @ self.lora_A

    @property
    def weight(self) -> torch.Tensor:
        """W + ΔW: for modules that read their projection's weight rather than call it (PyTorch's
        MultiheadAttention does, for ``out_proj``): the same product, so gradients reach A and B too."""
        return self.base.weight if self.merged else self.base.weight + self.delta()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scale * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta()
            self.merged = False


def inject(model: nn.Module, targets=TARGETS, rank: int = RANK, alpha: float = ALPHA) -> list[str]:
    """Replace every ``nn.Linear`` whose name ends with one of ``targets`` by a :class:`LoRALinear` around
    it, freeze everything else; returns the names adapted."""
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = [name for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    return chosen


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter's numbers (what a LoRA file holds)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def trainable_share(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) of the adapted model."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
