"""A diffusion transformer (DiT), the way FLUX builds one: the picture cut into patches that become tokens,
conditioning by adaptive layer norm with zero-initialised gates (adaLN-Zero), and joint attention over
the image's and the text's tokens with rotary position embeddings (FLUX's "double-stream" blocks, an
MMDiT in the SD3 paper's words).

- *Patchify*: a latent [C, H, W] becomes (H/p)·(W/p) tokens of C·p² numbers; *unpatchify* undoes it.
- *adaLN-Zero* (Peebles & Xie 2023): the time (and pooled text) embedding predicts a shift, a scale and a
  gate for each sub-layer; the gates start at zero, so at initialisation every block is the identity and
  training starts from a network that changes nothing.
- *Joint attention*: the image tokens and the text tokens each have their own projections, norms and MLPs
  (two streams), but attend together in one attention over both sequences — the text reads the image and
  the image the text, with no separate cross-attention.
- *Rotary embeddings* (RoPE): each token's query and key are rotated by angles set by its position (FLUX
  gives every token three position ids: text tokens zeros, image tokens their row and column), so
  attention scores depend on relative positions.

:class:`DoubleStreamBlock` is diffusers' ``FluxTransformerBlock`` written out in plain PyTorch with the same
parameter names, so the tests copy weights across and compare.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def patchify(latents: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] → [B, (H/p)·(W/p), C·p·p]: each p×p patch one token (row by row)."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, channels: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify` for a latent of ``height`` × ``width``."""
    b = tokens.shape[0]
    x = tokens.reshape(b, height // p, width // p, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, height, width)


def image_positions(height: int, width: int) -> torch.Tensor:
    """FLUX's position ids of image tokens: (0, row, column) for each token, row by row."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(-1, 3).float()


def rotary(positions: torch.Tensor, axes_dim: list[int], theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [S, head_dim] of each token's rotation angles: each position axis gets its share of the
    head's dimensions, frequencies θ^(−2i/d), each angle repeated for the pair of numbers it rotates."""
    cos, sin = [], []
    for axis, dim in enumerate(axes_dim):
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim)
        angles = torch.outer(positions[:, axis].double(), freqs)
        cos.append(angles.cos().repeat_interleave(2, dim=1).float())
        sin.append(angles.sin().repeat_interleave(2, dim=1).float())
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x₂ᵢ, x₂ᵢ₊₁) of ``x`` [B, S, heads, head_dim] by its token's angle."""
    real, imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    turned = torch.stack([-imag, real], dim=-1).flatten(3)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return (x.float() * cos + turned.float() * sin).to(x.dtype)


class AdaLNZero(nn.Module):
    """LayerNorm without its own scale, modulated by the conditioning: six numbers per channel (shift, scale
    and gate for attention, and for the MLP), predicted by one linear layer."""

    def __init__(self, dim: int):
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, 6 * dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, emb: torch.Tensor):
        shift, scale, gate, shift_mlp, scale_mlp, gate_mlp = self.linear(self.silu(emb)).chunk(6, dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None], gate, shift_mlp, scale_mlp, gate_mlp


class _GELUProj(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x):
        return F.gelu(self.proj(x), approximate="tanh")


class MLP(nn.Module):
    """Linear → GELU (tanh) → linear, four times wider inside (diffusers' ``FeedForward`` layout)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([_GELUProj(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class JointAttention(nn.Module):
    """One attention over the text's and the image's tokens, each with its own q, k, v projections, RMSNorm
    on q and k (a stable attention at any scale), and its own output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim) for _ in range(3))
        self.add_q_proj, self.add_k_proj, self.add_v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.norm_q, self.norm_k = nn.RMSNorm(self.head_dim, eps=1e-6), nn.RMSNorm(self.head_dim, eps=1e-6)
        self.norm_added_q, self.norm_added_k = nn.RMSNorm(self.head_dim, eps=1e-6), nn.RMSNorm(self.head_dim, eps=1e-6)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.to_add_out = nn.Linear(dim, dim)

    def forward(self, image, text, cos, sin):
        def heads(x):
            return x.unflatten(-1, (self.heads, self.head_dim))

        q = torch.cat([self.norm_added_q(heads(self.add_q_proj(text))), self.norm_q(heads(self.to_q(image)))], dim=1)
        k = torch.cat([self.norm_added_k(heads(self.add_k_proj(text))), self.norm_k(heads(self.to_k(image)))], dim=1)
        v = torch.cat([heads(self.add_v_proj(text)), heads(self.to_v(image))], dim=1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # text first, as the position ids are
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).flatten(2, 3)
        text_out, image_out = out.split([text.shape[1], image.shape[1]], dim=1)
        return self.to_out[1](self.to_out[0](image_out)), self.to_add_out(text_out)


class DoubleStreamBlock(nn.Module):
    """FLUX's double-stream block: each stream normed and modulated by adaLN-Zero, joint attention, gated
    residuals; then each stream's own modulated MLP, gated."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm1_context = AdaLNZero(dim), AdaLNZero(dim)
        self.attn = JointAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = MLP(dim)
        self.norm2_context = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff_context = MLP(dim)

    def forward(self, image, text, emb, cos, sin):
        normed, gate, shift_mlp, scale_mlp, gate_mlp = self.norm1(image, emb)
        normed_text, c_gate, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(text, emb)
        attn_image, attn_text = self.attn(normed, normed_text, cos, sin)
        image = image + gate[:, None] * attn_image
        image = image + gate_mlp[:, None] * self.ff(self.norm2(image) * (1 + scale_mlp[:, None]) + shift_mlp[:, None])
        text = text + c_gate[:, None] * attn_text
        text = text + c_gate_mlp[:, None] * self.ff_context(
            self.norm2_context(text) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None])
        return text, image

    def zero_gates(self) -> "DoubleStreamBlock":
        """adaLN-Zero's initialisation: the modulation predicts zeros, so every gate is 0 and the block is
        the identity until training moves it."""
        for norm in (self.norm1, self.norm1_context):
            nn.init.zeros_(norm.linear.weight)
            nn.init.zeros_(norm.linear.bias)
        return self


class DiT(nn.Module):
    """The whole transformer, FLUX in miniature: a latent and a prompt's token ids in, the velocity out.

    The latent becomes patch tokens; the prompt becomes text tokens by the LDM chapter's text encoder (FLUX
    reads T5's); the time and the prompt's pooled tokens (FLUX: CLIP's pooled vector) make the embedding that
    modulates every block; ``depth`` double-stream blocks mix the two streams; a last modulated norm and a
    linear layer turn each image token back into its patch of velocity. Every gate and the output layer
    start at zero: the untrained model predicts no motion at all.
    """

    def __init__(self, channels: int, vocabulary: int, length: int, dim: int = 96, depth: int = 4, heads: int = 4,
                 patch: int = 1, text_layers: int = 1):
        from genimg.learn.ldm import TextEncoder

        super().__init__()
        self.channels, self.patch, self.dim = channels, patch, dim
        head_dim = dim // heads
        side = head_dim // 3 // 2 * 2  # rotary dimensions for the row and the column axes (even), the rest for axis 0
        self.axes = [head_dim - 2 * side, side, side]
        self.x_embedder = nn.Linear(channels * patch * patch, dim)
        self.text = TextEncoder(vocabulary, length, dim, text_layers)
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.pooled = nn.Linear(dim, dim)
        self.blocks = nn.ModuleList(DoubleStreamBlock(dim, heads).zero_gates() for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation_out = nn.Linear(dim, 2 * dim)  # shift and scale of the last norm
        self.proj_out = nn.Linear(dim, channels * patch * patch)
        for layer in (self.modulation_out, self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        from genimg.learn.unet import timestep_embedding

        b, c, h, w = x.shape
        image = self.x_embedder(patchify(x, self.patch))
        text, padding = self.text(tokens)
        kept = (~padding).unsqueeze(-1).to(text.dtype)
        pooled = (text * kept).sum(1) / kept.sum(1)  # the mean of the prompt's real tokens
        emb = self.time(timestep_embedding(t * 1000, self.dim)) + self.pooled(pooled)
        positions = torch.cat([torch.zeros(text.shape[1], 3), image_positions(h // self.patch, w // self.patch)])
        cos, sin = rotary(positions, self.axes)
        for block in self.blocks:
            text, image = block(image, text, emb, cos, sin)
        shift, scale = self.modulation_out(F.silu(emb)).chunk(2, dim=1)
        out = self.proj_out(self.norm_out(image) * (1 + scale[:, None]) + shift[:, None])
        return unpatchify(out, self.patch, c, h, w)
