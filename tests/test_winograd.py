"""Winograd's F(2×2, 3×3) convolutions, which the OpenVINO route traces: the same numbers as the direct
convolution, only where they pay, and the torch model left as it was."""

import pytest
import torch

from genimg.winograd import Winograd3x3, input_sizes, pays, transformed_filter, winograd_conv3x3, winograd_convs


@pytest.mark.parametrize(("channels", "height", "width", "bias"),
                         [((3, 5), 8, 8, True), ((4, 6), 7, 9, True), ((8, 2), 1, 5, False), ((16, 16), 33, 2, True)])
def test_it_computes_the_direct_convolution(channels, height, width, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(*channels, 3, padding=1, bias=bias).double()
    x = torch.randn(2, channels[0], height, width, dtype=torch.float64)
    with torch.no_grad():
        y = winograd_conv3x3(x, transformed_filter(conv.weight), conv.bias)
        assert y.shape == (2, channels[1], height, width)
        torch.testing.assert_close(y, conv(x), rtol=1e-6, atol=1e-6)  # the filter transform runs in fp32


def test_the_filter_transform_is_g_g_gt_for_each_pair():
    torch.manual_seed(1)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    g = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)
    u = transformed_filter(weight).reshape(4, 4, 3, 5)
    torch.testing.assert_close(u[:, :, 2, 4], g @ weight[4, 2] @ g.T, rtol=1e-6, atol=1e-6)
    half = transformed_filter(weight.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and half.shape == (16, 3, 5)  # 16 [in, out] matrices, in the weight's dtype


def test_it_is_used_on_small_images_and_wide_layers_only():
    assert pays(320, 320, 32, 32) and not pays(320, 320, 64, 64)  # the transforms cost more than they save
    assert pays(640, 640, 64, 64) and pays(1280, 640, 128, 128) and not pays(640, 320, 64, 64)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 320, 3, padding=1), torch.nn.Conv2d(320, 320, 3, padding=1),
                                torch.nn.Conv2d(320, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 8, 3, padding=1))
    # sizes are found on the meta device: at 40×40 only the convolution after the stride-2 one (20×20) pays
    assert [size for _, size in sorted(input_sizes(model, (torch.randn(1, 4, 40, 40),)).items(),
                                         key=lambda item: list(model).index(item[0]))] == [(40, 40), (40, 40), (20, 20)]
    x = torch.randn(1, 4, 40, 40)
    with torch.no_grad(), winograd_convs(model, (x,)) as swapped:
        assert swapped == 1 and isinstance(model[3], Winograd3x3) and type(model[1]) is torch.nn.Conv2d
    with torch.no_grad(), winograd_convs(model, (torch.randn(1, 4, 32, 32),)) as swapped:
        assert swapped == 3  # at 32×32 all three stride-1 convs


def test_only_plain_3x3_convs_are_swapped_and_all_are_put_back():
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.SiLU(),
        torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)),
        torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(4, 4, 3, padding=1, groups=2))
    before = list(model.modules())
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        expected = model(x)
        with winograd_convs(model, (x,)) as swapped:
            assert swapped == 2
            assert isinstance(model[0], Winograd3x3) and isinstance(model[2][0], Winograd3x3)
            assert type(model[2][1]) is torch.nn.Conv2d and type(model[4]) is torch.nn.Conv2d  # stride 2, groups
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        with winograd_convs(model, (x,), enabled=False) as swapped:
            assert swapped == 0
    assert list(model.modules()) == before  # the very same modules, in place
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight", "2.1.bias",
                                        "3.weight", "3.bias", "4.weight", "4.bias"]


def test_a_conv_lora_left_unfused_computes_the_same_inside_the_block():
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 3, padding=1))
    model = inject_adapter_in_model(LoraConfig(r=2, target_modules=["0", "1"], init_lora_weights=False), model)
    x = torch.randn(1, 4, 12, 12)
    with torch.no_grad():
        expected = model(x)
        with winograd_convs(model, (x,)) as swapped:
            assert swapped == 4  # each base layer and its 3×3 lora_A; lora_B is 1×1
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        plain = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 3, padding=1))
        plain.load_state_dict({k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora" not in k})
        assert (model(x) - plain(x)).abs().max() > 1e-3  # the LoRA is in the output, not only the base layers
