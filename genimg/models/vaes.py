"""``--vae``: another VAE for a model — an alias (``taesd``, ``sdxl-vae-fp16-fix``, see vaes.toml), a
hub id, a diffusers folder (``config.json`` of an ``AutoencoderKL`` or ``AutoencoderTiny``) or a
single ``.safetensors`` file (A1111's ``models/VAE``). It must read the model's latents: as many
channels, the same downscale."""

from __future__ import annotations

import json
from pathlib import Path

from genimg.errors import UsageError
from genimg.models.checkpoint import PICKLE_SUFFIXES
from genimg.models.resolve import HUB_ID, ModelRef

ALIAS_FILE = Path(__file__).with_name("vaes.toml")
CLASSES = ("AutoencoderKL", "AutoencoderTiny")


def vae_aliases() -> dict[str, dict]:
    from genimg.datafiles import load_toml

    return load_toml(ALIAS_FILE)


def check_vae(text: str, ref: ModelRef, allow_pickle: bool = False) -> str:
    """``--vae TEXT`` checked against the model it goes into; returns where to load it from (a hub id,
    a folder or a file, absolute)."""
    table = vae_aliases()
    if text in table:
        row = table[text]
        if row["family"] != ref.family:
            others = [name for name, r in table.items() if r["family"] == ref.family]
            raise UsageError(f"VAE {text} is for {row['family']} models, not {ref.name} ({ref.family}); "
                             f"for it: {', '.join(others) or 'none built in'}")
        text = row["repo"]
    path = Path(text).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise UsageError(f"VAE folder {path} has no config.json; pass a diffusers VAE folder or a .safetensors file")
        _check_fits(json.loads(config.read_text()), ref, path.name)
        return str(path.resolve())
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise UsageError(f"VAE {path.name} is a pickle file, which can run arbitrary code when loaded; convert it "
                             "to .safetensors, or pass --allow-pickle if you trust its source")
        if suffix == ".safetensors":
            _check_file(path, ref)
        elif suffix not in PICKLE_SUFFIXES:
            raise UsageError(f"--vae takes a .safetensors file, a folder, a hub id or an alias, not {path.name}")
        return str(path.resolve())
    if HUB_ID.match(text) and not text.startswith((".", "~")):
        from genimg.models.hub import repo_config

        _check_fits(repo_config(text, "VAE"), ref, text)
        return text
    raise UsageError(f"VAE {text!r} is not an alias ({', '.join(table)}), a folder, a file or a hub id (org/name)")


def _model_vae_config(ref: ModelRef) -> dict | None:
    """The model's own VAE config, where it is on disk without loading anything."""
    if ref.kind == "folder":
        config = Path(ref.location) / "vae" / "config.json"
        return json.loads(config.read_text()) if config.is_file() else None
    if ref.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref.location, "vae/config.json")
        return json.loads(Path(found).read_text()) if isinstance(found, str) else None
    return None


def _shape(config: dict) -> tuple[int, int]:
    """(latent channels, downscale levels) of a VAE config, AutoencoderKL's or AutoencoderTiny's."""
    blocks = config.get("block_out_channels") or config.get("decoder_block_out_channels") or (0,) * 4
    return config.get("latent_channels", 4), len(blocks)


def _model_shape(ref: ModelRef) -> tuple[int, int | None]:
    """(latent channels, downscale levels) the model's latents have: from its own VAE config, else the
    family's channels (levels unknown)."""
    own = _model_vae_config(ref)
    from genimg.models.families import FAMILIES

    return _shape(own) if own else (FAMILIES[ref.family].latent_channels, None)


def _check_fits(config: dict, ref: ModelRef, name: str) -> None:
    cls = config.get("_class_name")
    if cls not in CLASSES:
        raise UsageError(f"{name} is a {cls or 'model of unknown class'}, not a VAE ({' or '.join(CLASSES)})")
    wanted, got = _model_shape(ref), _shape(config)
    if got[0] != wanted[0] or (wanted[1] is not None and got[1] != wanted[1]):
        raise UsageError(f"VAE {name} reads {got[0]}-channel latents downscaled {2 ** (got[1] - 1)}x, but {ref.name}'s "
                         f"are {wanted[0]}-channel" + (f", {2 ** (wanted[1] - 1)}x" if wanted[1] else "")
                         + "; use a VAE made for its family")


def _check_file(path: Path, ref: ModelRef) -> None:
    """A single-file VAE: its decoder's first convolution says how many latent channels it reads."""
    from genimg.models.checkpoint import safetensors_header

    header = safetensors_header(path)
    conv = next((v for k, v in header.items() if k.endswith("decoder.conv_in.weight")), None)
    if conv is None:
        raise UsageError(f"{path.name} holds no VAE decoder (no decoder.conv_in weights); is it a VAE?")
    channels = _model_shape(ref)[0]
    if conv["shape"][1] != channels:
        raise UsageError(f"VAE {path.name} reads {conv['shape'][1]}-channel latents, but {ref.name}'s are "
                         f"{channels}-channel; use a VAE made for its family")


def vae_name(location: str) -> str:
    """How metadata names the VAE (A1111 writes the file name)."""
    return Path(location).name if Path(location).exists() else location


def load_vae(ref: ModelRef, dtype):
    """The model's other VAE (``ref.vae``, from :func:`check_vae`) as a diffusers model in ``dtype``."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    location = ref.vae
    path = Path(location)
    if path.is_file():
        # Its architecture comes from the model's own VAE config, so nothing is fetched for it.
        config = {"config": ref.location, "subfolder": "vae"} if ref.kind != "single_file" else (
            {"config": ref.config, "subfolder": "vae"} if ref.config else {})
        return AutoencoderKL.from_single_file(str(path), dtype=dtype, **config)
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
    else:
        from genimg.models.hub import repo_config

        config = repo_config(location, "VAE")
    cls = AutoencoderTiny if config.get("_class_name") == "AutoencoderTiny" else AutoencoderKL
    vae = cls.from_pretrained(location, dtype=dtype, use_safetensors=None if ref.allow_pickle else True)
    if cls is AutoencoderTiny:
        # Pipelines take the VAE's downscale from block_out_channels, which AutoencoderTiny's config
        # calls decoder_block_out_channels (diffusers' own examples swap it in after construction).
        vae.register_to_config(block_out_channels=tuple(vae.config.decoder_block_out_channels))
    return vae
