"""Every setting of a LoRA training run, in one dataclass; a TOML file may hold any of them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from genimg.errors import UsageError, did_you_mean

TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class LoraTrainConfig:
    dataset: str = ""
    model: str = ""
    output: str = ""
    model_config: str | None = None
    # data
    caption: str | None = None  # one caption for every image (DreamBooth's instance prompt); "auto": caption first
    captioner: str | None = None  # with caption "auto": the model (default: the captioner setting)
    class_prompt: str | None = None  # with class_images: prior preservation
    class_images: str | None = None
    prior_weight: float = 1.0
    caption_prefix: str = ""  # a trigger word, put before every caption
    repeats: int = 1
    shuffle_captions: bool = False  # shuffle comma-separated tags (the first stays first)
    caption_dropout: float = 0.0
    resolution: int | None = None  # default per family
    center_crop: bool = False  # default: aspect-ratio buckets
    strict: bool = False  # stop on unreadable images instead of skipping them
    # LoRA
    rank: int | None = None
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: list[str] | None = None
    train_text_encoder: bool = False
    # optimisation
    lr: float | None = None
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 0
    max_steps: int | None = None
    epochs: int | None = None
    batch_size: int = 1
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # no, fp16, bf16
    use_8bit_adam: bool = False
    quantize: str = "none"  # nf4 or int8: a frozen base quantized with bitsandbytes (QLoRA; CUDA only)
    noise_offset: float = 0.0
    min_snr_gamma: float | None = 5.0
    ema_decay: float | None = None
    max_grad_norm: float = 1.0
    flux_guidance: float = 1.0  # the guidance input FLUX-dev models are trained with
    seed: int = 0
    # checkpoints, samples, logs
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validation_prompts: list[str] = field(default_factory=list)
    validation_every: int = 0
    validation_steps: int = 20
    save_format: str = "diffusers"  # or kohya
    allow_pickle: bool = False

    def with_family_defaults(self, family: str, model_size: int | None = None) -> "LoraTrainConfig":
        """Unset fields from the family's defaults; the resolution from the model's own default image
        size where it has one (the demo model draws 64x64: training it at 512 would upscale 8x)."""
        from genimg.models.families import FAMILIES

        d = FAMILIES[family].train
        return LoraTrainConfig(**{**asdict(self),
                                  "rank": self.rank or d["rank"], "alpha": self.alpha or d["alpha"],
                                  "resolution": self.resolution or model_size or d["resolution"],
                                  "lr": self.lr or d["lr"],
                                  "target_modules": self.target_modules or list(d["targets"])})

    def validate(self) -> None:
        if self.rank is not None and self.rank <= 0:
            raise UsageError(f"--rank must be at least 1 (got {self.rank})")
        for f in fields(self):  # nan and inf are not numbers a run can use
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{f.name.replace('_', '-')} must be a finite number (got {value})")
        if self.max_steps is None and self.epochs is None:
            raise UsageError("say how long to train: --max-steps N or --epochs N")
        for name in ("max_steps", "epochs", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"--lr must be above 0 (got {self.lr:g}); LoRAs train well at 1e-4")
        if self.warmup_steps < 0 or not 0 <= self.dropout < 1:
            raise UsageError("--warmup-steps must be 0 or more and --dropout between 0 and 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise UsageError(f"--mixed-precision must be no, fp16 or bf16 (got {self.mixed_precision!r})")
        if self.quantize not in ("none", "nf4", "int8"):
            raise UsageError(f"--quantize must be none, nf4 or int8 (got {self.quantize!r})")
        if self.save_format not in ("diffusers", "kohya"):
            raise UsageError(f"--save-format must be diffusers or kohya (got {self.save_format!r})")
        if not 0 <= self.caption_dropout < 1:
            raise UsageError("--caption-dropout must be between 0 and 1")
        if self.repeats < 1:
            raise UsageError("--repeats must be at least 1")
        if self.prior_weight < 0:
            raise UsageError(f"--prior-weight must be 0 or more (got {self.prior_weight})")


FIELD_NAMES = {f.name for f in fields(LoraTrainConfig)}


def load_config_file(path: Path) -> dict:
    from genimg.datafiles import TOMLDecodeError, read_toml

    try:
        table = read_toml(path)
    except (OSError, TOMLDecodeError) as e:
        raise UsageError(f"--config {path}: {e}") from None
    for key in table:
        if key not in FIELD_NAMES:
            raise UsageError(f"--config {path}: unknown setting {key!r}{did_you_mean(key, FIELD_NAMES)}")
    return table


TEMPLATE = '''# genimg lora-train configuration. Flags on the command line override these.
# Use: genimg lora-train --config train.toml

dataset = "my-images"          # folder: images + same-name .txt/.caption, kohya N_name folders, or metadata.jsonl
model = "sd15"                 # alias, hub id, diffusers folder or .safetensors
output = "my-lora"             # gets pytorch_lora_weights.safetensors, checkpoints/, samples/, loss.csv/png
# model_config = "sd15-config" # for a single .safetensors file: a diffusers config folder to build it with
allow_pickle = false           # true lets --model load a pickle checkpoint (.ckpt/.bin/.pt); only ones you trust

# caption = "a photo of sks dog"   # one caption for all images (DreamBooth style); "auto": caption them first
# captioner = "blip"           # with caption = "auto": the captioning model (genimg caption --model)
# class_images = "dogs"        # prior preservation: a folder of class images ...
# class_prompt = "a photo of a dog"   # ... and their caption
prior_weight = 1.0             # weight of the class images' loss
caption_prefix = ""            # trigger word put before every caption
repeats = 1                    # times each image is seen per epoch (kohya folders set their own)
shuffle_captions = false       # shuffle comma-separated tags, keeping the first
caption_dropout = 0.0          # share of steps trained on an empty caption
# resolution = 512             # default: the model's own size (512 SD1.x, 1024 SDXL and FLUX, 64 demo)
center_crop = false            # false: aspect-ratio buckets
strict = false                 # true: stop on an unreadable image instead of skipping it

# rank = 16                    # default: 32 SD1.x, 16 SDXL and FLUX
# alpha = 16                   # default: 16
dropout = 0.0
# target_modules = ["to_q", "to_k", "to_v", "to_out.0"]   # default: the attention projections of the family
train_text_encoder = false     # SD1.x/SDXL only

# lr = 1e-4
lr_scheduler = "constant_with_warmup"   # constant, linear, cosine, cosine_with_restarts, polynomial, ...
warmup_steps = 0
max_steps = 1000               # or, instead, epochs:
# epochs = 10
batch_size = 1
grad_accum = 1
gradient_checkpointing = false
mixed_precision = "no"         # fp16 or bf16 on a GPU (LoRA weights stay fp32)
use_8bit_adam = false          # bitsandbytes' AdamW8bit (CUDA; CPU too with a recent bitsandbytes)
quantize = "none"              # nf4 or int8: train on a bitsandbytes-quantized base (QLoRA; CUDA only)
noise_offset = 0.0
min_snr_gamma = 5.0
# ema_decay = 0.999
max_grad_norm = 1.0            # gradient clipping (0: none)
flux_guidance = 1.0            # FLUX: the guidance input during training
seed = 0

checkpoint_every = 500
keep_checkpoints = 3
validation_prompts = []
validation_every = 0           # steps between sample images (0: none)
validation_steps = 20          # sampling steps of each sample image
save_format = "diffusers"      # or "kohya" (lora_unet_... keys for A1111 / ComfyUI)
'''
