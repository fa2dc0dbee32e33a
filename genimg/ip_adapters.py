"""IP-Adapter: an image as a prompt. ``--ip-adapter IMAGE[,scale=S][,model=NAME|PATH]``, repeatable.

The adapter's weights (``image_proj`` + ``ip_adapter`` in one safetensors file, as h94/IP-Adapter
ships them for SD1.x and SDXL; XLabs' ``ip_adapter_proj_model`` + ``double_blocks`` for FLUX) and the CLIP image encoder it was trained with are found when the run is planned: a named
adapter from ``models/ip_adapters.toml`` in the Hugging Face cache, or a file with an
``image_encoder/`` folder beside it (or beside its folder, h94's layout). diffusers' ``load_ip_adapter``
does the loading; the encoder is loaded here from safetensors and given to the pipeline, so every
pipeline sharing the model's components gets the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from genimg.errors import UsageError, is_out_of_memory, weight_file_errors
from genimg.models.families import FAMILIES

TABLE = Path(__file__).parent / "models" / "ip_adapters.toml"
ENCODER = "image_encoder"


@dataclass(frozen=True)
class IPAdapterInput:
    """One IP-Adapter of a plan: its spec, the files it loads, and its image, read."""
    spec: object  # IPAdapterSpec
    name: str
    weights: str | None  # the safetensors (or, allowed, pickle) file; None: a named one not fetched yet
    encoder: str  # the CLIP image encoder's folder (a named adapter's hub location until fetched)
    image: object  # PIL.Image.Image, RGB
    source_hash: str

    def a1111_value(self) -> str:
        return f"Model: {self.name}, Weight: {self.spec.scale:g}, Image hash: {self.source_hash}"


@lru_cache(maxsize=1)
def named_adapters() -> dict:
    from genimg.datafiles import load_toml

    return load_toml(TABLE)


def read_ip_adapters(specs, ref, allow_pickle: bool = False) -> tuple[IPAdapterInput, ...]:
    """Each ``IPAdapterSpec`` resolved for the model ``ref``: files found, family checked, image read.
    Everything that can be wrong is said here, before any model loads."""
    from genimg.inputs import file_hash, load_image

    if not specs:
        return ()
    if not FAMILIES[ref.family].ip_adapter:
        raise UsageError(f"{FAMILIES[ref.family].label} takes no IP-Adapter; give it the image as a reference "
                         "(genimg edit IMAGE \"instruction\" --ref IMAGE)")
    if FAMILIES[ref.family].ip_adapter == "xlabs" and ref.variant == "inpaint":
        raise UsageError(f"diffusers' FLUX Fill pipeline takes no IP-Adapter; {ref.name} is a Fill model "
                         "(leave out --ip-adapter, or inpaint with a FLUX base model)")
    out = []
    for spec in specs:
        spec.check()
        name, weights, encoder = _locate(spec.model, ref.family, allow_pickle)
        if weights is not None:  # a named adapter's family is its table row's
            _check_family(Path(weights), name, ref)
        image = load_image(spec.image, "IP-Adapter image").convert("RGB")
        out.append(IPAdapterInput(spec, name, weights, encoder, image, file_hash(spec.image)))
    if len({a.encoder for a in out}) > 1:
        raise UsageError("these IP-Adapters need different image encoders ("
                         + ", ".join(f"{a.name}: {a.encoder}" for a in out) + "); use adapters of one encoder together")
    return tuple(out)


def fetch_ip_adapters(adapters: tuple[IPAdapterInput, ...]) -> tuple[IPAdapterInput, ...]:
    """The named adapters' weights and image encoder from the Hugging Face cache, else downloaded."""
    from dataclasses import replace

    from genimg.models.hub import hub_file

    out = []
    for adapter in adapters:
        if adapter.weights is None:
            row = named_adapters()[adapter.name]
            config = Path(hub_file(f"{row['encoder']}/config.json"))
            hub_file(f"{row['encoder']}/model.safetensors")
            adapter = replace(adapter, weights=hub_file(row["weights"]), encoder=str(config.parent))
        out.append(adapter)
    return tuple(out)


def _locate(model: str | None, family: str, allow_pickle: bool) -> tuple[str, str | None, str]:
    """(name, weights file, encoder folder) of ``model``: a file of the user's, or a named adapter (its
    weights None and its encoder's hub location: fetched by :func:`fetch_ip_adapters`)."""
    from genimg.models.checkpoint import PICKLE_SUFFIXES

    table = named_adapters()
    if model is None:
        model = next(n for n, row in table.items() if row["family"] == family and row.get("default"))
    if model in table:
        row = table[model]
        if row["family"] != family:
            raise UsageError(f"IP-Adapter {model} is for {row['family'].upper()} models; use one of "
                             f"{', '.join(n for n, r in table.items() if r['family'] == family)}")
        return model, None, row["encoder"]
    path = Path(model).expanduser()
    if not path.is_file():
        from genimg.errors import did_you_mean

        raise UsageError(f"IP-Adapter {model!r} is neither a file nor a known name{did_you_mean(model, table)}; "
                         f"known: {', '.join(table)} (see `genimg models`)")
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UsageError(f"IP-Adapter {path.name} is a pickle file; use its .safetensors version or pass --allow-pickle")
    for folder in (path.parent / ENCODER, path.parent.parent / ENCODER):
        if (folder / "config.json").is_file():
            if not (folder / "model.safetensors").is_file() and not allow_pickle:
                raise UsageError(f"the image encoder in {folder} has no model.safetensors; convert it or pass --allow-pickle")
            return path.stem, str(path.resolve()), str(folder.resolve())
    raise UsageError(f"IP-Adapter {path.name} needs the CLIP image encoder it was trained with in an {ENCODER}/ "
                     f"folder beside it (h94/IP-Adapter: models/{ENCODER} for SD1.5 and the ViT-H SDXL adapters)")


def _check_family(weights: Path, name: str, ref) -> None:
    """The adapter's layout must be its family's (h94's for SD/SDXL, XLabs' for FLUX) and its image
    tokens as wide as the model's cross-attention (768 SD1.x, 2048 SDXL)."""
    from genimg.adapters import model_cross_dim
    from genimg.models.checkpoint import safetensors_header

    if weights.suffix != ".safetensors":
        return
    header = safetensors_header(weights)
    flux = any(key.startswith("double_blocks.") and "ip_adapter_double_stream" in key for key in header)
    if flux != (FAMILIES[ref.family].ip_adapter == "xlabs"):
        made = "FLUX (XLabs' layout)" if flux else "SD1.x/SDXL (h94's layout)"
        raise UsageError(f"IP-Adapter {name} is made for {made}, not for {ref.name}; use one for its family")
    if flux:
        return
    keys = [key for key in header if key.startswith("ip_adapter.") and key.endswith("to_k_ip.weight")]
    cross = model_cross_dim(ref)
    if not keys:
        raise UsageError(f"{weights.name} is not an IP-Adapter (no ip_adapter.* weights)")
    width = header[keys[0]]["shape"][1]
    if cross and width != cross:
        made = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}.get(width, f"a model {width} wide")
        raise UsageError(f"IP-Adapter {name} was made for {made}, not for {ref.name}; use one for its family")


def apply_ip_adapters(pipe, loaded, adapters: tuple[IPAdapterInput, ...]) -> None:
    """Make ``pipe`` run with exactly ``adapters`` (loaded once per model, the scales set every time)."""
    wanted = tuple(a.weights for a in adapters)
    if loaded.ip_adapter_paths != wanted:
        if loaded.ip_adapter_paths:
            pipe.unload_ip_adapter()  # the UNet's own attention back, the encoder let go
        loaded.ip_adapter_paths, loaded.ip_encoder = (), None
        if adapters:
            from transformers import CLIPVisionModelWithProjection

            # Loaded here, from safetensors (pickle only where read_ip_adapters allowed it), in the
            # pipeline's dtype; load_ip_adapter then keeps it.
            folder = Path(adapters[0].encoder)
            encoder = CLIPVisionModelWithProjection.from_pretrained(
                folder, dtype=pipe.dtype, use_safetensors=(folder / "model.safetensors").is_file())
            _give(pipe, encoder.to(pipe.device))
            # The encoder is given above; each family's loader names "do not load one" its own way.
            no_encoder = ({"image_encoder_pretrained_model_name_or_path": None}
                          if FAMILIES[loaded.ref.family].ip_adapter == "xlabs" else {"image_encoder_folder": None})
            try:
                pipe.load_ip_adapter([str(Path(a.weights).parent) for a in adapters], subfolder=[""] * len(adapters),
                                     weight_name=[Path(a.weights).name for a in adapters], **no_encoder)
            except weight_file_errors() as e:  # shapes or keys that do not fit: one line
                pipe.unload_ip_adapter()
                if is_out_of_memory(e):
                    raise
                raise UsageError(f"cannot load IP-Adapter {adapters[0].name} into {loaded.ref.name}: "
                                 f"{(str(e).strip().splitlines() or [type(e).__name__])[0]}") from None
            loaded.ip_adapter_paths, loaded.ip_encoder = wanted, encoder
    if adapters:
        _give(pipe, loaded.ip_encoder)  # a pipeline of another task made from the same components
        pipe.set_ip_adapter_scale([float(a.spec.scale) for a in adapters])


def _give(pipe, encoder) -> None:
    if getattr(pipe, "image_encoder", None) is not encoder:
        pipe.register_modules(image_encoder=encoder)
    if getattr(pipe, "feature_extractor", None) is None:
        from transformers import CLIPImageProcessor

        size = encoder.config.image_size
        pipe.register_modules(feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
