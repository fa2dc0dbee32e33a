"""Build diffusers pipelines from a :class:`ModelRef` and a :class:`Preset`, and reuse them.

The pipeline class comes from the table in :mod:`genimg.pipelines`, never picked by branches. A model is
loaded once; another task on the same model is a pipeline of that task's class on the same loaded
components (:func:`task_pipeline`), never cast or moved. The upscalers of the hires fix are kept here too."""

from __future__ import annotations

from dataclasses import dataclass, field

from genimg.errors import RunFailure, UsageError
from genimg.models import ModelRef
from genimg.models.families import FAMILIES
from genimg.pipelines import PipelineChoice, base_choice
from genimg.pipeline_setup import apply_preset, quiet_libraries, torch_dtype
from genimg.presets import Preset
from genimg.quantization import quantization_config


@dataclass
class LoadedModel:
    ref: ModelRef
    preset: Preset
    pipelines: dict = field(default_factory=dict)  # PipelineChoice.key -> pipeline, all sharing components
    scheduler_config: dict | None = None  # the model's own, so sampler choices never stack
    base_key: tuple = ()  # the key of the pipeline the model was loaded as; the others share its components
    controlnets: dict = field(default_factory=dict)  # location -> loaded ControlNet
    lora_paths: tuple = ()  # LoRAs loaded into the shared components, in adapter order
    lora_layers: tuple = ()  # their LoraLayers: how many of each one's layers matched the model
    lora_fused: tuple | None = None  # (path, weight) of the LoRAs merged into the weights (--fuse-lora)
    lora_originals: tuple = ()  # (tensor, its CPU copy) of each weight the fuse changed, put back on unfusing
    embedding_paths: tuple = ()  # (file, token) of the textual inversions loaded into the tokenizers and text encoders
    ip_adapter_paths: tuple = ()  # IP-Adapter weights loaded into the UNet
    ip_encoder: object = None  # their CLIP image encoder, given to every pipeline of the model
    redux: tuple | None = None  # (location, FluxPriorReduxPipeline) of the last --redux, sharing the text encoders

    @property
    def base(self):
        """The pipeline the model was loaded as."""
        return self.pipelines[self.base_key]


class PipelineFactory:
    """Holds at most one loaded model (big models don't fit twice) and its per-task pipelines."""

    def __init__(self):
        self.current: LoadedModel | None = None
        self.loads = self.released = 0  # how often a model was loaded and let go (for tests and --debug)
        self.upscalers: dict = {}
        self.refiners: dict = {}  # (ref, how it runs) -> (img2img pipeline, LoadedModel): SDXL's refiner

    def get(self, ref: ModelRef, preset: Preset, choice: PipelineChoice | None = None, progress=None) -> tuple:
        """The pipeline ``choice`` names (planning made it; None: the model's base pipeline) on ``ref`` run as
        ``preset``, loading only what is missing: the model, then each ControlNet, kept with the model."""
        import diffusers

        if self.current is None or self.current.ref != ref or not _same_setup(self.current.preset, preset):
            self.release()
            if progress:
                progress("load", model=ref.name)
            self.current = _load(ref, preset, progress)
            self.loads += 1
            if progress:
                progress("loaded", model=ref.name)
        loaded = self.current
        choice = choice or base_choice(ref.family, ref.variant)
        if choice.key not in loaded.pipelines:
            extra = {}
            if choice.controlnets:
                nets = []
                for cn in choice.controlnets:
                    if cn.location not in loaded.controlnets:
                        loaded.controlnets[cn.location] = _load_controlnet(cn, choice.controlnet_class, preset, progress)
                    nets.append(loaded.controlnets[cn.location])
                multi = getattr(diffusers.models, choice.multi_controlnet_class)
                extra["controlnet"] = nets[0] if len(nets) == 1 else multi(nets)
            pipe = task_pipeline(getattr(diffusers, choice.entry.class_name), loaded.base, extra)
            pipe.set_progress_bar_config(disable=True)
            loaded.pipelines[choice.key] = pipe
        return loaded.pipelines[choice.key], loaded

    def upscaler(self, ref, preset: Preset, progress=None):
        """A loaded upscaler (the hires fix's) run as ``preset`` (its device, dtype and tile size), kept for
        the next image and let go with the model."""
        key = (ref, preset.device, preset.dtype, preset.upscale_tile)
        if key not in self.upscalers:
            from genimg.upscale.upscalers import load_upscaler

            if progress:
                progress("load", model=ref.name)
            self.upscalers[key] = load_upscaler(ref, tile=preset.upscale_tile, preset=preset)
            if progress:
                progress("loaded", model=ref.name)
        return self.upscalers[key]

    def refiner(self, ref: ModelRef, preset: Preset, progress=None) -> tuple:
        """A refiner (SDXL's, or any SDXL model used as one) as an img2img pipeline run as ``preset``, kept
        beside the model and let go with it; (pipeline, its LoadedModel)."""
        key = (ref.location, ref.vae, preset.device, preset.dtype, preset.offload, preset.quantize)
        if key not in self.refiners:
            import diffusers

            from genimg.pipelines import choose_pipeline

            if progress:
                progress("load", model=ref.name)
            loaded = _load(ref, preset, progress)
            choice = choose_pipeline(ref.family, ref.variant, "img2img")
            pipe = (loaded.base if choice.key == loaded.base_key
                    else task_pipeline(getattr(diffusers, choice.entry.class_name), loaded.base, {}))
            pipe.set_progress_bar_config(disable=True)
            self.refiners = {key: (pipe, loaded)}  # one refiner at a time
            if progress:
                progress("loaded", model=ref.name)
        return self.refiners[key]

    def release(self) -> None:
        """Let go of the loaded model, its pipelines and the upscalers, and give their memory back."""
        if self.current is None and not self.upscalers and not self.refiners:
            return
        if self.current is not None:
            self.released += 1
        self.current = None
        self.upscalers.clear()
        self.refiners.clear()
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def task_pipeline(cls, base, extra: dict):
    """A ``cls`` pipeline on ``base``'s loaded components (``extra`` added or replacing), as they are.

    Not ``cls.from_pipe(base)``: that ends with ``.to(dtype=float32)`` when given no dtype (diffusers issue
    #12754) — on the *shared* components, so one img2img would turn a warm bf16 or fp16 model float32 for
    every later job; and given the model's dtype it would cast a ``--vae-fp32`` VAE down. Here nothing is
    cast or moved: every component is passed as loaded, the pipeline's settings (``requires_safety_checker``,
    ``force_zeros_for_empty_prompt`` …) come from ``base``'s config, and a component the new class takes
    that ``base`` lacks (an image encoder, a ControlNet) is ``extra``'s or the class's own default."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    components = {name: module for name, module in base.components.items() if name in parameters}
    settings = {k: v for k, v in base.config.items() if k in parameters and k not in base.components}
    kwargs = {**settings, **components, **extra}
    missing = [name for name, p in parameters.items()
               if name != "self" and p.default is inspect.Parameter.empty and name not in kwargs]
    if missing:
        raise RunFailure(f"{cls.__name__} needs {', '.join(missing)}, which {type(base).__name__} has not loaded")
    return cls(**kwargs)


def _same_setup(a: Preset, b: Preset) -> bool:
    """Whether a model loaded as ``a`` serves ``b``: DeepCache and ToMe wrap each call, so they need no new load."""
    from dataclasses import replace

    return replace(a, deepcache=0, tome=0.0) == replace(b, deepcache=0, tome=0.0)


def _load(ref: ModelRef, preset: Preset, progress=None) -> LoadedModel:
    import diffusers

    quiet_libraries()
    choice = base_choice(ref.family, ref.variant)
    cls = getattr(diffusers, choice.entry.class_name)
    kwargs = {"dtype": torch_dtype(preset.dtype)}
    skipped = FAMILIES[ref.family].skipped_components  # SD1.x's NSFW classifier, as A1111 and ComfyUI
    kwargs.update({name: None for name in skipped})
    if "safety_checker" in skipped:
        kwargs["requires_safety_checker"] = False
    if preset.quantize != "none":
        kwargs["quantization_config"] = quantization_config(ref.family, preset, gguf_denoiser=bool(ref.denoiser))
    if ref.kind == "hub":
        kwargs.update(_from_hub(ref, preset, progress))
    try:
        if ref.denoiser:
            from genimg.models.gguf import load_denoiser

            name, denoiser = load_denoiser(ref, kwargs["dtype"])
            kwargs[name] = denoiser
        if ref.vae:
            from genimg.models.vaes import load_vae

            kwargs["vae"] = load_vae(ref, kwargs["dtype"])
        if ref.kind == "single_file":
            pipe = cls.from_single_file(ref.location, config=ref.config, **kwargs)
        else:
            pipe = cls.from_pretrained(ref.location, use_safetensors=None if ref.allow_pickle else True, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(ref, e) from e
    apply_preset(pipe, preset, progress, ref.name, FAMILIES[ref.family].denoiser[1])
    return LoadedModel(ref, preset, {choice.key: pipe}, dict(pipe.scheduler.config), choice.key)


def _from_hub(ref: ModelRef, preset: Preset, progress) -> dict:
    """First use of a hub model or ControlNet: fetch what loads as `genimg models download` would (the
    fp16 variant for a half-precision preset, no pickle copies), with genimg's progress display. Returns
    what ``from_pretrained`` needs for the cached files: the fp16 variant when only that is there, and
    the cache alone (``local_files_only``) when the hub cannot be reached, so nothing retries it."""
    from genimg.models.cache import cached_variant
    from genimg.models.hub import why_unreachable

    local = why_unreachable() is not None  # offline, or unreachable: resolving found the files in the cache
    if not local:
        from genimg.models.cache import cached_file_bytes
        from genimg.models.download import download, plan_download

        plan = plan_download(ref.location, preset.half_weights())
        if cached_file_bytes(plan.repo, plan.commit, plan.files) < plan.total:
            download(plan, progress)
    return {"local_files_only": local} | ({"variant": "fp16"} if cached_variant(ref.location) else {})


def _load_controlnet(ref: ModelRef, class_name: str, preset: Preset, progress=None):
    import diffusers

    if progress:
        progress("load", model=ref.name)
    cls = getattr(diffusers, class_name)
    kwargs = _from_hub(ref, preset, progress) if ref.kind == "hub" else {}
    try:
        if ref.kind == "single_file":
            model = cls.from_single_file(ref.location, dtype=torch_dtype(preset.dtype))
        else:
            model = cls.from_pretrained(ref.location, use_safetensors=None if ref.allow_pickle else True,
                                        dtype=torch_dtype(preset.dtype), **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(ref, e) from e
    if preset.offload == "none":
        model.to(preset.device)
    if progress:
        progress("loaded", model=ref.name)
    return model


def _load_error(ref: ModelRef, e: Exception) -> Exception:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if ref.kind == "single_file" and ref.location.endswith(".safetensors") or _has_safetensors(ref):
        if "header" in text.lower() or "deserializ" in text.lower() or "safetensor" in text.lower():
            return UsageError(f"{ref.name}: its .safetensors weights cannot be read ({text}); the file is damaged "
                              "or incomplete: download it again")
    if "safetensors" in text and not ref.allow_pickle:
        return UsageError(f"{ref.name} has no .safetensors weights, only pickle files; convert them, "
                          "or pass --allow-pickle if you trust the source")
    if ref.kind == "single_file" and ref.config is None:
        return UsageError(f"could not set up {ref.name} from its single file ({text}); offline, pass --config with a "
                          "diffusers folder of the same architecture")
    if ref.kind == "hub":
        from huggingface_hub import constants

        from genimg.models.hub import not_cached_offline

        if "local_files_only" in text or "outgoing traffic has been disabled" in text:
            return not_cached_offline(ref.location, name=ref.name)
        return UsageError(f"could not load {ref.location} from the Hugging Face cache ({constants.HF_HUB_CACHE}): {text}; "
                          f"download it with `hf download {ref.location}` where there is network, or pass a local folder")
    return RunFailure(f"could not load {ref.location}: {text}")


def _has_safetensors(ref: ModelRef) -> bool:
    from pathlib import Path

    return ref.kind == "folder" and any(Path(ref.location).rglob("*.safetensors"))
