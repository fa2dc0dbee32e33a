"""The `compile = "openvino"` route for CPUs: a pipeline's UNet run by OpenVINO (its VAE and text encoders too:
``openvino_vae``, ``openvino_text``), the rest of the diffusers pipeline (schedulers, prompt weighting, CFG,
img2img/inpaint, the hires fix) unchanged.

The UNet is converted by ``openvino.convert_model`` (traced with example inputs of the call's shapes) from
its weights as the preset loads them — bf16 on a CPU with bf16 instructions, which halves what the
conversion and the IR hold — and saved as OpenVINO IR in genimg's cache with those shapes fixed, then
compiled for the CPU in the preset's precision, by the CPU kind's recipe (:data:`RECIPES`): its 3×3
convolutions traced as Winograd's products where that pays (``genimg.winograd``), or a float32 graph
OpenVINO lowers itself, as its own documentation converts. A conversion costs two minutes for SD1.5, six or more for SDXL;
it is kept on disk under a key of the weights (LoRAs fused into them change it, so another LoRA or model
is converted anew, never reused) and of the input shapes (another size or batch is another conversion);
OpenVINO keeps the compiled graph too, so a later process loads it without reading or compiling the IR.
Once a graph is compiled, the torch UNet's weights move to a file beside the IR that the OS pages in only
when torch reads them (a LoRA to load or fuse, the torch fallback): the compiled graph holds its own copy,
and two copies in RAM were what kept SDXL past a 16 GB machine.
Jobs it cannot take (ControlNets, IP-Adapters, DeepCache/ToMe, non-UNet models) are sent to a torch preset
by planning; a call that still does not fit — LoRA scales given at call time, an LCM UNet's
``timestep_cond`` — runs on the torch UNet, with one line saying why, once.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from genimg.openvino_cache import compiled_folder, ir_name, mark_used, record, weights_path
from genimg.third_party import convert_traced, replace_forward, tensor_version


@dataclass(frozen=True)
class Recipe:
    """How the route converts a UNet for one kind of CPU. ``winograd``: its 3×3 convolutions as Winograd's
    products where they pay (genimg/winograd.py); ``f32_graph``: the IR holds float32 weights even when
    the preset loaded bf16 ones, and OpenVINO lowers it to bf16 itself (its precision hint), as OpenVINO's
    own documentation converts models — the graph its fusions are written for."""

    winograd: bool
    f32_graph: bool
    why: str


# Chosen by the CPU's kind (genimg.device.cpu_kind), each from a side-by-side measurement against plain
# OpenVINO on that kind (docs/benchmarks.md, "CPU: OpenVINO beside torch"; bench/cpu_presets.py --openvino).
RECIPES = {
    # Intel AMX: oneDNN's bf16 convolutions on the tile units outrun Winograd's transforms, and the bf16 graph
    # ran 0.77-0.83x of OpenVINO's own recipe there (the measurement): the route is OpenVINO's recipe.
    "amx": Recipe(winograd=False, f32_graph=True, why="AMX: oneDNN's own bf16 kernels, OpenVINO's recipe"),
    # AVX512-BF16 without AMX (AMD Zen 4): direct convolutions already run near the bf16 peak, so fewer
    # multiplications (Winograd) is what pays.
    "avx512-bf16": Recipe(winograd=True, f32_graph=False, why="AVX512-BF16: Winograd's 3x3 convolutions"),
    # fp32-only CPUs: the UNet is fp32 anyway; Winograd 1.39x plain fp32 there (bench/cpu_presets.py).
    "fp32": Recipe(winograd=True, f32_graph=True, why="fp32: Winograd's 3x3 convolutions"),
}


def recipe_for_this_cpu() -> Recipe:
    from genimg.device import cpu_kind

    return RECIPES[cpu_kind()]


SAMPLED_VALUES = 4096  # per tensor, for the weights' fingerprint: enough to tell fused LoRAs apart
KEPT_GRAPHS = 2  # compiled graphs kept in memory (with and without guidance's doubled batch, say); the rest on disk


def _adapter_state(module: torch.nn.Module) -> str:
    """The scales, active adapters and merged flags of any LoRA adapters in ``module`` (peft keeps them
    outside the weights, and merges in place without touching a tensor's version)."""
    parts = []
    for name, layer in module.named_modules():
        scaling = getattr(layer, "scaling", None)
        if isinstance(scaling, dict):
            active = getattr(layer, "active_adapters", ())
            parts.append(f"{name}{sorted(scaling.items())}{list(active)}{getattr(layer, 'merged', '')}")
    return "".join(parts)


def weights_layout(module: torch.nn.Module) -> tuple:
    """What changes when weights are replaced or written in place, cheap to read: which tensor each name
    holds, its version counter, and the adapters' state. While it is unchanged, so is the fingerprint."""
    tensors = tuple((name, t.data_ptr(), tensor_version(t)) for name, t in module.state_dict(keep_vars=True).items())
    return tensors, _adapter_state(module)


class WeightsKey:
    """The :func:`fingerprint` of a module's weights now, sampled anew only when a tensor was replaced or
    written (its :func:`weights_layout` changed)."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.known = module, (None, None)  # (the layout, its fingerprint then)

    def __call__(self) -> str:
        layout = weights_layout(self.module)
        if self.known[0] != layout:
            self.known = (layout, fingerprint(self.module))
        return self.known[1]

    def settle(self, key: str) -> None:
        """The weights were swapped for tensors of the same values: ``key`` still holds, not sampled again."""
        self.known = (weights_layout(self.module), key)


def fingerprint(module: torch.nn.Module) -> str:
    """A key of ``module``'s weights: names, shapes and an evenly spaced sample of each tensor's values,
    and the scales of any LoRA adapters in it (peft keeps those outside the weights). Reading every byte
    of a 3.4 GB UNet would cost seconds; a fused LoRA moves every value of the layers it touches, so the
    sample sees it."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLED_VALUES)
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(flat[::step].to(torch.float32).numpy().tobytes())
    digest.update(_adapter_state(module).encode())
    return digest.hexdigest()[:24]


class _Traced(torch.nn.Module):
    """The UNet with positional float32 tensors in and the float32 noise prediction out: what OpenVINO
    traces (numpy, which feeds the compiled graph, has no bf16); the weights stay in their own dtype."""

    def __init__(self, unet, torch_forward, sdxl: bool):
        super().__init__()
        self.unet, self.torch_forward, self.sdxl = unet, torch_forward, sdxl

    def forward(self, sample, timestep, encoder_hidden_states, *added):
        dtype = self.unet.dtype
        added = [x.to(dtype) for x in added]
        kwargs = {"added_cond_kwargs": {"text_embeds": added[0], "time_ids": added[1]}} if self.sdxl else {}
        return self.torch_forward(sample.to(dtype), timestep, encoder_hidden_states=encoder_hidden_states.to(dtype),
                                  return_dict=False, **kwargs)[0].float()


@contextmanager
def in_float32(module: torch.nn.Module, enabled: bool = True):
    """Within the block, ``module``'s floating-point weights and buffers hold float32 copies of their values;
    after it, their own tensors again (the same storage, the same values): the conversion traces a float32
    graph while the shared model stays as its preset loaded it. Nothing else runs the model meanwhile (a
    lane converts between its steps)."""
    kept = []
    if enabled:
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                kept.append((tensor, tensor.data))
                tensor.data = tensor.data.float()
    try:
        yield
    finally:
        for tensor, data in kept:
            tensor.data = data


def install(unet, cache: Path, progress=None, note=None, recipe: Recipe | None = None, model: str = "",
            scale: int = 8) -> "OpenVINOForward":
    """Make ``unet`` run by OpenVINO: its ``forward`` replaced on this instance, everything else (config,
    LoRA loading, adapters, the pipelines sharing it) left as it is. OpenVINO computes in the precision the
    UNet was loaded in: bf16 for bf16 weights, fp32 otherwise. ``recipe``: how to convert it, by default
    this CPU kind's (:data:`RECIPES`; the benchmark's side-by-side rows pass others). ``model`` and ``scale``
    (the VAE's pixels per latent) name the model and image size in the cache's listing."""
    unet.eval()
    replace_forward(unet, OpenVINOForward(unet, cache, progress, note, recipe or recipe_for_this_cpu(), model, scale))
    return unet.forward


class OpenVINOForward:
    """A UNet's forward, run by OpenVINO: the same call and return value as ``UNet2DConditionModel.forward``."""

    def __init__(self, unet, cache: Path, progress=None, note=None, recipe: Recipe = RECIPES["avx512-bf16"],
                 model: str = "", scale: int = 8):
        self.unet, self.recipe, self.model = unet, recipe, model or unet.config.get("_name_or_path", "")
        self.scale = scale
        self.torch_forward = type(unet).forward.__get__(unet)  # the class's own: for tracing, and the fallback
        self.cache, self.precision = Path(cache), "bf16" if unet.dtype == torch.bfloat16 else "f32"
        self.progress, self.note = progress, note
        self.requests: dict = {}
        self.noted: set = set()
        self.key = WeightsKey(unet)
        self.weights_on_disk = False

    def __call__(self, sample, timestep, encoder_hidden_states, class_labels=None, timestep_cond=None,
                attention_mask=None, cross_attention_kwargs=None, added_cond_kwargs=None,
                down_block_additional_residuals=None, mid_block_additional_residual=None,
                down_intrablock_additional_residuals=None, encoder_attention_mask=None, return_dict=True):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        added = dict(added_cond_kwargs or {})
        times = torch.as_tensor(timestep).reshape(-1)
        why = "the images of this batch are at different times" if (times != times[0]).any() else None
        why = why or _unsupported(class_labels, timestep_cond, attention_mask, cross_attention_kwargs, added,
                                  down_block_additional_residuals, mid_block_additional_residual,
                                  down_intrablock_additional_residuals, encoder_attention_mask)
        if why:
            if why not in self.noted and self.note:
                self.note(f"OpenVINO: {why}; this step runs on torch instead")
            self.noted.add(why)
            dtype = self.unet.dtype
            out = self.torch_forward(sample.to(dtype), timestep, encoder_hidden_states.to(dtype), class_labels,
                                     timestep_cond, attention_mask, cross_attention_kwargs, added_cond_kwargs,
                                     down_block_additional_residuals, mid_block_additional_residual,
                                     down_intrablock_additional_residuals, encoder_attention_mask, return_dict=False)[0]
        else:
            sdxl = "text_embeds" in added
            t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)[0]  # one time for the batch
            inputs = [sample.float(), t, encoder_hidden_states.float()]
            if sdxl:
                inputs += [added["text_embeds"].float(), added["time_ids"].float()]
            request = self._request(inputs, sdxl)
            result = request.infer([x.detach().numpy() for x in inputs])
            out = torch.from_numpy(result[0].copy())
        out = out.to(sample.dtype)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    def _request(self, inputs: list, sdxl: bool):
        shapes = tuple(tuple(x.shape) for x in inputs)
        key = self.key()  # per call: a LoRA loaded or fused since the last one makes another graph
        if (key, shapes) in self.requests:
            self.requests[(key, shapes)] = self.requests.pop((key, shapes))  # the most recent last
            return self.requests[(key, shapes)]
        # the recipe in the name ("winograd" or "static", ".f32" for a float32 graph): another recipe, another IR
        f32_graph = self.recipe.f32_graph and self.unet.dtype != torch.float32
        xml = self.cache / f"{ir_name(key, self.recipe.winograd, shapes, f32_graph)}.xml"
        if not xml.is_file():
            if self.progress:
                self.progress("warning", message="OpenVINO: converting the UNet for this model and size (once; "
                                                 f"a full-size UNet takes a few minutes), kept in {self.cache}")
            self._convert(inputs, sdxl, xml, self.recipe.winograd, f32_graph)
            record(xml, self.model, shapes, self.scale)
        mark_used(xml)
        if not self.weights_on_disk:
            self._weights_to_disk(key)
        while len(self.requests) >= KEPT_GRAPHS:  # a compiled full-size UNet holds gigabytes: keep the recent ones
            self.requests.pop(next(iter(self.requests)))
        request = self.requests[(key, shapes)] = compiled_request(xml, compiled_folder(self.cache, key), self.precision)
        return request

    def _weights_to_disk(self, key: str) -> None:
        """Swap the torch UNet's tensors for memory-mapped ones read from a safetensors copy in the cache
        (written once per weights key): untouched, they cost no RAM, and the compiled graph has its own.
        Torch reads them when it must (converting another size, the fallback, loading a LoRA); writes, as
        fusing a LoRA makes, go to private copies of the pages they touch, never to the file."""
        from safetensors.torch import load_file

        from genimg.errors import DiskFull
        from genimg.files import check_room, save_safetensors

        self.weights_on_disk = True  # once per UNet: a LoRA fused later changes only the layers it touches
        path = weights_path(self.cache, key)
        tensors = self.unet.state_dict()
        try:
            if not path.is_file():
                check_room(self.cache, 2 * sum(t.nbytes for t in tensors.values()), "a copy of the UNet's weights",
                           "set GENIMG_CACHE_DIR to a bigger disk")
                save_safetensors(path, {name: t.contiguous() for name, t in tensors.items()})
            del tensors
            with torch.inference_mode(False):  # tensors that count versions, as the ones they replace did
                self.unet.load_state_dict(load_file(path), assign=True)
        except (OSError, DiskFull) as e:  # the weights stay in RAM, as before
            if self.note:
                self.note(f"OpenVINO: the torch UNet's weights stay in memory: {e}")
            return
        _return_freed_memory()
        self.key.settle(key)  # the same values: not sampled again (that would page them all in)

    def _convert(self, inputs: list, sdxl: bool, xml: Path, winograd: bool, f32_graph: bool = False) -> None:
        """Trace and convert the UNet for these inputs' shapes, and save it as IR at ``xml``; ``f32_graph``:
        from float32 copies of its (bf16) weights, made for the trace and freed after it (``in_float32``)."""
        from genimg.files import check_room
        from genimg.winograd import winograd_convs

        self.cache.mkdir(parents=True, exist_ok=True)
        # The IR holds the weights once more, and Winograd's filters (16 numbers for a 3x3 kernel's 9) more.
        needed = 2 * sum(t.nbytes for t in self.unet.state_dict().values()) * (2 if f32_graph else 1)
        check_room(self.cache, needed, "converting the UNet for OpenVINO", "set GENIMG_CACHE_DIR to a bigger disk")
        traced = _Traced(self.unet, self.torch_forward, sdxl).eval()
        # Winograd's 3x3 convolutions where they pay: fewer multiplications, where the direct ones already
        # run near the CPU's peak (genimg/winograd.py). The converted graph shares the torch tensors' memory,
        # Winograd's filters included: it is saved before the context puts the plain convolutions (and
        # frees the filters) back.
        with (torch.no_grad(), warnings.catch_warnings(), in_float32(self.unet, f32_graph),
              winograd_convs(traced, tuple(inputs), winograd)):
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks it keeps as constants
            model = convert_traced(traced, tuple(inputs))
            # Static shapes: the graph is compiled for this call's sizes only (another size is another key
            # anyway), which lets OpenVINO plan memory and pick kernels ahead: ~9% faster a step on full-size
            # SD1.5 than the dynamic shapes convert_model gives (docs/benchmarks.md).
            model.reshape({port: list(x.shape) for port, x in zip(model.inputs, inputs)})
            save_ir(model, xml, needed, "the converted UNet")
            del model
        del traced
        # The tracer leaves reference cycles holding the Winograd filters (2.6 GB for SD1.5): free them now,
        # before the compiled graph joins them
        free_conversion_garbage()


def compiled_request(xml: Path, compiled: Path, precision: str):
    """An inference request of the IR at ``xml`` compiled for the CPU in ``precision`` ("bf16" or "f32"),
    OpenVINO keeping the compiled graph in ``compiled``: given the path, it loads a graph it compiled before
    without reading the IR at all."""
    import openvino as ov

    core = ov.Core()
    core.set_property({"CACHE_DIR": str(compiled)})
    # LATENCY: one stream on every core, as one image's steps run one after another (OpenVINO's default for
    # the CPU today; said so that a change of default does not change the route)
    return core.compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()


def save_ir(model, xml: Path, needed: int, what: str) -> None:
    """Save the converted ``model`` as IR at ``xml``, whole or not at all: a temporary name, the ``.xml``
    renamed last (a folder with the .xml holds the whole IR); a full disk said as one (``needed``: bytes)."""
    import openvino as ov

    from genimg.errors import DiskFull
    from genimg.files import free_space

    tmp = xml.with_name(f".{xml.name}.tmp.xml")
    try:
        ov.save_model(model, tmp, compress_to_fp16=False)  # the weights as they are: bf16 or fp32
    except BaseException as e:  # Ctrl-C or a full disk: no half-written IR left behind
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
        free = free_space(xml.parent)
        if isinstance(e, Exception) and free < needed:  # OpenVINO says only "iostream error"
            raise DiskFull(f"saving {what} filled {xml.parent} ({free / 1e6:.0f} MB free; it needs about "
                           f"{needed / 1e6:.0f} MB); free some space or set GENIMG_CACHE_DIR to a bigger disk") from e
        raise
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)


def free_conversion_garbage() -> None:
    """Collect what a trace and conversion leave in reference cycles, and give the pages back: called after
    each part's conversion, before its graph is compiled (the VAE decoder's at 512² leaves 1.2 GiB otherwise)."""
    gc.collect()
    _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the freed weights' pages back to the OS: glibc keeps freed heap memory for the process, and
    OpenVINO allocates the compiled graph elsewhere, so without this the swap would not lower RSS."""
    import ctypes

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only; elsewhere nothing to do
    if trim:
        trim(0)


def _unsupported(class_labels, timestep_cond, attention_mask, cross_attention_kwargs, added, down, mid, intra,
                 encoder_attention_mask) -> str | None:
    """Why the converted graph cannot take this call, or None when it can."""
    if down is not None or mid is not None or intra is not None:
        return "ControlNets add residuals the converted UNet has no inputs for"
    if set(added) - {"text_embeds", "time_ids"}:
        return "IP-Adapter image embeddings are not among the converted UNet's inputs"
    if cross_attention_kwargs:
        return "LoRA scales given at each call (unfused LoRAs) change weights the converted UNet holds fixed"
    if timestep_cond is not None or class_labels is not None:
        return "this UNet takes a timestep condition (LCM) or class labels the conversion did not trace"
    if attention_mask is not None or encoder_attention_mask is not None:
        return "attention masks are not among the converted UNet's inputs"
    return None
