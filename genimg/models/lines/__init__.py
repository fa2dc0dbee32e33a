"""Model lines as objects: what a line does its own way that its data (families.toml, aliases.toml, the
pipeline table) cannot say.

One module per line, named for it (``sd.py`` for SD 1.x/2.x, ``sdxl.py``, ``flux.py`` for FLUX.1,
``flux2.py`` for FLUX.2), each holding one :class:`ModelLine` named ``LINE``; families.toml's ``line`` names
the module, and :func:`genimg.models.families.line_of` finds it. Nothing outside this package decides by a
family's name: code asks the line. A line needing none of the behaviour below needs no module (it gets
:class:`ModelLine` as it is). Torch and diffusers are imported inside the methods: planning asks lines
questions before anything heavy is loaded.
"""

from __future__ import annotations


class ModelLine:
    """The defaults: what a line without a module of its own does. Each method is a question code asks."""

    name = ""
    # The training objective's class (see sd.Objective); None: lora-train does not train the line.
    objective = None

    # -- prompts -------------------------------------------------------------------------------------
    def prompt_encoders(self, pipe) -> list[tuple]:
        """(tokenizer, text encoder) pairs A1111-style prompt encoding runs, in order."""
        return [(pipe.tokenizer, pipe.text_encoder)]

    def prompt_hidden(self, encoder, out, clip_skip: int | None):
        """The hidden states a pipeline of the line reads from ``out`` (a CLIP output with hidden states)."""
        return out[0]

    pooled_prompt = False  # the line's pipelines take a pooled prompt embedding too (SDXL)

    def cut_prompt(self, pipe, text: str, limit: int) -> str | None:
        """The end of ``text`` the text encoder does not read at ``max_sequence_length`` ``limit`` (None: all)."""
        return None

    # -- inputs --------------------------------------------------------------------------------------
    def check_reference(self, what: str, size: tuple[int, int]) -> None:
        """Raise a UsageError for an image too small to edit from (before loading)."""

    # A textual inversion's tensors, one per prompt encoder in order (SDXL: clip_l, clip_g); (): one tensor
    # as wide as the single encoder (SD 1.x/2.x's ``emb_params``).
    embedding_keys: tuple[str, ...] = ()

    # -- running -------------------------------------------------------------------------------------
    def control_mode_arguments(self, control_arg: str, maps: list, modes: list) -> dict:
        """The pipeline arguments for union ControlNets' maps and their modes (one mode per map)."""
        return {control_arg: maps, "control_mode": modes}

    # Seamless tiling wraps the denoiser's convolutions (a UNet's); a transformer line has none to wrap.
    seamless_tiling = True
    refines = False  # the line has a refiner that finishes its base model's last steps (SDXL's)

    def noise_shape(self, pipe, width: int, height: int) -> tuple[int, ...]:
        """The shape (without the batch) of the initial noise the line's txt2img pipeline draws for an image of
        ``width`` × ``height``: a UNet's latents (channels, height / 8, width / 8)."""
        scale = pipe.vae_scale_factor
        return (pipe.unet.config.in_channels, height // scale, width // scale)

    def noise_as_latents(self, pipe, noise):
        """Initial noise ``[B, *noise_shape]`` as the pipeline's ``latents`` argument takes it."""
        return noise

    def black_image_advice(self, ref) -> str:
        """More to try when the VAE decoded NaN, after --vae-fp32 (e.g. a fixed VAE the line has)."""
        return ""

    def fill_variant(self, task: str) -> str | None:
        """The pipeline-table modifier of a dedicated inpainting model's ``task`` (None: the task's own)."""
        return None

    # -- training ------------------------------------------------------------------------------------
    def kohya_state(self, peft_layers: dict, denoiser) -> dict | None:
        """A trained LoRA in kohya's names where the line has its own (None: diffusers' conversion)."""
        return None

    def kohya_name(self, key: str) -> str:
        """One key of diffusers' kohya conversion as the line's kohya files name it."""
        return key

    @property
    def train_vae_dtype(self):
        """The dtype the VAE encodes training latents in (None: the mixed precision's)."""
        return None
