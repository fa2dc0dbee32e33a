"""LoRAs on generation pipelines: ``--lora PATH[:WEIGHT]``, repeatable, diffusers or kohya layout.

Before any model is loaded, a LoRA's file is read for what it was made for (its metadata, its key
names, the width of its cross-attention inputs) and one made for another family is refused in one
line. diffusers' ``load_lora_weights`` reads both layouts (and converts kohya's ``lora_unet_…``
keys); the pipeline's components are shared between tasks, so which LoRAs are loaded is tracked per
model and changed only when a generation asks for others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError, is_out_of_memory, weight_file_errors
from genimg.models.checkpoint import PICKLE_SUFFIXES, safetensors_header
from genimg.models.families import FAMILIES, family_from_lora_keys, same_line

LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class LoraRef:
    path: str  # the weights file
    weight: float = 1.0
    family: str | None = None  # what its file says it was made for, where it says

    @property
    def name(self) -> str:
        path = Path(self.path)
        return path.parent.name if path.name == LORA_FILE else path.stem


def lora_file(path: Path) -> Path:
    """The weights file of a LoRA given as a file or a diffusers LoRA folder."""
    return path / LORA_FILE if path.is_dir() else path


def check_lora(lora, ref, allow_pickle: bool = False) -> LoraRef:
    """A :class:`LoraSpec` checked against the model ``ref``: it exists, is not pickle unless allowed,
    and, where its file tells, was made for the model's family."""
    path = Path(lora.path).expanduser()
    if path.is_dir() and not (path / LORA_FILE).is_file():
        raise UsageError(f"LoRA folder {path} has no {LORA_FILE}")
    if not path.exists():
        raise UsageError(f"LoRA {lora.path} does not exist (give a .safetensors file or a folder with {LORA_FILE}, "
                         "optionally with :WEIGHT)")
    weights = lora_file(path).resolve()
    if weights.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UsageError(f"LoRA {weights.name} is a pickle file; convert it to .safetensors or pass --allow-pickle")
        return LoraRef(str(weights), lora.weight)
    family = lora_family(weights, model_cross_dim(ref))
    if family and not same_line(family, ref.family):
        raise UsageError(f"LoRA {LoraRef(str(weights)).name} was made for a {FAMILIES[family].label} model, not for "
                         f"{ref.name} ({FAMILIES[ref.family].label}); use a LoRA trained on the same family")
    return LoraRef(str(weights), lora.weight, family)


def lora_family(path: Path, cross_dim: int | None = None) -> str | None:
    """The family a LoRA file was made for, from its metadata, its key names, or (SD against SDXL) the
    width of its cross-attention inputs compared with the model's; None where nothing tells."""
    header = safetensors_header(path)
    meta = header.get("__metadata__") or {}
    if meta.get("base_family") in FAMILIES:
        return meta["base_family"]
    version = str(meta.get("ss_base_model_version", ""))
    made_for = [(len(prefix), f.name) for f in FAMILIES.values() for prefix in f.kohya_versions if version.startswith(prefix)]
    if made_for:
        return max(made_for)[1]  # the longest prefix: "flux2…" is FLUX.2's, not FLUX.1's
    keyed = family_from_lora_keys(k for k in header if k != "__metadata__")
    if keyed:
        return keyed
    if cross_dim:
        for key, info in header.items():
            if ("attn2.to_k" in key or "attn2_to_k" in key) and any(m in key for m in ("lora_A", "lora_down", "lora.down")):
                if info["shape"][-1] != cross_dim:
                    return "sdxl" if info["shape"][-1] > cross_dim else "sd"
                break
    return None


def model_cross_dim(ref) -> int | None:
    """The UNet's cross-attention width from a model folder's config (no weights read)."""
    if ref.kind == "folder" or ref.kind == "hub":
        config = _config_path(ref)
        if config is not None and config.is_file():
            dim = json.loads(config.read_text()).get("cross_attention_dim")
            return dim if isinstance(dim, int) else None
    return None


def _config_path(ref) -> Path | None:
    if ref.kind == "folder":
        return Path(ref.location) / "unet" / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref.location, "unet/config.json")
        return Path(found) if isinstance(found, str) else None
    except Exception:  # noqa: BLE001 - the check is a courtesy; loading reports the real problem
        return None


@dataclass(frozen=True)
class LoraLayers:
    """How much of a LoRA took: its layers (one per weight it adapts) and how many found their place."""
    name: str
    layers: int
    matched: int

    def to_dict(self) -> dict:
        return {"name": self.name, "layers": self.layers, "matched": self.matched}

    def warning(self) -> str | None:
        if self.matched >= self.layers:
            return None
        return (f"LoRA {self.name}: {self.layers - self.matched} of its {self.layers} layers match nothing in this "
                "model and are ignored (made for another version of the model, or by a trainer diffusers "
                "does not read fully)")


# The "down" matrix of each adapted layer, in every layout diffusers' lora_state_dict returns.
_DOWN_SUFFIXES = ("lora_A.weight", "lora.down.weight", "lora_down.weight")
_ADAPTED_COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")


def _layer_counts(pipe, lora: LoraRef, adapter: str) -> LoraLayers:
    """The LoRA's layers as diffusers reads them (kohya names converted, FLUX's fused layers split)
    against the layers that now hold adapter ``adapter``. diffusers loads a partly matching LoRA
    without a word; this count is how users find out."""
    import torch

    state = type(pipe).lora_state_dict(lora.path)
    state = state[0] if isinstance(state, tuple) else state
    layers = sum(key.endswith(_DOWN_SUFFIXES) for key in state)
    from peft.tuners.lora import LoraLayer

    matched = 0
    for name in _ADAPTED_COMPONENTS:
        component = getattr(pipe, name, None)
        if isinstance(component, torch.nn.Module):
            matched += sum(isinstance(m, LoraLayer) and adapter in m.lora_A for m in component.modules())
    return LoraLayers(lora.name, layers, matched)


def _unload(pipe) -> None:
    """Every LoRA out of ``pipe``; a layer a LoRA widened (a FLUX.1 Depth/Canny LoRA's image input reads the
    control map's channels too) gets its own shape and weights back."""
    import inspect

    if "reset_to_overwritten_params" in inspect.signature(pipe.unload_lora_weights).parameters:
        pipe.unload_lora_weights(reset_to_overwritten_params=True)
    else:
        pipe.unload_lora_weights()


def apply_loras(pipe, loaded, loras: tuple[LoraRef, ...], warn=None, fuse: bool = False) -> tuple[LoraLayers, ...]:
    """Make ``pipe`` (and every pipeline sharing its components) run with exactly ``loras``, merged into
    the weights with ``fuse``; returns how many of each LoRA's layers matched the model (``warn`` hears
    of those that did not all match)."""
    wanted = tuple(lora.path for lora in loras)
    fused = tuple((lora.path, lora.weight) for lora in loras) if fuse and loras else None
    if loaded.lora_fused is not None and loaded.lora_fused != fused:
        pipe.unfuse_lora()
        _restore(loaded.lora_originals)  # unfusing subtracts: the weights back to the bit, not to rounding
        loaded.lora_fused, loaded.lora_originals = None, ()
    if loaded.lora_paths != wanted:
        if loaded.lora_paths:
            _unload(pipe)
        loaded.lora_paths, loaded.lora_layers = (), ()
        counts = []
        for i, lora in enumerate(loras):
            try:
                pipe.load_lora_weights(lora.path, adapter_name=f"lora{i}")
                reason = None
            except weight_file_errors() as e:  # size mismatches, bad keys, broken files: all one line
                if is_out_of_memory(e):
                    raise
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            # diffusers only warns when no key matches the model: a LoRA for another family loads nothing.
            present = {name for names in pipe.get_list_adapters().values() for name in names}
            if reason or f"lora{i}" not in present:
                _unload(pipe)
                made_for = f", made for {FAMILIES[lora.family].label}" if lora.family else ""
                raise UsageError(f"cannot load LoRA {lora.name}{made_for} into {loaded.ref.name} "
                                 f"({FAMILIES[loaded.ref.family].label}): "
                                 f"{reason or 'none of its weights match this model'}; is it for another model family?")
            counts.append(_layer_counts(pipe, lora, f"lora{i}"))
            if warn and counts[-1].warning():
                warn(counts[-1].warning())
        loaded.lora_paths, loaded.lora_layers = wanted, tuple(counts)
    if loras and loaded.lora_fused is None:
        names = [f"lora{i}" for i in range(len(loras))]
        pipe.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
        if fused:
            loaded.lora_originals = _fused_weights(pipe)
            pipe.fuse_lora(adapter_names=names)  # merges each at the weight set_adapters gave it
            loaded.lora_fused = fused
    return loaded.lora_layers


def _fused_weights(pipe) -> tuple:
    """(tensor, a CPU copy of it) of every base weight a fuse changes: the layers holding a LoRA."""
    import torch
    from peft.tuners.lora import LoraLayer

    kept = []
    for name in _ADAPTED_COMPONENTS:
        component = getattr(pipe, name, None)
        if isinstance(component, torch.nn.Module):
            for module in component.modules():
                if isinstance(module, LoraLayer):
                    base = module.get_base_layer()
                    kept += [(t, t.detach().to("cpu", copy=True)) for t in (base.weight, base.bias) if t is not None]
    return tuple(kept)


def _restore(kept: tuple) -> None:
    import torch

    with torch.no_grad():
        for tensor, original in kept:
            tensor.copy_(original)
