"""Options shared by the generating commands, declared once as ``Annotated`` aliases.

``generation_command`` adds every shared option to a command, so txt2img, img2img, inpaint and
outpaint declare only what is their own and receive the rest as one ``Common`` object.
"""

import functools
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import complete

GEN = "Generation"
MODEL = "Model and memory"
OUT = "Output"

Prompt = Annotated[Optional[str], typer.Argument(help="What to draw (may be left out with --from).", show_default=False)]
Negative = Annotated[str, typer.Option("--negative", "-n", help="What to avoid (SD/SDXL).", rich_help_panel=GEN)]
Width = Annotated[Optional[int], typer.Option("--width", "-W", help="Image width (default: the model's).", rich_help_panel=GEN)]
Height = Annotated[Optional[int], typer.Option("--height", "-H", help="Image height (default: the model's).", rich_help_panel=GEN)]
Steps = Annotated[Optional[int], typer.Option("--steps", "-s", help="Denoising steps (default: the model's).", rich_help_panel=GEN)]
Cfg = Annotated[Optional[float], typer.Option("--cfg", "-g", help="Guidance scale (default: the model's).", rich_help_panel=GEN)]
Seed = Annotated[Optional[int], typer.Option("--seed", "-S", help="Seed of the first image; random (and reported) when absent.", rich_help_panel=GEN)]
Count = Annotated[int, typer.Option("--count", "-c", help="Images to make; seeds seed, seed+1, ...", rich_help_panel=GEN)]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Images per forward pass.", rich_help_panel=GEN)]
Scheduler = Annotated[Optional[str], typer.Option("--scheduler", "--sampler", help="Sampler by A1111 name, e.g. 'Euler a', 'DPM++ 2M Karras' (see `genimg schedulers`).", autocompletion=complete.schedulers, rich_help_panel=GEN)]
Style = Annotated[Optional[list[str]], typer.Option("--style", help="Named styles wrapping the prompt and extending the negative (comma-separated or repeated; `genimg styles`).", autocompletion=complete.styles, rich_help_panel=GEN)]
NegativeTemplate = Annotated[Optional[str], typer.Option("--negative-template", help="A style's negative prompt added to yours; 'default' is the model family's.", rich_help_panel=GEN)]
FromImage = Annotated[Optional[Path], typer.Option("--from", help="Start from the settings stored in this PNG (genimg's or A1111's); flags given override them.", rich_help_panel=GEN)]
Controls = Annotated[Optional[list[str]], typer.Option("--control", help="A ControlNet steering the image: TYPE=IMAGE[,scale=S][,start=A][,end=B],model=NAME (repeatable; TYPE: none, canny, depth, softedge, scribble, lineart, openpose … see `genimg preprocess --help`).", rich_help_panel="ControlNet")]
ClipSkip = Annotated[Optional[int], typer.Option("--clip-skip", help="A1111's Clip skip: 2 reads CLIP's penultimate layer (most anime models); 1 = none (SD/SDXL).", rich_help_panel=GEN)]
VariationSeed = Annotated[Optional[int], typer.Option("--variation-seed", help="A1111's variation seed: the noise moves toward this seed's by --variation-strength (--count steps it).", rich_help_panel=GEN)]
VariationStrength = Annotated[Optional[float], typer.Option("--variation-strength", help="0: the seed's image, 1: the variation seed's; between: a variation of the seed's.", rich_help_panel=GEN)]
SeedResizeFrom = Annotated[Optional[str], typer.Option("--seed-resize-from", metavar="WxH", help="Draw the seed's noise as if the image were WxH (A1111's seed resize): a seed's picture kept at another size.", rich_help_panel=GEN)]
Tiling = Annotated[bool, typer.Option("--tiling", help="Seamless: the image tiles without a seam (A1111's Tiling).", rich_help_panel=GEN)]
TilingAxis = Annotated[Optional[str], typer.Option("--tiling-axis", help="Tile along one axis only: x or y (implies --tiling).", rich_help_panel=GEN)]
Refiner = Annotated[Optional[str], typer.Option("--refiner", help="SDXL: a refiner (or another SDXL model) that takes over the last steps (diffusers' ensemble of experts).", rich_help_panel=MODEL)]
RefinerSwitch = Annotated[Optional[float], typer.Option("--refiner-switch", help="The fraction of the steps after which the refiner takes over (default 0.8).", rich_help_panel=MODEL)]
RestoreFaces = Annotated[Optional[str], typer.Option("--restore-faces", metavar="MODEL", help="Restore faces (A1111's Restore faces): GFPGAN, CodeFormer or RestoreFormer weights, a name in face_restorer_dirs, or A1111's name for one.", rich_help_panel=GEN)]
FaceStrength = Annotated[Optional[float], typer.Option("--face-strength", help="How much of the restored face shows (A1111's visibility; default 1).", rich_help_panel=GEN)]
FaceFidelity = Annotated[Optional[float], typer.Option("--face-fidelity", help="CodeFormer's weight: 0 the model's face, 1 closest to the image's (default 0.5).", rich_help_panel=GEN)]
MaxSeqLen = Annotated[Optional[int], typer.Option("--max-sequence-length", help="FLUX: T5 prompt tokens (256 schnell, 512 dev).", rich_help_panel=GEN)]

Model = Annotated[Optional[str], typer.Option("--model", "-m", help="Alias (sd15, sdxl, sd-turbo, lcm-sd15, flux-schnell, flux-dev …: `genimg models`), hub id, diffusers folder or .safetensors file.", autocompletion=complete.models, rich_help_panel=MODEL)]
Lora = Annotated[Optional[list[str]], typer.Option("--lora", "-l", help="LoRA file or folder, optionally :WEIGHT (repeatable; diffusers or kohya layout).", rich_help_panel=MODEL)]
Embedding = Annotated[Optional[list[Path]], typer.Option("--embedding", help="Textual inversion file (.safetensors), optionally :TOKEN; the word to use in the prompt is TOKEN or the file name (repeatable).", rich_help_panel=MODEL)]
Config = Annotated[Optional[Path], typer.Option("--config", help="Diffusers folder with the configs of a single-file checkpoint (needed offline).", rich_help_panel=MODEL)]
Vae = Annotated[Optional[str], typer.Option("--vae", help="Another VAE: taesd/taesdxl/taef1 (fast decode), sd-vae-ft-mse, sdxl-vae-fp16-fix, a hub id, a folder or a .safetensors file.", rich_help_panel=MODEL)]
Denoiser = Annotated[Optional[Path], typer.Option("--denoiser", help="A quantized UNet / FLUX transformer (.gguf) in place of the model's own.", rich_help_panel=MODEL)]
AutoFallback = Annotated[bool, typer.Option("--auto-fallback", help="Out of GPU memory: retry once with the next smaller preset.", rich_help_panel=MODEL)]
IPAdapter = Annotated[Optional[list[str]], typer.Option("--ip-adapter", metavar="IMAGE[,scale=S][,model=NAME]", help="An image as a prompt, repeatable; model: sd15, sd15-plus, sdxl, sdxl-vit-h, flux … or a .safetensors with image_encoder/ beside it.", show_default=False, rich_help_panel=MODEL)]
Redux = Annotated[Optional[list[str]], typer.Option("--redux", metavar="IMAGE[,scale=S][,model=NAME]", help="FLUX: an image as the prompt through FLUX.1 Redux (its image tokens join the prompt's), repeatable; model: a Redux folder or hub id (default black-forest-labs/FLUX.1-Redux-dev).", show_default=False, rich_help_panel=MODEL)]
FuseLora = Annotated[bool, typer.Option("--fuse-lora", help="Merge the LoRAs into the model's weights: each step runs as fast as without them.", rich_help_panel=MODEL)]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="Allow .ckpt/.bin/.pt weights (pickle can run code: only for sources you trust).", rich_help_panel=MODEL)]
PresetName = Annotated[Optional[str], typer.Option("--preset", "-p", help="VRAM preset: auto, cpu, cpu-bf16, mps, 6gb, 8gb, 12gb, 16gb, 24gb, 80gb (see `genimg presets`; default: your config's, else auto).", autocompletion=complete.presets, rich_help_panel=MODEL)]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, mps (default: the preset's).", rich_help_panel=MODEL)]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="fp32, fp16 or bf16.", rich_help_panel=MODEL)]
Offload = Annotated[Optional[str], typer.Option("--offload", help="none, model or sequential CPU offload.", rich_help_panel=MODEL)]
Compile = Annotated[Optional[str], typer.Option("--compile", help="torch.compile mode for the denoiser, or off.", rich_help_panel=MODEL)]
Quantize = Annotated[Optional[str], typer.Option("--quantize", help="Quantize the denoiser: none, int8, nf4 (bitsandbytes, CUDA).", rich_help_panel=MODEL)]
AttentionSlicing = Annotated[Optional[bool], typer.Option("--attention-slicing/--no-attention-slicing", help="Compute attention in slices (less memory, slower).", show_default=False, rich_help_panel=MODEL)]
VaeSlicing = Annotated[Optional[bool], typer.Option("--vae-slicing/--no-vae-slicing", help="Decode a batch one image at a time.", show_default=False, rich_help_panel=MODEL)]
VaeTiling = Annotated[Optional[bool], typer.Option("--vae-tiling/--no-vae-tiling", help="Decode in tiles (large images on small cards).", show_default=False, rich_help_panel=MODEL)]
ChannelsLast = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels_last memory format for the denoiser.", show_default=False, rich_help_panel=MODEL)]
DeepCacheFlag = Annotated[Optional[int], typer.Option("--deepcache", metavar="N", help="DeepCache: a full UNet pass every N steps, its deep features reused between (3: about 2x fewer UNet FLOPs; pip install \"genimg[speed]\").", show_default=False, rich_help_panel=MODEL)]
ToMe = Annotated[Optional[float], typer.Option("--tome", metavar="RATIO", help="ToMe: merge this share of self-attention tokens (0.5 is usual; pip install \"genimg[speed]\").", show_default=False, rich_help_panel=MODEL)]
MaxMegapixels = Annotated[Optional[float], typer.Option("--max-megapixels", help="Largest image the preset accepts, in MP (raise it to try a larger size).", rich_help_panel=MODEL)]
VaeFp32 = Annotated[Optional[bool], typer.Option("--vae-fp32/--no-vae-fp32", help="Decode in float32 (cures black images from fp16 VAEs).", show_default=False, rich_help_panel=MODEL)]

Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder, or file name template with {prompt} {seed} {index} {model} {width} {height} {steps} {date} {time}; a plain name with --count above 1 gets -SEED before its suffix (one-4.png, one-5.png). Default: ./outputs/", rich_help_panel=OUT)]
SaveControl = Annotated[bool, typer.Option("--save-control", help="Also write each control map beside the first image (NAME-control0-TYPE.png).", rich_help_panel=OUT)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing files.", rich_help_panel=OUT)]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object per image on stdout.", rich_help_panel=OUT)]
Server = Annotated[Optional[str], typer.Option("--server", help="Run on this genimg server (URL; default: the one `genimg serve` runs here, if any).", rich_help_panel=OUT)]
Local = Annotated[bool, typer.Option("--local", help="Run in this process even when a genimg server runs.", rich_help_panel=OUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.", rich_help_panel=OUT)]



def _shared(
    negative: Negative = "",
    model: Model = None,
    width: Width = None,
    height: Height = None,
    steps: Steps = None,
    cfg: Cfg = None,
    seed: Seed = None,
    count: Count = 1,
    batch_size: BatchSize = 1,
    scheduler: Scheduler = None,
    max_sequence_length: MaxSeqLen = None,
    clip_skip: ClipSkip = None,
    variation_seed: VariationSeed = None,
    variation_strength: VariationStrength = None,
    seed_resize_from: SeedResizeFrom = None,
    tiling: Tiling = False,
    tiling_axis: TilingAxis = None,
    refiner: Refiner = None,
    refiner_switch: RefinerSwitch = None,
    restore_faces: RestoreFaces = None,
    face_strength: FaceStrength = None,
    face_fidelity: FaceFidelity = None,
    from_image: FromImage = None,
    style: Style = None,
    negative_template: NegativeTemplate = None,
    lora: Lora = None,
    fuse_lora: FuseLora = False,
    ip_adapter: IPAdapter = None,
    redux: Redux = None,
    embedding: Embedding = None,
    config: Config = None,
    denoiser: Denoiser = None,
    vae: Vae = None,
    allow_pickle: AllowPickle = False,
    preset: PresetName = None,
    device: Device = None,
    dtype: Dtype = None,
    offload: Offload = None,
    compile: Compile = None,
    quantize: Quantize = None,
    attention_slicing: AttentionSlicing = None,
    vae_slicing: VaeSlicing = None,
    vae_tiling: VaeTiling = None,
    channels_last: ChannelsLast = None,
    vae_fp32: VaeFp32 = None,
    max_megapixels: MaxMegapixels = None,
    deepcache: DeepCacheFlag = None,
    tome: ToMe = None,
    auto_fallback: AutoFallback = False,
    output: Output = None,
    overwrite: Overwrite = False,
    save_control: SaveControl = False,
    json: Json = False,
    quiet: Quiet = False,
    server: Server = None,
    local: Local = False,
):
    """The options every generating command takes (a template: never called)."""


def _text(value):
    return str(value) if value else None


def _texts(values) -> list[str]:
    return [str(v) for v in values or []]


def _items(values) -> list:
    return list(values or [])


# The one flag table: what each shared flag becomes. Preset flags become preset_overrides; output and run flags
# are the command's own, never settings; every other flag is the spec field of its name unless named here, with
# the conversion named here (the same for every flag typed or left at its default, and for --from's overrides).
_PRESET_FLAGS = ("device", "dtype", "offload", "compile", "quantize", "attention_slicing", "vae_slicing",
                 "vae_tiling", "channels_last", "vae_fp32", "max_megapixels", "deepcache", "tome")
_OUTPUT_FLAGS = ("output", "overwrite", "json", "quiet", "from_image", "auto_fallback", "save_control", "server", "local")
_SETTINGS = {"config": ("model_config", _text), "denoiser": ("denoiser", _text), "lora": ("loras", _items),
             "embedding": ("embeddings", _texts), "ip_adapter": ("ip_adapters", _items), "redux": ("redux", _items),
             "tiling": ("tiling", lambda on: "xy" if on else None), "tiling_axis": ("tiling", lambda axis: axis),
             "variation_strength": ("variation_strength", lambda v: v or 0.0),
             "refiner_switch": ("refiner_switch", lambda v: 0.8 if v is None else v),
             "face_strength": ("face_strength", lambda v: 1.0 if v is None else v),
             "face_fidelity": ("face_fidelity", lambda v: 0.5 if v is None else v)}


def _as_settings(flags: dict) -> dict:
    """Flag name -> value as settings (spec field names), the preset flags given as ``preset_overrides``. Two
    flags of one field (--tiling, --tiling-axis): the one that says something wins."""
    out = {}
    for flag, value in flags.items():
        if flag not in _PRESET_FLAGS and flag not in _OUTPUT_FLAGS:
            field, convert = _SETTINGS.get(flag, (flag, None))
            value = convert(value) if convert else value
            if value is not None or out.get(field) is None:
                out[field] = value
    overrides = {k: v for k, v in flags.items() if k in _PRESET_FLAGS and v is not None}
    return out | ({"preset_overrides": overrides} if overrides else {})



@dataclass
class Common:
    values: dict
    given: frozenset = frozenset()  # the flags typed on the command line (not left at their defaults)

    def settings(self) -> dict:
        """The shared flags as settings; flags not typed are None, and the library fills in the user's config
        (genimg.config.generation_defaults)."""
        return {"preset_overrides": {}} | _as_settings(self.values)

    def given_settings(self, settings: dict) -> dict:
        """Of ``settings`` (flag name -> value), the ones typed on the command line, as settings."""
        return _as_settings({k: v for k, v in settings.items() if k in self.given})

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _given_flags(ctx: typer.Context) -> frozenset:
    """Names of the parameters the user typed, from the context's record of where each value came from
    (``Context.get_parameter_source``, public in click and in typer's own copy of it)."""
    return frozenset(name for name in ctx.params
                     if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP"))


def generation_command(func):
    """Give ``func(own options..., common: Common)`` every shared option on the command line."""
    shared_hints = typing.get_type_hints(_shared, include_extras=True)
    own_hints = typing.get_type_hints(func, include_extras=True)
    own = [p.replace(annotation=own_hints[p.name]) for p in inspect.signature(func).parameters.values()
           if p.name != "common"]
    shared = [p.replace(annotation=shared_hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
              for p in inspect.signature(_shared).parameters.values()]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    @functools.wraps(func)
    def command(ctx: typer.Context, **kwargs):
        common = {name: kwargs.pop(name) for name in list(kwargs) if name in shared_hints}
        return func(**kwargs, common=Common(common, _given_flags(ctx)))

    command.__signature__ = inspect.Signature([context, *own, *shared])
    command.__annotations__ = {p.name: p.annotation for p in (context, *own, *shared)}
    del command.__wrapped__  # typer must see the combined signature, not func's own
    return command
