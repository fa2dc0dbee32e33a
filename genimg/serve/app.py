"""The HTTP side of `genimg serve`: genimg's own API, A1111's and OpenAI's images API, on one worker.

Every route builds a :class:`GenerationSpec` through the one way in (``GenerationSpec.from_dict``) and hands
it to the worker, which runs it through ``plan``/``run`` as the CLI does; no route generates on its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

from genimg.errors import UsageError
from genimg.serve.jobs import Job, QueueFull, Worker
from genimg.serve.safety import MAX_BODY, checked_spec, decoded_image

log = logging.getLogger("genimg.serve")
RETRY_AFTER = "5"  # seconds a client waits after a 503 (queue full)

# A1111 request fields genimg maps (to GenerationSpec names); the rest are ignored with a note.
A1111_FIELDS = {"prompt": "prompt", "negative_prompt": "negative", "steps": "steps", "cfg_scale": "guidance",
                "width": "width", "height": "height", "seed": "seed", "sampler_name": "scheduler",
                "denoising_strength": "strength", "batch_size": "batch_size", "styles": "styles"}
A1111_HANDLED = set(A1111_FIELDS) | {"n_iter", "scheduler", "init_images", "mask", "override_settings",
                                     "send_images", "save_images", "inpainting_mask_invert", "mask_blur",
                                     "resize_mode", "alwayson_scripts", "enable_hr", "hr_scale"}


def create_app(worker: Worker, token: str | None = None) -> FastAPI:
    app = FastAPI(title="genimg", docs_url=None, redoc_url=None)
    options = {"sd_model_checkpoint": None}  # A1111's /options: the model a request without one uses

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token and request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "a token is required: send Authorization: Bearer TOKEN"}, status_code=401)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"error": f"the request is larger than {MAX_BODY // 2**20} MB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(UsageError)
    async def usage_error(request, error: UsageError):
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(QueueFull)
    async def queue_full(request, error: QueueFull):
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": RETRY_AFTER})

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

    def submit(settings: dict, uploads: dict[str, bytes]) -> Job:
        from genimg.spec import GenerationSpec

        spec = checked_spec(GenerationSpec.from_dict(settings))
        return worker.submit(spec, uploads)

    async def finished(job: Job, request: Request) -> Job:
        """Wait for ``job``; a client that goes away cancels it."""
        while not job.finished.is_set():
            if await request.is_disconnected():
                worker.cancel(job.id)
                break
            await asyncio.sleep(0.05)
        return job

    def failed(job: Job):
        status = 400 if job.error_code == 2 else 499 if job.status == "cancelled" else 500
        return JSONResponse({"error": job.error or job.status, "status": job.status}, status_code=status)

    # -- the page -----------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def page():
        from genimg.models.resolve import aliases
        from genimg.prompting.styles import load_styles

        return render_page(list(aliases()), list(load_styles()))

    @app.get("/v1/gallery")
    async def gallery():
        """Every image this server made, newest first, with its settings and the command that remakes it."""
        made = [{"url": f"/v1/jobs/{job.id}/images/{n}", "settings": summary["settings"], "model": summary["model"],
                 "command": remake_command(summary["settings"]), "made": job.submitted}
                for job in worker.jobs.values() for n, (_, summary) in enumerate(job.results)]
        return {"images": sorted(made, key=lambda image: -image["made"])}

    # -- genimg's own API ------------------------------------------------------------------------------
    @app.get("/v1/health")
    async def health():
        return {"status": "ok", "queued": worker.queue.qsize(), "running": len(worker.running),
                "loaded": worker.loaded(), "done": worker.counts["done"]}

    @app.post("/v1/jobs", status_code=202)
    async def post_job(request: Request):
        data = await body(request)
        if not isinstance(data.get("spec"), dict):
            raise UsageError("spec: give the generation as a JSON object (the settings `--from` reads)")
        uploads = {name: decoded_image(_b64(text, f"files[{name!r}]"), name)
                   for name, text in (data.get("files") or {}).items()}
        return submit(data["spec"], uploads).view()

    @app.post("/v1/upscale", status_code=202)
    async def post_upscale(request: Request):
        """Upscale one uploaded image: ``{"image": BASE64, "name": "photo.png", "settings": {...}}`` (the
        settings of `genimg upscale`: scale, model, tile …)."""
        data = await body(request)
        name = str(data.get("name") or "image.png")
        image = decoded_image(_b64(data.get("image", ""), "image"), "image")
        return worker.submit_upscale(upscale_settings(data.get("settings") or {}), name, image).view()

    def job_or_404(job_id: str) -> Job:
        if job_id not in worker.jobs:
            raise UsageError(f"no job {job_id}")
        return worker.jobs[job_id]

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: str):
        return job_or_404(job_id).view()

    @app.delete("/v1/jobs/{job_id}")
    async def cancel_job(job_id: str):
        job_or_404(job_id)
        return worker.cancel(job_id).view()

    @app.get("/v1/jobs/{job_id}/images/{index}")
    async def job_image(job_id: str, index: int):
        job = job_or_404(job_id)
        if not 0 <= index < len(job.results):
            raise UsageError(f"job {job_id} has no image {index}")
        return FileResponse(job.results[index][0], media_type="image/png")

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        """Server-sent events: each progress event of the job as it happens, then its end. A client that
        disconnects before the end cancels the job."""
        job = job_or_404(job_id)

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
                    await asyncio.sleep(0.05)
            finally:
                if not job.finished.is_set():
                    worker.cancel(job.id)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models():
        from genimg.models.resolve import aliases

        return {"models": [{"name": name, "family": row.get("family"), "description": row.get("description", "")}
                           for name, row in aliases().items()], "loaded": worker.loaded()}

    @app.get("/v1/presets")
    async def presets():
        from genimg.presets import load_presets

        return {"presets": {name: p.settings() | {"description": p.description} for name, p in load_presets().items()}}

    @app.get("/v1/schedulers")
    async def schedulers():
        from genimg.schedulers import schedulers as table

        return {"schedulers": [{"name": s.name, "families": list(s.families)} for s in table().values()]}

    @app.get("/v1/styles")
    async def styles():
        from genimg.prompting.styles import load_styles

        return {"styles": [{"name": s.name, "prompt": s.prompt, "negative": s.negative} for s in load_styles().values()]}

    # -- A1111's API (as its clients use it) -------------------------------------------------------------
    async def a1111(request: Request, task: str):
        data = await body(request)
        settings, uploads = a1111_settings(data, task, options)
        job = await finished(submit(settings, uploads), request)
        if job.status != "done":
            return failed(job)
        images = [base64.b64encode(path.read_bytes()).decode() for path, _ in job.results]
        return {"images": images, "parameters": {k: v for k, v in data.items() if k not in ("init_images", "mask")},
                "info": json.dumps(a1111_info(job))}

    @app.post("/sdapi/v1/txt2img")
    async def a1111_txt2img(request: Request):
        return await a1111(request, "txt2img")

    @app.post("/sdapi/v1/img2img")
    async def a1111_img2img(request: Request):
        return await a1111(request, "img2img")

    @app.get("/sdapi/v1/sd-models")
    async def a1111_models():
        from genimg.models.resolve import aliases

        return [{"title": name, "model_name": name, "hash": None, "filename": name} for name in aliases()]

    @app.get("/sdapi/v1/samplers")
    async def a1111_samplers():
        from genimg.schedulers import schedulers as table

        return [{"name": name, "aliases": [], "options": {}} for name in table()]

    @app.get("/sdapi/v1/schedulers")
    async def a1111_schedulers():
        # A1111 1.9+ splits a sampler from its schedule; genimg's sampler names carry both ("DPM++ 2M Karras")
        return [{"name": name, "label": name.title()} for name in ("automatic", "karras", "exponential", "sgm_uniform")]

    @app.get("/sdapi/v1/loras")
    async def a1111_loras():
        from genimg.prompting.inline import lora_dirs

        files = [p for d in lora_dirs() if d.is_dir() for p in sorted(d.rglob("*.safetensors"))]
        return [{"name": p.stem, "alias": p.stem} for p in files]  # names only: a client sees no paths

    @app.get("/sdapi/v1/upscalers")
    async def a1111_upscalers():
        from genimg.upscale.models import upscaler_aliases

        return [{"name": name, "model_name": name, "scale": None} for name in upscaler_aliases()]

    @app.post("/sdapi/v1/png-info")
    async def a1111_png_info(request: Request):
        import io

        from PIL import Image

        from genimg.output.metadata import parse_parameters

        data = await body(request)
        png = decoded_image(_b64(data.get("image", ""), "image"), "image")
        with Image.open(io.BytesIO(png)) as image:
            text = dict(getattr(image, "text", {}) or {})
        info = text.get("parameters", "")
        return {"info": info, "items": text, "parameters": parse_parameters(info) if info else {}}

    @app.post("/sdapi/v1/extra-single-image")
    async def a1111_extra_single_image(request: Request):
        data = await body(request)
        image = decoded_image(_b64(data.get("image", ""), "image"), "image")
        settings = a1111_upscale_settings(data, _width(image))
        job = await finished(worker.submit_upscale(settings, "image.png", image), request)
        if job.status != "done":
            return failed(job)
        return {"html_info": f"Postprocess upscaler: {job.results[0][1]['upscaler']}",
                "image": base64.b64encode(job.results[0][0].read_bytes()).decode()}

    @app.post("/sdapi/v1/extra-batch-images")
    async def a1111_extra_batch_images(request: Request):
        data = await body(request)
        settings = a1111_upscale_settings(data)
        jobs = [worker.submit_upscale(settings, str(item.get("name") or f"{n}.png"),
                                      decoded_image(_b64(item.get("data", ""), f"imageList[{n}]"), f"imageList[{n}]"))
                for n, item in enumerate(data.get("imageList") or [])]
        if not jobs:
            raise UsageError("imageList: give at least one image ({\"data\": BASE64, \"name\": ...})")
        images = []
        for job in jobs:
            job = await finished(job, request)
            if job.status != "done":
                return failed(job)
            images.append(base64.b64encode(job.results[0][0].read_bytes()).decode())
        return {"html_info": "", "images": images}

    @app.get("/sdapi/v1/options")
    async def a1111_options():
        return dict(options)

    @app.post("/sdapi/v1/options")
    async def a1111_set_options(request: Request):
        data = await body(request)
        if "sd_model_checkpoint" in data:
            options["sd_model_checkpoint"] = data["sd_model_checkpoint"]
        return None

    @app.get("/sdapi/v1/progress")
    async def a1111_progress():
        job = worker.current
        steps = [e for e in (job.events if job else []) if e["event"] == "step"]
        last = steps[-1] if steps else None
        return {"progress": last["step"] / last["total"] if last else 0.0, "eta_relative": 0.0,
                "state": {"job_count": worker.queue.qsize() + bool(job), "sampling_step": last["step"] if last else 0,
                          "sampling_steps": last["total"] if last else 0}, "current_image": None}

    @app.post("/sdapi/v1/interrupt")
    async def a1111_interrupt():
        if worker.current is not None:
            worker.cancel(worker.current.id)
        return None

    # -- OpenAI's images API -------------------------------------------------------------------------------
    @app.post("/v1/images/generations")
    async def openai_generations(request: Request):
        data = await body(request)
        if data.get("response_format", "b64_json") != "b64_json":
            raise UsageError("response_format: this server answers b64_json only")
        settings = {"prompt": data.get("prompt"), "count": data.get("n", 1)}
        if data.get("model"):
            settings["model"] = data["model"]
        if data.get("size") and data["size"] != "auto":
            settings["size"] = data["size"]
        job = await finished(submit(settings, {}), request)
        if job.status != "done":
            return failed(job)
        return {"created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(path.read_bytes()).decode(),
                          "revised_prompt": summary["settings"]["prompt"]} for path, summary in job.results]}

    @app.post("/v1/images/edits")
    async def openai_edits(request: Request):
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
        job = await finished(submit(settings, uploads), request)
        if job.status != "done":
            return failed(job)
        return {"created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(path.read_bytes()).decode()} for path, _ in job.results]}

    return app


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


def _width(image: bytes) -> int:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        return opened.width


def _b64(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise UsageError(f"{what}: expected base64 text")
    if text.startswith("data:"):  # A1111 clients often send data URLs
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise UsageError(f"{what} is not base64") from None


def a1111_settings(data: dict, task: str, options: dict) -> tuple[dict, dict]:
    """An A1111 request as genimg settings and uploads; fields genimg does not map are logged and ignored."""
    from genimg.output.metadata import sampler_name

    unknown = sorted(set(data) - A1111_HANDLED)
    if unknown:
        log.info("A1111 request: ignored fields %s", ", ".join(unknown))
    settings = {name: data[key] for key, name in A1111_FIELDS.items() if key in data and data[key] not in (None, "")}
    if settings.get("seed") == -1:
        settings.pop("seed")  # A1111's "random"
    if "scheduler" in settings:
        settings["scheduler"] = sampler_name(settings["scheduler"], str(data.get("scheduler") or ""))
    settings["count"] = int(data.get("batch_size") or 1) * int(data.get("n_iter") or 1)
    model = (data.get("override_settings") or {}).get("sd_model_checkpoint") or options.get("sd_model_checkpoint")
    if model:
        settings["model"] = str(model).split(" [")[0]  # A1111 titles read "name [hash]"
    uploads = {}
    if task == "img2img":
        images = data.get("init_images") or []
        if not images:
            raise UsageError("init_images: img2img needs an image (base64)")
        uploads["init.png"] = decoded_image(_b64(images[0], "init_images[0]"), "init_images[0]")
        settings.update(task="img2img", image="init.png")
        if data.get("mask"):
            uploads["mask.png"] = decoded_image(_b64(data["mask"], "mask"), "mask")
            settings.update(task="inpaint", mask="mask.png", invert_mask=bool(data.get("inpainting_mask_invert")),
                            mask_blur=data.get("mask_blur", 4))
    controls, control_uploads = a1111_controls(data, uploads)
    if controls:
        settings["control"] = controls
        uploads.update(control_uploads)
    return settings, uploads


# sd-webui-controlnet's preprocessor ("module") names -> genimg's control types.
A1111_MODULES = {"none": "none", "canny": "canny", "depth": "depth", "depth_midas": "depth_midas",
                 "depth_zoe": "depth", "depth_anything": "depth", "depth_anything_v2": "depth", "openpose": "openpose",
                 "openpose_full": "openpose_full", "dw_openpose_full": "openpose_full", "lineart_realistic": "lineart",
                 "lineart_standard": "lineart", "lineart_coarse": "lineart_coarse", "lineart_anime": "lineart_anime",
                 "softedge_hed": "softedge", "softedge_hedsafe": "softedge", "softedge_pidinet": "softedge_pidinet",
                 "softedge_pidisafe": "softedge_pidinet", "scribble_hed": "scribble", "scribble_pidinet": "scribble_pidinet",
                 "mlsd": "mlsd", "normal_bae": "normal", "seg_ofade20k": "seg", "seg_ufade20k": "seg",
                 "shuffle": "shuffle", "tile_resample": "tile", "mediapipe_face": "mediapipe_face"}


def a1111_controls(data: dict, uploads: dict) -> tuple[list[dict], dict]:
    """``alwayson_scripts.controlnet.args`` (sd-webui-controlnet's API) as genimg controls and their uploads:
    module -> type, model "name [hash]" -> a ControlNet alias, lllyasviel's hub id or a name in the server's
    folders, weight, guidance_start/end, canny's threshold_a/b. A unit without its own image takes the
    img2img input, as the extension does."""
    from genimg.models.controlnets import controlnet_aliases

    units = ((data.get("alwayson_scripts") or {}).get("controlnet") or {}).get("args") or []
    controls, files = [], {}
    for n, unit in enumerate(units):
        if not isinstance(unit, dict) or not unit.get("enabled", True):
            continue
        module = str(unit.get("module") or "none")
        if module not in A1111_MODULES:
            raise UsageError(f"alwayson_scripts.controlnet.args[{n}].module: {module!r} is not one genimg has "
                             f"(it has {', '.join(sorted(A1111_MODULES))})")
        image = unit.get("image", unit.get("input_image"))
        if isinstance(image, dict):
            image = image.get("image")
        if image:
            name = f"control-{n}.png"
            files[name] = decoded_image(_b64(image, f"alwayson_scripts.controlnet.args[{n}].image"), name)
        elif "init.png" in uploads:
            name = "init.png"
        else:
            raise UsageError(f"alwayson_scripts.controlnet.args[{n}].image: a ControlNet unit needs an image")
        control = {"type": A1111_MODULES[module], "image": name, "scale": float(unit.get("weight", 1.0)),
                   "start": float(unit.get("guidance_start", 0.0)), "end": float(unit.get("guidance_end", 1.0))}
        model = str(unit.get("model") or "None").split(" [")[0]
        if model != "None":
            known = model in controlnet_aliases()
            control["model"] = model if known or not model.startswith("control_v11") else f"lllyasviel/{model}"
        if control["type"] == "canny":
            for key, setting in (("threshold_a", "low"), ("threshold_b", "high")):
                if unit.get(key) not in (None, -1):
                    control[setting] = int(unit[key])
        controls.append(control)
    return controls, files


def upscale_settings(data: dict):
    """`genimg upscale`'s settings from a request's JSON (a field it does not know is an error naming it;
    pickle is never a client's to allow)."""
    from genimg.upscale.run import UpscaleSettings

    if not isinstance(data, dict):
        raise UsageError("settings: give the upscale's settings as a JSON object")
    if "allow_pickle" in data:
        raise UsageError("settings.allow_pickle: not an upscale setting a client gives (the server loads no pickle)")
    return UpscaleSettings.from_dict({k: v for k, v in data.items() if v is not None}, "settings.")  # null: default


def a1111_upscale_settings(data: dict, width: int | None = None):
    """A1111's extras request (``upscaling_resize``, ``upscaler_1``; with ``resize_mode`` 1 a target
    ``upscaling_resize_w``, taken as the scale from the image's ``width``) as genimg's upscale settings; an
    upscaler of "None" is plain Lanczos, as A1111 resizes then."""
    upscaler = data.get("upscaler_1") or "demo-upscaler"
    if upscaler in ("None", "Lanczos", "Nearest"):
        upscaler = "lanczos"
    scale = data.get("upscaling_resize", 2)
    if data.get("resize_mode") == 1 and data.get("upscaling_resize_w") and width:
        scale = float(data["upscaling_resize_w"]) / width
    return upscale_settings({"scale": scale, "model": upscaler})


def a1111_info(job: Job) -> dict:
    """A1111's ``info``: the first image's settings and every image's seed and infotext."""
    from genimg.output.metadata import read_text_chunks

    first = job.results[0][1]["settings"]
    texts = [read_text_chunks(path).get("parameters", "") for path, _ in job.results]
    return {"prompt": first.get("prompt"), "negative_prompt": first.get("negative", ""), "seed": first.get("seed"),
            "all_seeds": [summary["seed"] for _, summary in job.results], "steps": first.get("steps"),
            "cfg_scale": first.get("guidance"), "sampler_name": first.get("scheduler"), "width": first.get("width"),
            "height": first.get("height"), "sd_model_name": job.results[0][1]["model"], "infotexts": texts}


# The command line that remakes an image, flag by flag, for the settings a spec records.
_FLAGS = (("model", "-m"), ("negative", "-n"), ("width", "-W"), ("height", "-H"), ("steps", "--steps"),
          ("guidance", "--cfg"), ("scheduler", "--sampler"), ("seed", "--seed"), ("preset", "--preset"))


def remake_command(settings: dict) -> str:
    """``genimg txt2img …`` for txt2img settings (another task names its input image as the client did)."""
    import shlex

    task = settings.get("task", "txt2img")
    words = ["genimg", task, *([settings["image"]] if task != "txt2img" and settings.get("image") else []),
             settings["prompt"]]
    for key, flag in _FLAGS:
        if settings.get(key) not in (None, ""):
            words += [flag, str(settings[key])]
    return shlex.join(words)


def render_page(models: list[str], styles: list[str]) -> str:
    """One plain page: a prompt form and the gallery of what this server made (from /v1/gallery)."""
    import html

    def options(names, first=""):
        return first + "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in names)

    return PAGE.replace("{models}", options(models)).replace("{styles}", options(styles, '<option value=""></option>'))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genimg</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}label{margin-right:1em}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:18em}figure img{width:16em;image-rendering:pixelated}
figcaption{font-size:.8em}code{display:block;background:#eee;padding:.3em;word-break:break-all}</style></head>
<body><h1>genimg</h1>
<form id="make"><p><input name="prompt" id="prompt" size="60" placeholder="a red circle on a blue background" required></p>
<p><label>model <select name="model">{models}</select></label>
<label>width <input name="width" type="number" step="8" size="5"></label>
<label>height <input name="height" type="number" step="8" size="5"></label>
<label>steps <input name="steps" type="number" min="1" size="4"></label>
<label>seed <input name="seed" type="number" min="0" size="10"></label>
<label>style <select name="styles">{styles}</select></label>
<button type="submit" id="go">make</button> <span id="state"></span></p></form>
<div id="gallery"></div>
<script>
const form = document.getElementById("make"), state = document.getElementById("state");
const esc = text => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
async function show() {
  const answer = await (await fetch("/v1/gallery")).json();
  document.getElementById("gallery").innerHTML = answer.images.map(i =>
    `<figure><img src="${esc(i.url)}" alt=""><figcaption>${esc(i.settings.prompt)} (seed ${esc(i.settings.seed)})` +
    `<code>${esc(i.command)}</code></figcaption></figure>`).join("");
}
form.addEventListener("submit", async event => {
  event.preventDefault();
  const spec = {};
  for (const [key, value] of new FormData(form)) if (value !== "") spec[key] = value;
  state.textContent = "working…";
  const job = await (await fetch("/v1/jobs", {method: "POST", headers: {"Content-Type": "application/json"},
                                               body: JSON.stringify({spec})})).json();
  if (!job.id) { state.textContent = job.error; return; }
  let view = job;
  while (!["done", "failed", "cancelled"].includes(view.status)) {
    await new Promise(r => setTimeout(r, 300));
    view = await (await fetch(`/v1/jobs/${job.id}`)).json();
  }
  state.textContent = view.status === "done" ? "" : (view.error || view.status);
  show();
});
show();
</script></body></html>
"""
