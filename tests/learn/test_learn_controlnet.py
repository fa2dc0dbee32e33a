"""The course's ControlNet: at initialisation the steered model is the base model exactly (as diffusers'
ControlNet made from a UNet is), the zero convolutions still learn, and `genimg learn controlnet` end to end."""

import json

import pytest
import torch

from genimg.learn.controlnet import ControlledUNet, ControlNet, edge_map, zero_conv
from genimg.learn.unet import UNet


def _pair(seed=0):
    torch.manual_seed(seed)
    base = UNet(channels=1, base=32, num_classes=10).eval()
    controlnet = ControlNet(base).eval()
    return base, ControlledUNet(base, controlnet)


def test_at_initialisation_the_controlled_model_is_the_base_model_exactly():
    base, controlled = _pair()
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 7, 10])
    controlled.control = edge_map(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert torch.equal(controlled(x, t, y), base(x, t, y))
    assert all(torch.equal(r, torch.zeros_like(r)) for r in controlled.controlnet(x, t, y, controlled.control))


def test_so_does_diffusers_controlnet_made_from_a_unet():
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=8, attention_head_dim=4)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32))
    down, mid = controlnet(torch.randn(1, 4, 16, 16), 10, torch.randn(1, 3, 16), torch.rand(1, 3, 64, 64),
                           return_dict=False)
    assert all(torch.equal(r, torch.zeros_like(r)) for r in (*down, mid))  # the zero convolutions, as ours


def test_the_zero_convolutions_learn_from_the_first_step():
    base, controlled = _pair()
    controlled.control = edge_map(torch.rand(2, 1, 16, 16) * 2 - 1)
    controlled(torch.randn(2, 1, 16, 16), torch.tensor([5, 500]), torch.tensor([1, 2])).square().mean().backward()
    zero = controlled.controlnet.zero_skips[0]
    assert zero.weight.grad is not None and zero.weight.grad.abs().sum() > 0  # ∂Z(h)/∂W = h ≠ 0
    assert all(p.grad is None for p in base.parameters())  # the base is locked
    assert torch.equal(zero_conv(3, 5).weight, torch.zeros(5, 3, 1, 1))


def test_the_edge_map_marks_where_the_brightness_changes():
    image = -torch.ones(1, 1, 8, 8)
    image[..., 2:6, 2:6] = 1
    edges = edge_map(image) > 0
    assert edges[0, 0, 3, 1] and edges[0, 0, 1, 3]  # beside the square's border
    assert not edges[0, 0, 0, 0] and not edges[0, 0, 7, 7] and edges.sum() < 64


@pytest.mark.slow  # the chapter's whole CLI run and its measurements; its pieces are checked against the libraries above
def test_learn_controlnet_trains_beside_a_locked_run_and_measures_it(cli, tmp_path):
    assert cli("learn", "ddpm", "--epochs", "1", "--quiet", "-o", tmp_path / "base").code == 0
    before = (tmp_path / "base" / "checkpoint.safetensors").read_bytes()
    made = cli("learn", "controlnet", tmp_path / "base", "--steps", "2", "--batch", "8", "--quiet", "--json",
               "-o", tmp_path / "cn")
    assert made.code == 0, made
    record = json.loads(made.out)
    assert 0 < record["trainable"] < record["base"] and (tmp_path / "cn" / "controlnet.safetensors").is_file()
    for key in ("read as the map's digit, with the map", "read as the map's digit, without",
                "ink overlap with the map's digit, with the map"):
        assert 0 <= record[key] <= 1, key
    from PIL import Image

    assert Image.open(tmp_path / "cn" / "control.png").size == ((16 * 18 + 2) * 2, (3 * 18 + 2) * 2)  # 3 rows of 16
    assert (tmp_path / "base" / "checkpoint.safetensors").read_bytes() == before  # the base run is untouched
    again = cli("learn", "controlnet", tmp_path / "base", "--steps", "2", "-o", tmp_path / "cn")
    assert again.code == 2 and "--overwrite" in again.err
    wrong = cli("learn", "controlnet", tmp_path / "cn", "-o", tmp_path / "cn2")
    assert wrong.code == 2 and "not a training run" in wrong.err and not (tmp_path / "cn2").exists()
