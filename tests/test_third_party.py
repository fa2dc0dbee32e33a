"""What genimg relies on in other libraries' private names and in patching their objects
(genimg/third_party.py), pinned: a release of diffusers, torch, tomesd or OpenVINO that changes one fails here."""

import numpy as np
import pytest
import torch

from genimg.third_party import execution_device, flux_image_ids, pack_flux_latents, unpack_flux_latents


def test_the_execution_device_of_a_cpu_pipeline_is_the_cpu_and_under_offload_the_target(tiny_models):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    assert execution_device(pipe) == torch.device("cpu")
    pipe.enable_model_cpu_offload(device="cpu")
    assert execution_device(pipe).type == "cpu"  # accelerate's hooks name the target (cpu:0 here, cuda:0 on a GPU)


def test_flux_packing_makes_2x2_patch_tokens_and_unpacking_inverts_it():
    latents = torch.arange(2 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 4, 6, 8)
    tokens = pack_flux_latents(latents)
    assert tokens.shape == (2, 3 * 4, 16)
    assert torch.equal(tokens[0, 0], latents[0, :, :2, :2].reshape(4, 4).reshape(-1))  # one patch, channels first
    vae_scale = 8
    assert torch.equal(unpack_flux_latents(tokens, 6 * vae_scale, 8 * vae_scale, vae_scale), latents)
    ids = flux_image_ids(2, 3, 4, torch.device("cpu"), torch.float32)
    assert ids.shape == (12, 3) and ids[5].tolist() == [0.0, 1.0, 1.0]  # (unused, row, column) of token 5


def test_kontext_takes_the_private_argument_that_keeps_the_input_size():
    import inspect

    from diffusers import FluxKontextInpaintPipeline, FluxKontextPipeline

    from genimg.third_party import KONTEXT_KEEPS_SIZE

    for cls in (FluxKontextPipeline, FluxKontextInpaintPipeline):
        parameters = inspect.signature(cls.__call__).parameters
        assert all(name in parameters and parameters[name].default is True for name, _ in KONTEXT_KEEPS_SIZE)


def test_a_forward_replaced_on_an_instance_is_what_calling_it_runs():
    from genimg.third_party import replace_forward

    one, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    replace_forward(one, lambda x: x * 0 + 7)
    assert torch.equal(one(torch.ones(1, 2)), torch.full((1, 2), 7.0))
    assert not torch.equal(other(torch.ones(1, 2)), torch.full((1, 2), 7.0))  # the class is untouched


def test_a_wrapped_vae_is_what_the_pipelines_encode_and_decode_through(tiny_models):
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    from genimg.third_party import wrap_vae_io

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    calls = []
    wrap_vae_io(pipe.vae, lambda f, *a, **k: calls.append("encode") or f(*a, **k),
                lambda f, *a, **k: calls.append("decode") or f(*a, **k))
    pipe("x", image=Image.new("RGB", (64, 64), "red"), num_inference_steps=2, strength=0.5, output_type="np")
    assert calls == ["encode", "decode"]


def test_writing_a_tensor_in_place_moves_its_version_and_inference_tensors_have_none():
    from genimg.third_party import tensor_version

    weight = torch.zeros(3)
    before = tensor_version(weight)
    weight.add_(1)
    assert tensor_version(weight) == before + 1
    with torch.inference_mode():
        assert tensor_version(torch.zeros(3)) == 0


def test_a_swapped_module_is_what_forward_and_named_modules_see():
    from genimg.third_party import swap_module

    parent = torch.nn.Sequential(torch.nn.Identity())
    swap_module(parent, "0", torch.nn.ReLU())
    assert isinstance(dict(parent.named_modules())["0"], torch.nn.ReLU)
    assert torch.equal(parent(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


def test_tomesd_keeps_its_generator_where_genimg_seeds_it(tiny_models):
    import tomesd
    from diffusers import StableDiffusionPipeline

    from genimg.third_party import seed_tome

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    tomesd.apply_patch(pipe, ratio=0.5)
    assert "generator" in pipe.unet._tome_info["args"]  # the slot tomesd reads its random choices from
    images = []
    for _ in range(2):  # seeded there, two runs choose the same tokens whatever torch's global generator did
        seed_tome(pipe.unet, torch.Generator().manual_seed(3))
        torch.manual_seed(len(images))
        images.append(pipe("x", num_inference_steps=2, height=64, width=64, output_type="np",
                           generator=torch.Generator().manual_seed(0)).images)
    tomesd.remove_patch(pipe)
    assert (images[0] == images[1]).all()


def test_a_fresh_accelerator_state_lets_a_second_accelerator_change_mixed_precision():
    from accelerate import Accelerator

    from genimg.third_party import fresh_accelerator_state

    fresh_accelerator_state()
    assert Accelerator(mixed_precision="bf16", cpu=True, gradient_accumulation_steps=3).mixed_precision == "bf16"
    with pytest.raises(ValueError, match="already been initialized"):  # why genimg resets it
        Accelerator(mixed_precision="no", cpu=True)
    fresh_accelerator_state()
    second = Accelerator(mixed_precision="no", cpu=True)
    assert second.mixed_precision == "no" and second.gradient_accumulation_steps == 1
    fresh_accelerator_state()


def test_a_pipeline_told_to_finish_early_skips_its_remaining_steps_and_still_decodes(tiny_models):
    from diffusers import StableDiffusionPipeline

    from genimg.third_party import finish_early

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    calls = []

    def stop_at_second(pipeline, step, _t, tensors):
        calls.append(step)
        if step == 1:
            finish_early(pipeline)
        return tensors

    out = pipe("x", num_inference_steps=6, height=64, width=64, output_type="np", callback_on_step_end=stop_at_second)
    assert calls == [0, 1] and out.images.shape == (1, 64, 64, 3)
    again = []
    pipe("x", num_inference_steps=3, height=64, width=64, callback_on_step_end=lambda p, s, t, k: again.append(s) or k)
    assert again == [0, 1, 2]  # the next call starts with it cleared


def test_a_conv2d_pads_circularly_through_its_instance_conv_forward_until_restored():
    from genimg.third_party import pad_circularly

    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    wrapped = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False, padding_mode="circular")
    wrapped.weight.data.copy_(conv.weight.data)
    x = torch.randn(1, 1, 6, 7)
    plain = conv(x)
    restore = pad_circularly(conv, True, True)
    assert torch.allclose(conv(x), wrapped(x), atol=1e-6)  # torch's own circular padding, through forward
    restore()
    assert torch.equal(conv(x), plain) and "_conv_forward" not in conv.__dict__


def test_openvino_converts_a_module_traced_once_with_what_convert_model_gives():
    """`convert_traced` builds OpenVINO's TorchScript decoder with torch's `check_trace` off: the module runs
    once (the trace) instead of three times, and the graph computes what `convert_model`'s own does."""
    import openvino as ov

    from genimg.third_party import convert_traced

    class Counted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.calls = torch.nn.Conv2d(3, 4, 3, padding=1), 0

        def forward(self, x):
            self.calls += 1
            return torch.nn.functional.silu(self.conv(x)).mean(dim=1)

    module, x = Counted().eval(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        plain = ov.convert_model(module, example_input=(x,))
        calls_of_plain, module.calls = module.calls, 0
        quick = convert_traced(module, (x,))
    assert (calls_of_plain, module.calls) == (3, 1)
    core = ov.Core()
    theirs, ours = (core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x.numpy())[0]
                    for m in (plain, quick))
    assert np.array_equal(ours, theirs)
    assert np.allclose(ours, module(x).detach().numpy(), atol=1e-5)
