"""AUTOMATIC1111's web API (``/sdapi/v1/…``) as its clients use it: each request's fields mapped to a
:class:`GenerationSpec` and run by the same worker as every other job."""

from __future__ import annotations

import asyncio
import threading
import json
import logging
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from genimg.errors import UsageError
from genimg.serve.api_genimg import upscale_settings
from genimg.serve.common import b64, body, failed, finished, image_width, png_b64, spec_of, worker_of
from genimg.serve.a1111_request import (a1111_face_settings, a1111_plot, a1111_settings, checkpoint_name, rounded_size,
                                       upscaler_name)
from genimg.serve.jobs import Job, Worker
from genimg.serve.safety import decoded_image

router = APIRouter()
log = logging.getLogger("genimg.serve")




async def a1111(worker: Worker, request: Request, task: str):
    data = await body(request)
    job = await finished(worker, await asyncio.to_thread(_submit, worker, data, task, request.app.state.options),
                         request)
    if job.status != "done":
        return failed(worker, job, "a1111")
    return await asyncio.to_thread(_answer, job, data)


def _submit(worker: Worker, data: dict, task: str, options: dict) -> Job:
    """The request decoded, checked, planned and queued (blocking work: run in a thread)."""
    settings, uploads = a1111_settings(data, task, options)
    plot, _ = a1111_plot(data, task)
    return worker.submit(rounded_size(spec_of(settings)), uploads, plot=plot)


def _answer(job: Job, data: dict) -> dict:
    # send_images false: the answer carries no images (A1111's own behaviour; they stay in the job's history)
    results = _answered(job, data)
    images = [png_b64(path) for path, _ in results] if data.get("send_images", True) else []
    return {"images": images, "parameters": {k: v for k, v in data.items() if k not in ("init_images", "mask")},
            "info": json.dumps(a1111_info(job, results))}


def _answered(job: Job, data: dict) -> list:
    """The images an answer carries, in A1111's order: an X/Y/Z plot's grids first, then its images only if
    the request asked for them ("include lone images")."""
    if not job.plot:
        return job.results
    from genimg.xyz import is_grid

    _, lone = a1111_plot(data, "txt2img")
    grids = [result for result in job.results if is_grid(result[1])]
    return grids + ([result for result in job.results if not is_grid(result[1])] if lone else [])


@router.post("/sdapi/v1/txt2img")
async def a1111_txt2img(request: Request, worker: Worker = Depends(worker_of)):
    return await a1111(worker, request, "txt2img")


@router.post("/sdapi/v1/img2img")
async def a1111_img2img(request: Request, worker: Worker = Depends(worker_of)):
    return await a1111(worker, request, "img2img")


@router.get("/sdapi/v1/sd-models")
def a1111_models():
    from genimg.models.resolve import aliases

    return [{"title": name, "model_name": name, "hash": None, "filename": name} for name in aliases()]


@router.get("/sdapi/v1/samplers")
def a1111_samplers():
    from genimg.schedulers import schedulers as table

    return [{"name": name, "aliases": [], "options": {}} for name in table()]


@router.get("/sdapi/v1/schedulers")
async def a1111_schedulers():
    # A1111 1.9+ splits a sampler from its schedule; genimg's sampler names carry both ("DPM++ 2M Karras")
    return [{"name": name, "label": name.title()} for name in ("automatic", "karras", "exponential", "sgm_uniform")]


@router.get("/sdapi/v1/loras")
def a1111_loras():
    from genimg.prompting.inline import lora_dirs

    files = [p for d in lora_dirs() if d.is_dir() for p in sorted(d.rglob("*.safetensors"))]
    return [{"name": p.stem, "alias": p.stem} for p in files]  # names only: a client sees no paths


@router.get("/sdapi/v1/upscalers")
def a1111_upscalers():
    from genimg.upscale.models import a1111_names_present, folder_upscalers, upscaler_aliases

    names = ["None", "Lanczos", "Nearest", *upscaler_aliases(), *a1111_names_present(), *folder_upscalers()]
    return [{"name": name, "model_name": name, "model_path": None, "model_url": None, "scale": None}
            for name in dict.fromkeys(names)]


@router.post("/sdapi/v1/png-info")
async def a1111_png_info(request: Request):
    import io

    from PIL import Image

    from genimg.output.metadata import parse_parameters

    data = await body(request)

    def read():
        png = decoded_image(b64(data.get("image", ""), "image"), "image")
        with Image.open(io.BytesIO(png)) as image:
            text = dict(getattr(image, "text", {}) or {})
        info = text.get("parameters", "")
        return {"info": info, "items": text, "parameters": parse_parameters(info) if info else {}}

    return await asyncio.to_thread(read)


@router.post("/sdapi/v1/extra-single-image")
async def a1111_extra_single_image(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)

    def submit_one():
        image = decoded_image(b64(data.get("image", ""), "image"), "image")
        return worker.submit_upscale(a1111_upscale_settings(data, image_width(image)), "image.png", image)

    job = await finished(worker, await asyncio.to_thread(submit_one), request)
    if job.status != "done":
        return failed(worker, job, "a1111")
    return {"html_info": f"Postprocess upscaler: {job.results[0][1]['upscaler']}",
            "image": await asyncio.to_thread(png_b64, job.results[0][0])}


@router.post("/sdapi/v1/extra-batch-images")
async def a1111_extra_batch_images(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)

    def submit_all():
        settings = a1111_upscale_settings(data)
        return [worker.submit_upscale(settings, str(item.get("name") or f"{n}.png"),
                                      decoded_image(b64(item.get("data", ""), f"imageList[{n}]"), f"imageList[{n}]"))
                for n, item in enumerate(data.get("imageList") or [])]

    jobs = await asyncio.to_thread(submit_all)
    if not jobs:
        raise UsageError("imageList: give at least one image ({\"data\": BASE64, \"name\": ...})")
    images = []
    for job in jobs:
        job = await finished(worker, job, request)
        if job.status != "done":
            return failed(worker, job, "a1111")
        images.append(await asyncio.to_thread(png_b64, job.results[0][0]))
    return {"html_info": "", "images": images}


# A1111's options that its clients read, with A1111's defaults; a posted key is kept (and returned) as posted.
OPTION_DEFAULTS = {"sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1, "samples_format": "png", "send_seed": True,
                   "send_size": True, "eta_noise_seed_delta": 0, "img2img_fix_steps": False, "enable_pnginfo": True,
                   "save_images_add_number": True, "jpeg_quality": 80, "show_progress_every_n_steps": 10,
                   "sd_checkpoint_cache": 0, "code_former_weight": 0.5, "upscaler_for_img2img": None, "outdir_samples": ""}


@router.get("/sdapi/v1/options")
def a1111_options(request: Request):
    """A1111's options: its keys with their defaults, the keys clients posted, and the model a request without
    its own uses (the one set here, else the server's default model)."""
    from genimg import config

    options = {**OPTION_DEFAULTS, **request.app.state.options}
    options["sd_model_checkpoint"] = options.get("sd_model_checkpoint") or config.generation_defaults({})["model"]
    options.setdefault("face_restoration_model", config.get("face_restorer"))
    return options


@router.post("/sdapi/v1/options")
async def a1111_set_options(request: Request):
    """Keep the posted options; ``sd_model_checkpoint`` must name a model this server has (an alias, a hub id in
    its cache, a name in its folders): a path or an unknown name is a 400 and changes nothing."""
    data = await body(request)
    if data.get("sd_model_checkpoint") is not None:
        await asyncio.to_thread(_check_model, checkpoint_name(data["sd_model_checkpoint"]))
    request.app.state.options.update(data)
    return None


def _check_model(name: str) -> None:
    from genimg.models import resolve_model
    from genimg.serve.safety import is_path

    if is_path(name):
        raise UsageError(f"sd_model_checkpoint {name!r} is a filesystem path; name the model by alias, hub id or a "
                         "name in the server's folders (the server opens no path a client names)")
    try:
        resolve_model(name)
    except UsageError as e:
        raise UsageError(f"sd_model_checkpoint: {e}") from None


@router.get("/sdapi/v1/progress")
async def a1111_progress(worker: Worker = Depends(worker_of)):
    job = worker.current
    steps = [e for e in (job.events if job else []) if e["event"] == "step"]
    last = steps[-1] if steps else None
    return {"progress": last["step"] / last["total"] if last else 0.0, "eta_relative": last.get("eta", 0.0) if last else 0.0,
            "state": {"job_count": worker.waiting + bool(job), "sampling_step": last["step"] if last else 0,
                      "sampling_steps": last["total"] if last else 0}, "current_image": None}


@router.post("/sdapi/v1/interrupt")
async def a1111_interrupt(worker: Worker = Depends(worker_of)):
    if worker.current is not None:  # it answers 200 with its image as far as it got
        worker.interrupt(worker.current.id)
    return None


def a1111_upscale_settings(data: dict, width: int | None = None):
    """A1111's extras request (``upscaling_resize``, ``upscaler_1``; with ``resize_mode`` 1 a target
    ``upscaling_resize_w``, taken as the scale from the image's ``width``) as genimg's upscale settings; an
    upscaler of "None" is plain Lanczos, as A1111 resizes then."""
    upscaler = upscaler_name(data.get("upscaler_1") or "demo-upscaler", "upscaler_1")
    scale = data.get("upscaling_resize", 2)
    if data.get("resize_mode") == 1 and data.get("upscaling_resize_w") and width:
        scale = float(data["upscaling_resize_w"]) / width
    return upscale_settings({"scale": scale, "model": upscaler} | a1111_face_settings(data))


def a1111_info(job: Job, results: list | None = None) -> dict:
    """A1111's ``info``: the first image's settings and every answered image's seed and infotext (``results``:
    those the answer carries, by default all; an X/Y/Z plot's grid counts as its first image's)."""
    from genimg.output.metadata import read_text_chunks

    results = job.results if results is None else results
    images = [summary for _, summary in job.results if "settings" in summary]
    first, fallback = images[0]["settings"], images[0]
    answered = [summary if "settings" in summary else fallback for _, summary in results]
    texts = [read_text_chunks(path).get("parameters", "") for path, _ in results]
    return {"prompt": first.get("prompt"), "negative_prompt": first.get("negative", ""), "seed": first.get("seed"),
            "all_seeds": [summary["seed"] for summary in answered], "steps": first.get("steps"),
            "cfg_scale": first.get("guidance"), "sampler_name": first.get("scheduler"), "width": first.get("width"),
            "height": first.get("height"), "sd_model_name": images[0]["model"], "infotexts": texts,
            "subseed": first.get("variation_seed", -1), "subseed_strength": first.get("variation_strength", 0),
            "all_subseeds": [summary["settings"].get("variation_seed", -1) for summary in answered],
            "tiling": bool(first.get("tiling")), "restore_faces": bool(first.get("restore_faces"))}


# The command line that remakes an image, flag by flag, for the settings a spec records.


# -- what A1111's clients probe when they connect, in A1111's shapes (empty where genimg has none) ----------
@router.get("/sdapi/v1/prompt-styles")
def a1111_styles():
    from genimg.prompting.styles import load_styles

    return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative} for s in load_styles().values()]


@router.get("/sdapi/v1/embeddings")
def a1111_embeddings():
    """The textual inversions in the embedding folders, by name (the word that calls each), never a path."""
    from genimg import config
    from genimg.models.checkpoint import safetensors_header
    from genimg.paths import config_dir

    folders = [*(Path(p).expanduser() for p in config.get("embedding_dirs")), config_dir() / "embeddings"]
    loaded = {}
    for path in (p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.safetensors"))):
        shapes = [info["shape"] for key, info in safetensors_header(path).items() if key != "__metadata__"]
        loaded[path.stem] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                             "shape": shapes[0][-1] if shapes else None, "vectors": shapes[0][0] if shapes else None}
    return {"loaded": loaded, "skipped": {}}


@router.get("/sdapi/v1/cmd-flags")
def a1111_cmd_flags(request: Request):
    return {"api": True, "nowebui": True, "listen": request.url.hostname not in ("127.0.0.1", "localhost", "::1"),
            "port": request.url.port, "api_auth": None}


@router.get("/sdapi/v1/scripts")
def a1111_scripts():
    from genimg.serve.a1111_request import PLOT_SCRIPT

    return {"txt2img": [PLOT_SCRIPT], "img2img": []}  # the X/Y/Z plot, on txt2img requests


@router.get("/sdapi/v1/face-restorers")
def a1111_face_restorers():
    """A1111's face restorers this server has the files of (never their folders: ``cmd_dir`` is null)."""
    from genimg.upscale.faces import present_face_restorers

    return [{"name": name, "cmd_dir": None} for name in present_face_restorers()]


@router.get("/sdapi/v1/hypernetworks")
async def a1111_none():
    return []  # genimg has no hypernetworks


@router.get("/sdapi/v1/realesrgan-models")
def a1111_realesrgan_models():
    from genimg.upscale.models import upscaler_aliases

    return [{"name": name, "path": None, "scale": row.get("scale")} for name, row in upscaler_aliases().items()]


@router.get("/sdapi/v1/memory")
def a1111_memory():
    import psutil

    ram = psutil.virtual_memory()
    return {"ram": {"free": ram.available, "used": ram.total - ram.available, "total": ram.total},
            "cuda": {"error": "no CUDA device"} if not _cuda() else _cuda()}


def _cuda() -> dict | None:
    import sys

    torch = sys.modules.get("torch")  # only when a model is loaded: this route imports nothing heavy
    if torch is None or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return {"system": {"free": free, "used": total - free, "total": total}}


@router.post("/sdapi/v1/refresh-checkpoints")
async def a1111_refresh_checkpoints():
    return None  # genimg reads its folders at every request: nothing to refresh


@router.post("/sdapi/v1/interrogate")
async def a1111_interrogate(request: Request):
    """A1111's interrogate: with ``model`` "clip" (A1111's BLIP) a sentence by the server's captioner (the
    ``captioner`` setting); with "deepdanbooru" booru tags by its tagger (the ``tagger`` setting, a WD14 tagger),
    brackets escaped as A1111 escapes its tags for a prompt."""
    data = await body(request)
    model = str(data.get("model") or "clip")
    if model not in INTERROGATORS:
        raise UsageError(f"model: {model!r} is not one genimg has; give \"clip\" (a caption) or \"deepdanbooru\" (tags)")

    def caption():
        import io

        from PIL import Image

        png = decoded_image(b64(data.get("image", ""), "image"), "image")
        with Image.open(io.BytesIO(png)) as image:
            text = _captioner(INTERROGATORS[model]).caption(image)
        return text.replace("(", "\\(").replace(")", "\\)") if INTERROGATORS[model] == "tagger" else text

    return {"caption": await asyncio.to_thread(caption)}


INTERROGATORS = {"clip": "captioner", "blip": "captioner", "deepdanbooru": "tagger", "wd14": "tagger"}  # -> setting


_CAPTIONERS: dict = {}  # setting -> (name, the captioner loaded)
_CAPTIONER_LOCK = threading.Lock()


def _captioner(setting: str):
    """The server's captioner (or tagger: ``setting`` says which), loaded on the first request and kept."""
    from genimg import config
    from genimg.caption import load_captioner

    name = config.get(setting)
    with _CAPTIONER_LOCK:
        if _CAPTIONERS.get(setting, (None,))[0] != name:
            _CAPTIONERS.pop(setting, None)  # the one it replaces let go first
            _CAPTIONERS[setting] = (name, load_captioner(name))
        return _CAPTIONERS[setting][1]