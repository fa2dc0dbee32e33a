"""genimg's own API: jobs (submit, watch as server-sent events, fetch, cancel), upscaling, and what the
server offers (models, presets, schedulers, styles)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from genimg.errors import UsageError
from genimg.serve.common import NotFound, b64, body, job_or_404, spec_of, submit, worker_of
from genimg.serve.jobs import Worker
from genimg.serve.safety import decoded_image

router = APIRouter()


@router.get("/v1/health")
async def health(worker: Worker = Depends(worker_of)):
    return {"status": "ok", "queued": worker.waiting, "running": len(worker.running),
            "loaded": worker.loaded(), "done": worker.counts["done"]}


async def _spec_request(request: Request) -> tuple[dict, dict[str, bytes], dict]:
    """A ``{"spec": {...}, "files": {name: base64}}`` body: the spec's settings, the decoded uploads, the body."""
    data = await body(request)
    if not isinstance(data.get("spec"), dict):
        raise UsageError("spec: give the generation as a JSON object (the settings `--from` reads)")
    uploads = await asyncio.to_thread(lambda: {name: decoded_image(b64(text, f"files[{name!r}]"), name)
                                               for name, text in (data.get("files") or {}).items()})
    return data["spec"], uploads, data


@router.post("/v1/jobs", status_code=202)
async def post_job(request: Request, worker: Worker = Depends(worker_of)):
    settings, uploads, data = await _spec_request(request)
    return (await asyncio.to_thread(submit, worker, settings, uploads, bool(data.get("fallback")))).view()


@router.post("/v1/plan")
async def post_plan(request: Request, worker: Worker = Depends(worker_of)):
    """A spec planned as its job would be, nothing run (the CLI names and checks its files with this before
    it sends the job): ``{"settings": ..., "seeds": [...], "model": NAME}``."""
    settings, uploads, _ = await _spec_request(request)
    return await asyncio.to_thread(lambda: worker.check(spec_of(settings), uploads))


@router.post("/v1/upscale", status_code=202)
async def post_upscale(request: Request, worker: Worker = Depends(worker_of)):
    """Upscale one uploaded image: ``{"image": BASE64, "name": "photo.png", "settings": {...}}`` (the
    settings of `genimg upscale`: scale, model, tile …)."""
    data = await body(request)
    name = str(data.get("name") or "image.png")

    def submit_one():
        image = decoded_image(b64(data.get("image", ""), "image"), "image")
        return worker.submit_upscale(upscale_settings(data.get("settings") or {}), name, image).view()

    return await asyncio.to_thread(submit_one)


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, worker: Worker = Depends(worker_of)):
    return job_or_404(worker, job_id).view()


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(job_id: str, worker: Worker = Depends(worker_of)):
    job_or_404(worker, job_id)
    return worker.cancel(job_id).view()


@router.get("/v1/jobs/{job_id}/images/{index}")
async def job_image(job_id: str, index: int, worker: Worker = Depends(worker_of)):
    job = job_or_404(worker, job_id)
    if not 0 <= index < len(job.results):
        raise NotFound(f"job {job_id} has no image {index}")
    return FileResponse(job.results[index][0], media_type="image/png")


@router.get("/v1/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, worker: Worker = Depends(worker_of)):
    """Server-sent events: each progress event of the job as it happens, then its end. A client that
    disconnects before the end cancels the job."""
    job = job_or_404(worker, job_id)

    async def stream():
        sent = 0
        try:
            while True:
                while sent < len(job.events):
                    event = job.events[sent]
                    sent += 1
                    yield f"event: {event['event']}\ndata: {json.dumps(event)}\n\n"
                if job.finished.is_set() and sent >= len(job.events):
                    return
                await job.changed(sent)
        finally:
            if not job.finished.is_set():
                worker.cancel(job.id)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/v1/models")
def models(worker: Worker = Depends(worker_of)):
    from genimg.models.resolve import aliases

    table = aliases()
    return {"models": [{"name": name, "family": row.get("family"), "description": row.get("description", "")}
                       for name, row in table.items()], "loaded": worker.loaded(),
            # OpenAI's list (what its SDK's models.list() reads), beside genimg's own fields
            "object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "genimg"} for name in table]}


@router.get("/v1/presets")
def presets():
    from genimg.presets import load_presets

    return {"presets": {name: p.settings() | {"description": p.description} for name, p in load_presets().items()}}


@router.get("/v1/schedulers")
def schedulers():
    from genimg.schedulers import schedulers as table

    return {"schedulers": [{"name": s.name, "families": list(s.families)} for s in table().values()]}


@router.get("/v1/styles")
def styles():
    from genimg.prompting.styles import load_styles

    return {"styles": [{"name": s.name, "prompt": s.prompt, "negative": s.negative} for s in load_styles().values()]}


def upscale_settings(data: dict):
    """`genimg upscale`'s settings from a request's JSON (a field it does not know is an error naming it;
    pickle is never a client's to allow)."""
    from genimg.upscale.run import UpscaleSettings

    if not isinstance(data, dict):
        raise UsageError("settings: give the upscale's settings as a JSON object")
    if "allow_pickle" in data:
        raise UsageError("settings.allow_pickle: not an upscale setting a client gives (the server loads no pickle)")
    return UpscaleSettings.from_dict({k: v for k, v in data.items() if v is not None}, "settings.")  # null: default
