"""The DiT chapter against diffusers: one double-stream block equals FluxTransformerBlock with the same weights,
the rotary embedding FLUX's, patchify its inverse, and adaLN-Zero's block the identity at initialisation."""

from __future__ import annotations

import torch

from genimg.learn import dit


def test_patchify_and_unpatchify_are_inverse_and_match_fluxs_packing():
    from genimg.third_party import pack_flux_latents

    latents = torch.randn(2, 4, 8, 6)
    tokens = dit.patchify(latents, 2)
    assert tokens.shape == (2, 12, 16)
    assert torch.equal(dit.unpatchify(tokens, 2, 4, 8, 6), latents)
    assert torch.equal(tokens, pack_flux_latents(latents))  # FLUX's tokens are these patches


def test_the_rotary_embedding_is_fluxs():
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed

    positions = torch.cat([torch.zeros(3, 3), dit.image_positions(4, 5)])  # text tokens at 0, then the image's
    cos, sin = dit.rotary(positions, [4, 6, 6])
    theirs = FluxPosEmbed(theta=10000, axes_dim=[4, 6, 6])(positions)
    assert torch.allclose(cos, theirs[0], atol=1e-6) and torch.allclose(sin, theirs[1], atol=1e-6)


def test_a_double_stream_block_is_diffusers_flux_transformer_block_with_its_weights():
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed, FluxTransformerBlock

    torch.manual_seed(0)
    theirs = FluxTransformerBlock(dim=32, num_attention_heads=2, attention_head_dim=16).eval()
    ours = dit.DoubleStreamBlock(32, 2).eval()
    ours.load_state_dict(theirs.state_dict())  # the same names: the weights copied across
    image, text, emb = torch.randn(2, 20, 32), torch.randn(2, 3, 32), torch.randn(2, 32)
    positions = torch.cat([torch.zeros(3, 3), dit.image_positions(4, 5)])
    rope = FluxPosEmbed(theta=10000, axes_dim=[4, 6, 6])(positions)
    their_text, their_image = theirs(image, text, emb, image_rotary_emb=rope)
    our_text, our_image = ours(image, text, emb, *dit.rotary(positions, [4, 6, 6]))
    assert torch.allclose(our_image, their_image, atol=1e-5) and torch.allclose(our_text, their_text, atol=1e-5)


def test_adaln_zero_makes_a_new_block_the_identity():
    block = dit.DoubleStreamBlock(32, 2).zero_gates()
    image, text, emb = torch.randn(1, 6, 32), torch.randn(1, 2, 32), torch.randn(1, 32)
    cos, sin = dit.rotary(torch.cat([torch.zeros(2, 3), dit.image_positions(2, 3)]), [4, 6, 6])
    out_text, out_image = block(image, text, emb, cos, sin)
    assert torch.equal(out_image, image) and torch.equal(out_text, text)
