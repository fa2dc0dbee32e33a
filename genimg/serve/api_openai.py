"""OpenAI's images API (``/v1/images/generations`` and ``/edits``) as the ``openai`` SDK and the front-ends
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


@router.post("/v1/images/generations")
async def openai_generations(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)
    if data.get("response_format", "b64_json") != "b64_json":
        raise UsageError("response_format: this server answers b64_json only")
    settings = {"prompt": data.get("prompt"), "count": data.get("n", 1)}
    if data.get("model"):
        settings["model"] = data["model"]
    if data.get("size") and data["size"] != "auto":
        settings["size"] = data["size"]
    job = await finished(worker, await asyncio.to_thread(submit, worker, settings, {}), request)
    if job.status != "done":
        return failed(worker, job)
    return {"created": int(time.time()),
            "data": [{"b64_json": png_b64(path),
                      "revised_prompt": summary["settings"]["prompt"]} for path, summary in job.results]}


@router.post("/v1/images/edits")
async def openai_edits(request: Request, worker: Worker = Depends(worker_of)):
    """OpenAI's edits, as a form: ``image`` (or ``image[]``), an optional ``mask`` whose transparent
    pixels mark what to repaint (inpaint), ``prompt``, ``model``, ``n``, ``size``. Without a mask the
    image is edited by instruction where the model has an editor (FLUX.1 Kontext), else redrawn (img2img)."""
    form = await request.form()
    images = form.getlist("image") or form.getlist("image[]")
    if not images or isinstance(images[0], str):
        raise UsageError("image: send the image to edit as a file in the form (multipart/form-data)")
    if form.get("response_format", "b64_json") != "b64_json":
        raise UsageError("response_format: this server answers b64_json only")
    uploads = {"image.png": decoded_image(await images[0].read(), "image")}
    settings = {"prompt": form.get("prompt"), "count": form.get("n", 1), "image": "image.png"}
    if form.get("model"):
        settings["model"] = form["model"]
    if form.get("size") and form["size"] != "auto":
        settings["size"] = form["size"]
    mask = form.get("mask")
    if mask is not None and not isinstance(mask, str):
        uploads["mask.png"] = openai_mask(decoded_image(await mask.read(), "mask"))
        settings.update(task="inpaint", mask="mask.png")
    else:
        settings["task"] = edit_task(settings.get("model"))
    job = await finished(worker, await asyncio.to_thread(submit, worker, settings, uploads), request)
    if job.status != "done":
        return failed(worker, job)
    return {"created": int(time.time()),
            "data": [{"b64_json": png_b64(path)} for path, _ in job.results]}


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
