"""Out of memory is always the out-of-memory path (one line naming a smaller preset, --auto-fallback),
wherever it happens: loading a LoRA is not "is it for another model family?"."""

import pytest
import torch

from genimg.errors import is_out_of_memory


@pytest.mark.parametrize("error,expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"), True),
    (RuntimeError("size mismatch for lora_A.weight: copying a param with shape [4, 32]"), False),
    (ValueError("Target modules {'to_q'} not found in the base model"), False),
])
def test_cuda_and_mps_out_of_memory_are_recognised(error, expected):
    assert is_out_of_memory(error) is expected


def test_out_of_memory_loading_a_lora_is_reported_as_out_of_memory(cli, tmp_path, tiny_models, monkeypatch):
    import diffusers

    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sd"], tmp_path / "lora")

    def no_room(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "load_lora_weights", no_room)
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "64", "-H", "64", "--steps", "2",
                 "--lora", lora, "-o", tmp_path / "a.png")
    assert result.code == 1, result
    assert "out of GPU memory loading" in result.err and "another model family" not in result.err
    assert result.err.count("\n") == 1 and not (tmp_path / "a.png").exists()


def test_a_lora_that_does_not_fit_is_still_one_line_about_the_family(cli, tmp_path, tiny_models):
    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sdxl"], tmp_path / "xl-lora")
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "--preset", "cpu", "-W", "64", "-H", "64", "--steps", "2",
                 "--lora", lora, "-o", tmp_path / "a.png")
    assert result.code == 2 and "Stable Diffusion XL" in result.err and result.err.count("\n") == 1, result
