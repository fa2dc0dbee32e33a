"""Latent diffusion with cross-attention: Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models" — Stable Diffusion's design, in miniature.

Two ideas.

1. Diffuse in a learned latent space (§3). An autoencoder with a KL-regularised spatial code (vae.py,
   ``spatial=True``) is trained first and frozen; the DDPM of ddpm.py then learns the distribution of its
   codes z = E(x) — here 4 × 4 × 4 numbers for a 16 × 16 image, 16 positions instead of 256 — and a
   sample is decoded, x = D(z). Before diffusion the codes are scaled to unit variance by a factor s
   measured on the data (§4.3.2 and Appendix G; Stable Diffusion's s = 0.18215), because the noise
   schedule assumes data of about unit scale: with codes ten times larger, x_T would not be noise.

2. Condition through cross-attention (§3.3, eq. 3). A text encoder τ_θ turns a prompt y into a sequence
   of token embeddings, and after every residual block the UNet's features φ(z_t) attend to it:

       Attention(Q, K, V) = softmax(Q Kᵀ / √d) · V,   Q = W_Q · φ(z_t),  K = W_K · τ_θ(y),  V = W_V · τ_θ(y)

   Each image position takes a mix of the tokens' values, weighted by how well its query matches each
   token's key: the softmax row of a position is the attention map drawn by the trainer. τ_θ is a small
   transformer trained jointly with the UNet, as in the paper's own text-to-image model (§4.3.1, a
   transformer over BERT tokens); Stable Diffusion instead froze a pretrained CLIP text encoder.

Classifier-free guidance works as in ddpm.py, with the empty prompt as "no condition".
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from genimg.learn.unet import ResBlock, SelfAttention, timestep_embedding

PAD, START = 0, 1  # token ids: padding, and the start token every prompt begins with (CLIP has one too)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("{word}", "a {word}", "the digit {word}", "a handwritten {word}", "the number {word}", "{name}")


def prompt_for(class_name: str, template: str = "a {word}") -> str:
    """A prompt naming a class: digits by their word ("a seven"), other classes by their name."""
    word = DIGIT_WORDS[int(class_name)] if class_name.isdigit() else class_name
    return template.format(word=word, name=class_name)


class Tokenizer:
    """Whole words of a fixed vocabulary: the start token, the prompt's words, padding to ``length``.
    (CLIP splits text into byte-pair pieces of a 49,408-entry vocabulary; whole words do for our prompts.)"""

    def __init__(self, words, length: int = 6):
        self.vocabulary = ["<pad>", "<s>", *sorted(set(words))]
        self.index = {word: i for i, word in enumerate(self.vocabulary)}
        self.length = length

    @classmethod
    def for_classes(cls, class_names) -> "Tokenizer":
        """The words of every template's prompt for every class."""
        return cls(word for name in class_names for t in TEMPLATES for word in prompt_for(name, t).split())

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        rows = []
        for prompt in prompts:
            words = prompt.lower().split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(f"the word {unknown[0]!r} is not in the model's vocabulary "
                                 f"({' '.join(self.vocabulary[2:])})")
            ids = [START] + [self.index[w] for w in words][:self.length - 1]
            rows.append(ids + [PAD] * (self.length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)


class TextEncoder(nn.Module):
    """τ_θ: token and position embeddings, then pre-norm transformer layers (Vaswani et al. 2017):
    ids (N, L) -> token embeddings (N, L, dim), and the mask of the padding (True where there is none)."""

    def __init__(self, vocabulary: int, length: int, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, dim)
        self.positions = nn.Parameter(torch.randn(length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids):
        padding = ids == PAD
        h = self.tokens(ids) + self.positions[:ids.shape[1]]
        return self.norm(self.layers(h, src_key_padding_mask=padding)), padding


class CrossAttention(nn.Module):
    """The image's features attend to the prompt's tokens (eq. 3) with ``heads`` heads, as a residual
    update. With ``keep_map`` set, ``last_map`` holds each token's attention over the image
    (N, L, H, W), averaged over the heads."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.q = nn.Linear(channels, channels, bias=False)
        self.k = nn.Linear(context_dim, channels, bias=False)
        self.v = nn.Linear(context_dim, channels, bias=False)
        self.out = nn.Linear(channels, channels)
        self.keep_map = False
        self.last_map: torch.Tensor | None = None

    def forward(self, x, context, padding):
        b, c, h, w = x.shape
        d = c // self.heads

        def by_head(t):  # (N, n, c) -> (N, heads, n, d)
            return t.view(b, t.shape[1], self.heads, d).transpose(1, 2)

        q = by_head(self.q(self.norm(x).flatten(2).transpose(1, 2)))  # a query per image position
        k, v = by_head(self.k(context)), by_head(self.v(context))  # a key and a value per token
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (N, heads, positions, tokens)
        weights = scores.masked_fill(padding[:, None, None, :], float("-inf")).softmax(-1)  # padding is no token
        if self.keep_map:
            self.last_map = weights.mean(1).transpose(1, 2).reshape(b, -1, h, w)
        mixed = (weights @ v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(mixed).transpose(1, 2).reshape(b, c, h, w)


class TextUNet(nn.Module):
    """ε_θ(z_t, t, y): the course UNet's shape (unet.py) with a cross-attention layer after every residual
    block, where Stable Diffusion's UNet has a transformer block; ``y`` is the prompt's token ids."""

    def __init__(self, channels: int, vocabulary: int, length: int, base: int = 64, mults=(1, 2),
                 text_dim: int = 64, text_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.text = TextEncoder(vocabulary, length, text_dim, text_layers)
        emb_dim = base * 4
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        widths = [base * m for m in mults]
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        c = base
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([
                ResBlock(c, w, emb_dim, dropout), CrossAttention(w, text_dim),
                ResBlock(w, w, emb_dim, dropout), CrossAttention(w, text_dim),
                nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity()]))
            c = w
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.mid_attn = SelfAttention(c)
        self.mid_cross = CrossAttention(c, text_dim)
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([
                ResBlock(c + w, w, emb_dim, dropout), CrossAttention(w, text_dim),
                ResBlock(w + w, w, emb_dim, dropout), CrossAttention(w, text_dim),
                nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity()]))
            c = w
        self.norm_out = nn.GroupNorm(8, c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)

    def null_like(self, y):
        """The empty prompt for each of ``y``: the start token, then padding."""
        null = torch.full_like(y, PAD)
        null[:, 0] = START
        return null

    def forward(self, x, t, y):
        context, padding = self.text(y)
        emb = self.time_mlp(timestep_embedding(t, self.base))
        h = self.conv_in(x)
        skips = []
        for res1, cross1, res2, cross2, downsample in self.down:
            h = cross1(res1(h, emb), context, padding)
            skips.append(h)
            h = cross2(res2(h, emb), context, padding)
            skips.append(h)
            h = downsample(h)
        h = self.mid2(self.mid_cross(self.mid_attn(self.mid1(h, emb)), context, padding), emb)
        for res1, cross1, res2, cross2, upsample in self.up:
            h = cross1(res1(torch.cat([h, skips.pop()], 1), emb), context, padding)
            h = cross2(res2(torch.cat([h, skips.pop()], 1), emb), context, padding)
            h = upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def latent_scale(latents: torch.Tensor) -> float:
    """s = 1/σ of the codes (Appendix G), so that s·z has unit variance as the noise schedule assumes."""
    return float(1 / latents.flatten().std())


class LatentDiffusion(nn.Module):
    """The whole model: the frozen autoencoder, the codes' scale s, the tokenizer and the text-conditioned
    diffusion (a ``GaussianDiffusion`` over a ``TextUNet``)."""

    def __init__(self, vae, diffusion, tokenizer: Tokenizer, scale: float):
        super().__init__()
        self.vae, self.diffusion, self.tokenizer, self.scale = vae.eval().requires_grad_(False), diffusion, tokenizer, scale

    @torch.no_grad()
    def encode(self, images):
        """Images in [−1, 1] -> scaled codes s·μ (the code's mean: a small β leaves little spread around it)."""
        return self.vae.encoder(images)[0] * self.scale

    def forward(self, latents, prompts: list[str]):
        """The DDPM loss (ddpm.py) on scaled codes, conditioned on the prompts."""
        return self.diffusion(latents, self.tokenizer(prompts))

    @torch.no_grad()
    def sample(self, prompts: list[str], guidance: float = 3.0, sampler: str = "ddim", steps: int = 50,
               generator: torch.Generator | None = None, on_step=None):
        """Images in [−1, 1] for ``prompts``: codes from noise by the diffusion, then decoded, D(z / s)."""
        shape = (len(prompts), *self.vae.latent_shape)
        z = self.diffusion.sample(shape, y=self.tokenizer(prompts), guidance=guidance, sampler=sampler, steps=steps,
                                  generator=generator, on_step=on_step, clip=False)
        return self.decode(z)

    @torch.no_grad()
    def decode(self, latents):
        return self.vae.decode(latents / self.scale)
