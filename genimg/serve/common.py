"""What every router of `genimg serve` shares: the request body read and checked, a spec submitted to the
worker, waiting for a job (a client that goes away cancels it), a failed job as an HTTP answer, and the
server's state (``request.app.state``: the worker and A1111's options)."""

from __future__ import annotations

import asyncio
import base64
import json

from fastapi import Request
from fastapi.responses import JSONResponse

from genimg.errors import UsageError
from genimg.serve.jobs import Job, Worker
from genimg.serve.safety import MAX_BODY, checked_spec

RETRY_AFTER = "5"  # seconds a client waits after a 503 (queue full)


class NotFound(UsageError):
    """What a request names (a job, an image of a job) does not exist: a 404."""


# The library's messages name the CLI's flags (or, from the one coercion step, a spec field first); a server's
# client sent fields. Each API's names for the flags and fields its checks mention (a flag not named here
# becomes its spec field: --mask-blur -> mask_blur; a field not named is the API's own word already).
FIELD_NAMES = {
    "genimg": {"--cfg": "guidance", "--width/--height": "width/height", "--lora": "loras", "--control": "controls",
               "--hires": "hires", "--ref": "references"},
    "a1111": {"--cfg": "cfg_scale", "--count": "batch_size × n_iter", "--strength": "denoising_strength",
              "--clip-skip": "CLIP_stop_at_last_layers", "--hires": "hr_scale", "--hires-steps": "hr_second_pass_steps",
              "--hires-strength": "denoising_strength", "--width/--height": "width/height", "--lora": "<lora:…>",
              "--control": "alwayson_scripts.controlnet", "--scheduler": "sampler_name",
              "guidance": "cfg_scale", "strength": "denoising_strength", "scheduler": "sampler_name",
              "negative": "negative_prompt", "count": "batch_size × n_iter", "clip_skip": "CLIP_stop_at_last_layers"},
    "openai": {"--count": "n", "--width/--height": "size", "--width": "size", "--height": "size", "count": "n"},
}


def api_of(path: str) -> str:
    return "a1111" if path.startswith("/sdapi/") else "openai" if path.startswith("/v1/images/") else "genimg"


def in_api_words(message: str, api: str) -> str:
    """``message`` with each CLI flag it names as the API's field (``--width 65 must be …`` -> ``width 65 …``)."""
    import re

    names = FIELD_NAMES[api]

    def field(match):
        flag = match.group(0)
        return names.get(flag, flag[2:].replace("-", "_"))

    message = re.sub(r"--[a-z][a-z0-9-]*(?:/--[a-z][a-z0-9-]*)?", field, message)
    return re.sub(r"^[a-z_]+(?= )", lambda m: names.get(m.group(0), m.group(0)), message)  # a field named first


def worker_of(request: Request) -> Worker:
    return request.app.state.worker


async def body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise UsageError(f"the request is larger than {MAX_BODY // 2**20} MB")
    try:
        data = json.loads(raw or b"{}")
    except ValueError as e:
        raise UsageError(f"the body is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    return data


def spec_of(settings: dict):
    """A request's settings as the spec a server runs (no path opened, pickle never allowed)."""
    from genimg.spec import GenerationSpec

    return checked_spec(GenerationSpec.from_dict(settings))


def submit(worker: Worker, settings: dict, uploads: dict[str, bytes], fallback: bool = False) -> Job:
    """``settings`` as a spec, checked and planned (a blocking call: routes run it in a thread), and queued."""
    return worker.submit(spec_of(settings), uploads, fallback)


async def finished(worker: Worker, job: Job, request: Request) -> Job:
    """Wait for ``job`` (woken by its events, not polling); a client that goes away cancels it (seen by
    :class:`DisconnectWatch`)."""
    gone = request.scope.get(CLIENT_GONE)
    while not job.finished.is_set():
        waits = [asyncio.ensure_future(job.changed(len(job.events)))]
        if gone is not None:
            waits.append(asyncio.ensure_future(gone.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if gone is not None and gone.is_set() and not job.finished.is_set():
            worker.cancel(job.id)
            break
    return job


CLIENT_GONE = "genimg.client_gone"  # the scope key of the event DisconnectWatch sets


class DisconnectWatch:
    """ASGI middleware: once a request's body is read, keep listening on its connection and set
    ``scope[CLIENT_GONE]`` when the client leaves. (FastAPI reads the body before the route runs, so
    ``Request.is_disconnected`` never sees the server's disconnect message: a client that went away while its
    job ran was never noticed.) The app's own later reads get the disconnect once it happens."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        gone = scope[CLIENT_GONE] = asyncio.Event()
        watcher = None

        async def watch():
            if (await receive())["type"] == "http.disconnect":
                gone.set()

        async def app_receive():
            nonlocal watcher
            if watcher is not None:  # the body was read: the watcher owns the connection now
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body"):
                watcher = asyncio.create_task(watch())
            return message

        try:
            await self.app(scope, app_receive, send)
        finally:
            if watcher is not None:
                watcher.cancel()


def failed(worker: Worker, job: Job, api: str = "genimg"):
    """A job that did not finish as an answer: 400 a bad request, 503 the server stopping, 499 cancelled by
    its client, else 500 with the reason."""
    if job.status == "cancelled" and not worker.accepting:
        return error_response("server stopping: the job was cancelled; send it again once the server is back", 503,
                              api, {"Retry-After": RETRY_AFTER})
    status = 400 if job.error_code == 2 else 499 if job.status == "cancelled" else 500
    return error_response(in_api_words(job.error or job.status, api), status, api)


def error_response(message: str, status: int, api: str, headers: dict | None = None) -> JSONResponse:
    """An error as the API's clients read it: OpenAI's SDK an object with message and type, the others a line."""
    if api == "openai":
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                            status_code=status, headers=headers)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def job_or_404(worker: Worker, job_id: str) -> Job:
    if job_id not in worker.jobs:
        raise NotFound(f"no job {job_id} (finished jobs are kept while they are among the server's latest)")
    return worker.jobs[job_id]


def png_b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def image_width(image: bytes) -> int:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        return opened.width


def b64(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise UsageError(f"{what}: expected base64 text")
    if text.startswith("data:"):  # A1111 clients often send data URLs
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise UsageError(f"{what} is not base64") from None
