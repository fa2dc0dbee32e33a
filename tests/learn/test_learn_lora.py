"""The course's hand-written LoRA against peft's, and `genimg learn lora` / `genimg learn fid` end to end."""

import copy
import json

import torch
from torch import nn

from genimg.learn.lora import LoRALinear, inject, lora_layers, trainable_share


def _pair(seed=0):
    """The same small network adapted by peft and by the course, with the same A and B (B not zero)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5))
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=3, lora_alpha=6, target_modules=["0", "2"], lora_dropout=0.0))
    ours = copy.deepcopy(base)
    inject(ours, targets=("0", "2"), rank=3, alpha=6)
    with torch.no_grad():
        for n in ("0", "2"):
            peft_layer = theirs.base_model.model.get_submodule(n)
            peft_layer.lora_B["default"].weight.normal_()
            ours.get_submodule(n).lora_A.copy_(peft_layer.lora_A["default"].weight)
            ours.get_submodule(n).lora_B.copy_(peft_layer.lora_B["default"].weight)
    return base, ours, theirs


def test_a_fresh_adapter_starts_as_pefts_does_and_changes_nothing():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base = nn.Sequential(nn.Linear(600, 8))
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=3, lora_alpha=6, target_modules=["0"]))
    ours = copy.deepcopy(base)
    inject(ours, targets=("0",), rank=3, alpha=6)
    peft_a, peft_b = theirs.base_model.model[0].lora_A["default"].weight, theirs.base_model.model[0].lora_B["default"].weight
    # Kaiming-uniform with a = √5 on both sides: U(−1/√d_in, 1/√d_in), whose spread is 1/√(3 d_in); B zero
    for a in (ours[0].lora_A, peft_a):
        assert a.abs().max() <= 600 ** -0.5 and abs(float(a.std()) - (3 * 600) ** -0.5) < 0.002
    assert not ours[0].lora_B.any() and not peft_b.any()
    x = torch.randn(4, 600)
    assert torch.equal(ours(x), base(x))  # B = 0: ΔW = 0


def test_forward_gradients_merge_and_unmerge_equal_pefts():
    base, ours, theirs = _pair()
    x = torch.randn(10, 6, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    out, ref = ours(x), theirs(x2)
    assert torch.allclose(out, ref, atol=1e-6)
    out.square().sum().backward()
    ref.square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)
    for n in ("0", "2"):
        peft_layer = theirs.base_model.model.get_submodule(n)
        assert torch.allclose(ours.get_submodule(n).lora_A.grad, peft_layer.lora_A["default"].weight.grad, atol=1e-6)
        assert torch.allclose(ours.get_submodule(n).lora_B.grad, peft_layer.lora_B["default"].weight.grad, atol=1e-6)
    for layer in lora_layers(ours):
        layer.merge()
    theirs.merge_adapter()
    for n in ("0", "2"):
        assert torch.allclose(ours.get_submodule(n).base.weight, theirs.base_model.model.get_submodule(n).base_layer.weight,
                              atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    for layer in lora_layers(ours):
        layer.unmerge()
    assert torch.allclose(ours[0].base.weight, base[0].weight, atol=1e-6)
    assert trainable_share(ours) == (3 * (6 + 8) + 3 * (8 + 5), sum(p.numel() for p in ours.parameters()))


def test_the_weight_view_is_the_same_update_for_modules_that_read_weights():
    torch.manual_seed(2)
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    plain = copy.deepcopy(attention)
    attention.out_proj = LoRALinear(attention.out_proj, rank=2, alpha=2)
    with torch.no_grad():
        attention.out_proj.lora_B.normal_()
        plain.out_proj.weight += attention.out_proj.delta()
    x = torch.randn(3, 5, 8)
    assert torch.allclose(attention(x, x, x)[0], plain(x, x, x)[0], atol=1e-6)


def test_learn_lora_adapts_a_trained_run_and_fid_measures_runs(cli, tmp_path):
    base = tmp_path / "base"
    assert cli("learn", "ddpm", "-o", base, "--epochs", "1", "--size", "8", "--batch", "512", "--quiet").code == 0
    made = cli("learn", "lora", base, "-o", tmp_path / "lora", "--steps", "5", "--images", "64", "--json", "--quiet")
    assert made.code == 0, made
    record = json.loads(made.out)
    assert record["trainable"] < 0.05 * record["total"] and record["layers"]
    assert all(name.endswith(("out_proj", "emb", "time_mlp.0", "time_mlp.2")) for name in record["layers"])
    assert 0 < record["ink before"] < 1 and record["ink of the style's images"] > record["ink of the base's data"]
    assert (tmp_path / "lora" / "before.png").is_file() and (tmp_path / "lora" / "after.png").is_file()
    again = cli("learn", "lora", base, "-o", tmp_path / "lora", "--steps", "5")
    assert again.code == 2 and "--overwrite" in again.err
    measured = cli("learn", "fid", base, "--count", "50", "--steps", "5", "--json")
    assert measured.code == 0, measured
    assert json.loads(measured.out)["fid"] > 0
    faces = cli("learn", "fid", tmp_path / "nothing")
    assert faces.code == 2
