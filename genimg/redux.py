"""FLUX.1 Redux: an image as FLUX's prompt. ``--redux IMAGE[,scale=S][,model=NAME|FOLDER]``, repeatable.

Redux (diffusers' ``FluxPriorReduxPipeline``) encodes the image with SigLIP and maps it to tokens as wide
as T5's, which are appended to the prompt's T5 tokens; the FLUX pipeline then runs on those embeddings
instead of the prompt's text. ``scale`` is the prior's ``prompt_embeds_scale`` and
``pooled_prompt_embeds_scale`` (it scales the prompt's part too, as diffusers does), and the embeddings of
several images are added together. The prior is given the FLUX model's own text encoders, so the prompt
still counts. The model is the family's (families.toml ``redux``) unless ``model=`` names a hub id or a
folder holding a ``FluxPriorReduxPipeline``; only its image components are fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from genimg.errors import UsageError

COMPONENTS = ("image_encoder", "feature_extractor", "image_embedder")


@dataclass(frozen=True)
class ReduxInput:
    """One Redux image of a plan: its spec, the Redux model (a folder, or a hub id until fetched), the image."""
    spec: object  # ReduxSpec
    location: str
    image: object  # PIL.Image.Image, RGB
    source_hash: str


def read_redux(specs, ref) -> tuple[ReduxInput, ...]:
    """Each ``ReduxSpec`` checked for the model ``ref`` and its image read, before any model loads."""
    from genimg.inputs import file_hash, load_image
    from genimg.models.families import get_family

    if not specs:
        return ()
    default = get_family(ref.family).redux
    if not default:
        raise UsageError(f"--redux is FLUX.1's image prompt (FLUX.1 Redux), and {ref.name} is not a FLUX model; "
                         "use --ip-adapter IMAGE for an image prompt")
    out = []
    for spec in specs:
        spec.check()
        location = _locate(spec.model or default)
        image = load_image(spec.image, "Redux image").convert("RGB")
        out.append(ReduxInput(spec, location, image, file_hash(spec.image)))
    if len({r.location for r in out}) > 1:
        raise UsageError("every --redux image of a generation goes through one Redux model; name the same model= "
                         "for all of them")
    return tuple(out)


def _locate(model: str) -> str:
    """A folder holding a FluxPriorReduxPipeline, or a hub id (org/name) left to :func:`fetch_redux`."""
    path = Path(model).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        kind = json.loads(index.read_text()).get("_class_name") if index.is_file() else None
        if kind != "FluxPriorReduxPipeline":
            raise UsageError(f"Redux model {model}: {path} holds no FluxPriorReduxPipeline (model_index.json "
                             f"names {kind or 'nothing'}); give the folder of FLUX.1-Redux-dev or its hub id")
        return str(path.resolve())
    if model.count("/") != 1 or path.exists():
        raise UsageError(f"Redux model {model!r} is neither a folder nor a hub id (org/name)")
    return model


def fetch_redux(inputs: tuple[ReduxInput, ...]) -> tuple[ReduxInput, ...]:
    """The Redux model's image components from the Hugging Face cache, else downloaded (never its text
    encoders: the FLUX model's own are used)."""
    if not inputs or Path(inputs[0].location).is_dir():
        return inputs
    from huggingface_hub import snapshot_download

    from genimg.models.hub import hub_error

    repo = inputs[0].location
    try:
        folder = snapshot_download(repo, allow_patterns=["model_index.json", *(f"{c}/*" for c in COMPONENTS)])
    except Exception as e:  # noqa: BLE001 - hub_error says what went wrong in one line
        raise hub_error(repo, e) from None
    return tuple(replace(r, location=folder) for r in inputs)


def prior_for(loaded, pipe, location: str):
    """The Redux prior from ``location``, kept with the loaded model and sharing ``pipe``'s text encoders."""
    import diffusers

    kept = loaded.redux
    if kept and kept[0] == location and kept[1].text_encoder_2 is pipe.text_encoder_2:
        return kept[1]
    prior = diffusers.FluxPriorReduxPipeline.from_pretrained(
        location, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, text_encoder_2=pipe.text_encoder_2,
        tokenizer_2=pipe.tokenizer_2, dtype=pipe.dtype)
    for name in ("image_encoder", "image_embedder"):  # the text encoders stay where the model's pipeline keeps them
        getattr(prior, name).to(pipe.device)
    loaded.redux = (location, prior)
    return prior


def redux_prompts(prior, kwargs: dict, inputs: tuple[ReduxInput, ...]) -> dict:
    """``kwargs`` of the FLUX pipeline with each image's prompt replaced by Redux's embeddings of it and
    the images (as ``FluxPriorReduxPipeline`` makes them)."""
    import torch

    scales = [float(r.spec.scale) for r in inputs]
    embeds, pooled = [], []
    for text in kwargs["prompt"]:
        made = prior(image=[r.image for r in inputs], prompt=[text] * len(inputs), prompt_embeds_scale=scales,
                     pooled_prompt_embeds_scale=scales)
        embeds.append(made.prompt_embeds)
        pooled.append(made.pooled_prompt_embeds)
    rest = {k: v for k, v in kwargs.items() if k != "prompt"}
    return {**rest, "prompt_embeds": torch.cat(embeds), "pooled_prompt_embeds": torch.cat(pooled)}
