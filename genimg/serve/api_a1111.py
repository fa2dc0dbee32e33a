"""AUTOMATIC1111's web API (``/sdapi/v1/…``) as its clients use it: each request's fields mapped to a
:class:`GenerationSpec` and run by the same worker as every other job."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, Depends, Request

from genimg.errors import UsageError
from genimg.serve.api_genimg import upscale_settings
from genimg.serve.common import b64, body, failed, finished, image_width, png_b64, submit, worker_of
from genimg.serve.jobs import Job, Worker
from genimg.serve.safety import decoded_image

router = APIRouter()
log = logging.getLogger("genimg.serve")

# A1111 request fields genimg maps (to GenerationSpec names); the rest are ignored with a note.
A1111_FIELDS = {"prompt": "prompt", "negative_prompt": "negative", "steps": "steps", "cfg_scale": "guidance",
                "width": "width", "height": "height", "seed": "seed", "sampler_name": "scheduler",
                "denoising_strength": "strength", "batch_size": "batch_size", "styles": "styles"}
A1111_HANDLED = set(A1111_FIELDS) | {"n_iter", "scheduler", "init_images", "mask", "override_settings",
                                     "send_images", "save_images", "inpainting_mask_invert", "mask_blur",
                                     "resize_mode", "alwayson_scripts", "enable_hr", "hr_scale"}



async def a1111(worker: Worker, request: Request, task: str):
    data = await body(request)
    settings, uploads = a1111_settings(data, task, request.app.state.options)
    job = await finished(worker, await asyncio.to_thread(submit, worker, settings, uploads), request)
    if job.status != "done":
        return failed(worker, job)
    images = [png_b64(path) for path, _ in job.results]
    return {"images": images, "parameters": {k: v for k, v in data.items() if k not in ("init_images", "mask")},
            "info": json.dumps(a1111_info(job))}


@router.post("/sdapi/v1/txt2img")
async def a1111_txt2img(request: Request, worker: Worker = Depends(worker_of)):
    return await a1111(worker, request, "txt2img")


@router.post("/sdapi/v1/img2img")
async def a1111_img2img(request: Request, worker: Worker = Depends(worker_of)):
    return await a1111(worker, request, "img2img")


@router.get("/sdapi/v1/sd-models")
async def a1111_models():
    from genimg.models.resolve import aliases

    return [{"title": name, "model_name": name, "hash": None, "filename": name} for name in aliases()]


@router.get("/sdapi/v1/samplers")
async def a1111_samplers():
    from genimg.schedulers import schedulers as table

    return [{"name": name, "aliases": [], "options": {}} for name in table()]


@router.get("/sdapi/v1/schedulers")
async def a1111_schedulers():
    # A1111 1.9+ splits a sampler from its schedule; genimg's sampler names carry both ("DPM++ 2M Karras")
    return [{"name": name, "label": name.title()} for name in ("automatic", "karras", "exponential", "sgm_uniform")]


@router.get("/sdapi/v1/loras")
async def a1111_loras():
    from genimg.prompting.inline import lora_dirs

    files = [p for d in lora_dirs() if d.is_dir() for p in sorted(d.rglob("*.safetensors"))]
    return [{"name": p.stem, "alias": p.stem} for p in files]  # names only: a client sees no paths


@router.get("/sdapi/v1/upscalers")
async def a1111_upscalers():
    from genimg.upscale.models import upscaler_aliases

    return [{"name": name, "model_name": name, "scale": None} for name in upscaler_aliases()]


@router.post("/sdapi/v1/png-info")
async def a1111_png_info(request: Request):
    import io

    from PIL import Image

    from genimg.output.metadata import parse_parameters

    data = await body(request)
    png = decoded_image(b64(data.get("image", ""), "image"), "image")
    with Image.open(io.BytesIO(png)) as image:
        text = dict(getattr(image, "text", {}) or {})
    info = text.get("parameters", "")
    return {"info": info, "items": text, "parameters": parse_parameters(info) if info else {}}


@router.post("/sdapi/v1/extra-single-image")
async def a1111_extra_single_image(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)
    image = decoded_image(b64(data.get("image", ""), "image"), "image")
    settings = a1111_upscale_settings(data, image_width(image))
    job = await finished(worker, worker.submit_upscale(settings, "image.png", image), request)
    if job.status != "done":
        return failed(worker, job)
    return {"html_info": f"Postprocess upscaler: {job.results[0][1]['upscaler']}",
            "image": png_b64(job.results[0][0])}


@router.post("/sdapi/v1/extra-batch-images")
async def a1111_extra_batch_images(request: Request, worker: Worker = Depends(worker_of)):
    data = await body(request)
    settings = a1111_upscale_settings(data)
    jobs = [worker.submit_upscale(settings, str(item.get("name") or f"{n}.png"),
                                  decoded_image(b64(item.get("data", ""), f"imageList[{n}]"), f"imageList[{n}]"))
            for n, item in enumerate(data.get("imageList") or [])]
    if not jobs:
        raise UsageError("imageList: give at least one image ({\"data\": BASE64, \"name\": ...})")
    images = []
    for job in jobs:
        job = await finished(worker, job, request)
        if job.status != "done":
            return failed(worker, job)
        images.append(png_b64(job.results[0][0]))
    return {"html_info": "", "images": images}


@router.get("/sdapi/v1/options")
async def a1111_options(request: Request):
    return dict(request.app.state.options)


@router.post("/sdapi/v1/options")
async def a1111_set_options(request: Request):
    data = await body(request)
    if "sd_model_checkpoint" in data:
        request.app.state.options["sd_model_checkpoint"] = data["sd_model_checkpoint"]
    return None


@router.get("/sdapi/v1/progress")
async def a1111_progress(worker: Worker = Depends(worker_of)):
    job = worker.current
    steps = [e for e in (job.events if job else []) if e["event"] == "step"]
    last = steps[-1] if steps else None
    return {"progress": last["step"] / last["total"] if last else 0.0, "eta_relative": 0.0,
            "state": {"job_count": worker.waiting + bool(job), "sampling_step": last["step"] if last else 0,
                      "sampling_steps": last["total"] if last else 0}, "current_image": None}


@router.post("/sdapi/v1/interrupt")
async def a1111_interrupt(worker: Worker = Depends(worker_of)):
    if worker.current is not None:
        worker.cancel(worker.current.id)
    return None


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
        uploads["init.png"] = decoded_image(b64(images[0], "init_images[0]"), "init_images[0]")
        settings.update(task="img2img", image="init.png")
        if data.get("mask"):
            uploads["mask.png"] = decoded_image(b64(data["mask"], "mask"), "mask")
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
            files[name] = decoded_image(b64(image, f"alwayson_scripts.controlnet.args[{n}].image"), name)
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
