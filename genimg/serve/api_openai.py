"""OpenAI's images API (``/v1/images/generations``, ``/edits`` and ``/variations``) as the ``openai`` SDK and the front-ends
built on it send it."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request

from genimg.errors import UsageError
from genimg.serve.common import body, failed, finished, png_b64, submit, worker_of
from genimg.serve.jobs import Worker
from genimg.serve.safety import decoded_image

router = APIRouter()


# OpenAI's own model names (what front-ends send when no model is set) run the server's default model.
OPENAI_MODELS = ("dall-e-", "gpt-image-")


def _common_fields(data, settings: dict) -> None:
    """What the generation and edit requests share: the model (OpenAI's names: the default model), the size,
    and stream, which this server does not do."""
    if str(data.get("stream", "false")).lower() == "true":
        raise UsageError("stream: this server does not stream partial images; send stream false (or leave it out)")
    model = data.get("model")
    if model and not str(model).startswith(OPENAI_MODELS):
        settings["model"] = model
    if data.get("size") and data["size"] != "auto":
        settings["size"] = data["size"]
    if data.get("response_format", "b64_json") not in ("b64_json", "url"):
        raise UsageError(f"response_format: {data['response_format']!r} is not b64_json or url")


def _images(request: Request, job, data, revised: bool = False) -> dict:
    """OpenAI's answer: each image as base64, or (response_format url) as a URL of the job's image on this
    server, valid while the server keeps the job."""
    out = []
    for n, (path, summary) in enumerate(job.results):
        item = {"url": f"{str(request.base_url).rstrip('/')}/v1/jobs/{job.id}/images/{n}"} \
            if data.get("response_format") == "url" else {"b64_json": png_b64(path)}
        if revised:
            item["revised_prompt"] = summary["settings"]["prompt"]
        out.append(item)
    return {"created": int(time.time()), "data": out}


async def _made(request: Request, worker: Worker, settings: dict, uploads: dict, data, revised: bool = False):
    """Submit the request's job, wait for it, and answer with its images (or OpenAI's error object)."""
    job = await finished(worker, await asyncio.to_thread(submit, worker, settings, uploads), request)
    if job.status != "done":
        return failed(worker, job, "openai")
    return await asyncio.to_thread(_images, request, job, data, revised)


@router.post("/v1/images/generations")
async def openai_generations(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)
    settings = {"prompt": data.get("prompt"), "count": data.get("n", 1)}
    _common_fields(data, settings)
    return await _made(request, worker, settings, {}, data, revised=True)


@router.post("/v1/images/edits")
async def openai_edits(request: Request, worker: Worker = Depends(worker_of)):
    """OpenAI's edits, as a form: ``image`` (or ``image[]``), an optional ``mask`` whose transparent
    pixels mark what to repaint (inpaint), ``prompt``, ``model``, ``n``, ``size``. Without a mask the
    image is edited by instruction where the model has an editor (FLUX.1 Kontext, FLUX.2: several images are
    its references), else redrawn (img2img)."""
    form = await request.form()
    images = form.getlist("image") or form.getlist("image[]")
    if not images or isinstance(images[0], str):
        raise UsageError("image: send the image to edit as a file in the form (multipart/form-data)")
    uploads = {"image.png": await asyncio.to_thread(decoded_image, await images[0].read(), "image")}
    settings = {"prompt": form.get("prompt"), "count": form.get("n", 1), "image": "image.png"}
    _common_fields(form, settings)
    mask = form.get("mask")
    if mask is not None and not isinstance(mask, str):
        data = await mask.read()
        uploads["mask.png"] = await asyncio.to_thread(lambda: openai_mask(decoded_image(data, "mask")))
        settings.update(task="inpaint", mask="mask.png")
    else:
        settings["task"] = await asyncio.to_thread(edit_task, settings.get("model"))
    if len(images) > 1:  # FLUX.2 edits from several images; any other model from one, and says so
        if settings["task"] != "edit" or "mask.png" in uploads:
            raise UsageError(f"image[]: {len(images)} images sent, but this model edits one image; several are "
                             "references for FLUX.2 models (model flux2-klein, flux2-dev)")
        for n, extra in enumerate(images[1:], 1):
            uploads[f"reference-{n}.png"] = await asyncio.to_thread(decoded_image, await extra.read(), f"image[{n}]")
        settings["references"] = [f"reference-{n}.png" for n in range(1, len(images))]
    return await _made(request, worker, settings, uploads, form)


# A variation is the image redrawn by img2img at this strength: the picture's layout and colours kept, its
# details drawn anew (OpenAI's dall-e-2 variations look about this far from their source). Its prompt is the
# image's own when it carries one (a PNG made by genimg or A1111), else this.
VARIATION_STRENGTH = 0.6
VARIATION_PROMPT = "an image"


@router.post("/v1/images/variations")
async def openai_variations(request: Request, worker: Worker = Depends(worker_of)):
    """OpenAI's variations, as a form: ``image``, ``n``, ``size``, ``model``, ``response_format``: each a
    redraw of the image by img2img at :data:`VARIATION_STRENGTH` with its own seed."""
    form = await request.form()
    image = form.get("image")
    if image is None or isinstance(image, str):
        raise UsageError("image: send the image to vary as a file in the form (multipart/form-data)")
    uploads = {"image.png": await asyncio.to_thread(decoded_image, await image.read(), "image")}
    settings = {"prompt": await asyncio.to_thread(_own_prompt, uploads["image.png"]), "count": form.get("n", 1),
                "image": "image.png", "task": "img2img", "strength": VARIATION_STRENGTH}
    _common_fields(form, settings)
    return await _made(request, worker, settings, uploads, form)


def _own_prompt(png: bytes) -> str:
    import io

    from PIL import Image

    from genimg.output.metadata import parse_parameters

    with Image.open(io.BytesIO(png)) as image:
        text = (getattr(image, "text", None) or {}).get("parameters", "")
    return (parse_parameters(text)["prompt"] if text else "").strip() or VARIATION_PROMPT


def openai_mask(data: bytes) -> bytes:
    """OpenAI's mask (transparent = repaint) as genimg's (white = repaint)."""
    import io

    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as mask:
        if "A" not in mask.getbands():
            raise UsageError("mask: OpenAI's mask marks what to repaint by transparency; send a PNG with alpha")
        white_where_clear = ImageOps.invert(mask.getchannel("A"))
    out = io.BytesIO()
    white_where_clear.point(lambda v: 255 if v >= 128 else 0).save(out, format="PNG")
    return out.getvalue()


def edit_task(model: str | None) -> str:
    """``edit`` when ``model``'s family has an instruction editor in the pipeline table, else ``img2img``."""
    from genimg.errors import GenimgError
    from genimg.models.resolve import resolve_model
    from genimg.pipelines import PIPELINES

    try:
        family = resolve_model(model).family
    except GenimgError:
        return "img2img"  # the job itself then says what is wrong with the model
    return "edit" if any(key[:2] == (family, "edit") for key in PIPELINES) else "img2img"
