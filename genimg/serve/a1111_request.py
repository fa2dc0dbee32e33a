"""What an AUTOMATIC1111 API request asks for, as genimg settings: its fields (A1111's names and defaults), its
uploads, its ControlNet units, and its errors in A1111's words. The routes are in :mod:`genimg.serve.api_a1111`."""

from __future__ import annotations

import logging

from genimg.errors import UsageError
from genimg.serve.common import b64
from genimg.serve.safety import decoded_image

log = logging.getLogger("genimg.serve")

# A1111 request fields genimg maps (to GenerationSpec names); the rest are ignored with a note.
A1111_FIELDS = {"prompt": "prompt", "negative_prompt": "negative", "steps": "steps", "cfg_scale": "guidance",
                "width": "width", "height": "height", "seed": "seed", "denoising_strength": "strength", "batch_size": "batch_size", "styles": "styles"}
A1111_HANDLED = set(A1111_FIELDS) | {
    "n_iter", "scheduler", "init_images", "mask", "override_settings", "send_images", "save_images",
    "inpainting_mask_invert", "mask_blur", "resize_mode", "alwayson_scripts", "enable_hr", "hr_scale",
    "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "sampler_index", "CLIP_stop_at_last_layers",
    "inpaint_full_res", "inpaint_full_res_padding", "subseed", "subseed_strength", "seed_resize_from_w",
    "seed_resize_from_h", "tiling", "refiner_checkpoint", "refiner_switch_at", "script_name", "script_args",
    "restore_faces"}
PLOT_SCRIPT = "x/y/z plot"  # A1111's script_name of its X/Y/Z plot (the only script genimg runs)
# img2img's resize_mode: just resize, crop and resize, resize and fill (A1111's "latent upscale": a resize too)
RESIZE_MODES = {0: "stretch", 1: "crop", 2: "fit", 3: "stretch"}


def a1111_settings(data: dict, task: str, options: dict) -> tuple[dict, dict]:
    """An A1111 request as genimg settings and uploads, each field checked in A1111's words; fields genimg does
    not map are logged at info level (shown by `genimg serve`) and ignored."""
    from genimg.output.metadata import sampler_name

    unknown = sorted(set(data) - A1111_HANDLED)
    if unknown:
        log.info("A1111 %s request: fields genimg does not map, ignored: %s", task, ", ".join(unknown))
    override = _table(data, "override_settings")
    settings = {name: data[key] for key, name in A1111_FIELDS.items() if key in data and data[key] not in (None, "")}
    if settings.get("styles"):  # A1111 skips a style it does not have; so does genimg, with a line in the log
        from genimg.prompting.styles import load_styles

        known = load_styles()
        wanted = [settings["styles"]] if isinstance(settings["styles"], str) else list(settings["styles"])
        for name in (n for n in wanted if n not in known):
            log.info("A1111 %s request: style %r is not one genimg has; skipped", task, name)
        settings["styles"] = [n for n in wanted if n in known]
    sampler = data.get("sampler_name") or data.get("sampler_index")  # A1111 reads either
    if sampler:
        settings["scheduler"] = sampler_name(str(sampler), str(data.get("scheduler") or ""))
    if settings.get("seed") == -1:
        settings.pop("seed")  # A1111's "random"
    settings["count"] = _whole(data, "batch_size", 1) * _whole(data, "n_iter", 1)
    settings.update(_noise(data))
    settings.update(_faces(data, override, options))
    clip = data.get("CLIP_stop_at_last_layers", override.get("CLIP_stop_at_last_layers"))
    if clip not in (None, "", 1):
        settings["clip_skip"] = clip
    model = override.get("sd_model_checkpoint") or options.get("sd_model_checkpoint")
    if model:
        settings["model"] = checkpoint_name(model)
    if task == "txt2img" and data.get("enable_hr"):
        settings.update(_hires(data))
    uploads = {}
    if task == "img2img":
        images = data.get("init_images") or []
        if not isinstance(images, list) or not images:
            raise UsageError("init_images: img2img needs a list with an image (base64)")
        uploads["init.png"] = decoded_image(b64(images[0], "init_images[0]"), "init_images[0]")
        settings.update(task="img2img", image="init.png", resize=RESIZE_MODES.get(data.get("resize_mode", 0), "stretch"))
        if data.get("mask"):
            uploads["mask.png"] = decoded_image(b64(data["mask"], "mask"), "mask")
            settings.update(task="inpaint", mask="mask.png", invert_mask=bool(data.get("inpainting_mask_invert")),
                            mask_blur=data.get("mask_blur", 4))
            if data.get("inpaint_full_res"):  # A1111's "Inpaint area: Only masked", its padding 32 by default
                settings["mask_padding"] = _whole(data, "inpaint_full_res_padding", 32)
    controls, control_uploads = a1111_controls(data, uploads)
    if controls:
        settings["control"] = controls
        uploads.update(control_uploads)
    return settings, uploads


def a1111_plot(data: dict, task: str) -> tuple[tuple[str, ...], bool]:
    """A request's ``script_name: "x/y/z plot"`` and ``script_args`` as the plot's axes, written as ``--xyz``
    writes them (``steps=10,20``), and whether the answer carries every image besides the grids (A1111's
    "include lone images"); ``((), False)`` for a request without a script."""
    import csv
    import io
    from pathlib import Path

    from genimg.datafiles import load_toml

    name = data.get("script_name")
    if not name:
        return (), False
    if str(name).strip().lower() != PLOT_SCRIPT:
        raise UsageError(f"script_name {name!r}: the only A1111 script genimg runs is {PLOT_SCRIPT!r}")
    if task != "txt2img":
        raise UsageError(f"script_name {name!r}: genimg plots txt2img requests (/sdapi/v1/txt2img)")
    args = data.get("script_args") or []
    if not isinstance(args, list):
        raise UsageError("script_args: a list, as A1111's X/Y/Z plot takes it (x_type, x_values, x_values_dropdown, "
                         "y_type, …)")
    args = [*args, *[None] * (18 - len(args))]
    options = load_toml(Path(__file__).with_name("a1111_xyz.toml"))["axes"]
    axes = []
    for n, letter in enumerate("xyz"):
        kind, values, dropdown = args[3 * n:3 * n + 3]
        if isinstance(kind, str) and not kind.strip().lstrip("-").isdigit():
            option = next((o for o in options if o["label"].lower() == kind.strip().lower()), None)
        else:
            option = options[int(kind or 0)] if 0 <= int(kind or 0) < len(options) else None
        if option is None:
            raise UsageError(f"script_args: {letter}_type {kind!r} is not an axis of A1111's X/Y/Z plot")
        if option["label"] == "Nothing":
            continue
        if "key" not in option:
            raise UsageError(f"script_args: the {letter.upper()} axis {option['label']!r} varies a setting genimg does not "
                             "have; plot another")
        if option.get("choices") and not args[17]:  # A1111 reads a choice axis's dropdown unless csv_mode
            items = [str(v) for v in (dropdown or [])]
            if option.get("checkpoint"):
                items = [checkpoint_name(v) for v in items]
            line = io.StringIO()
            csv.writer(line).writerow(items)
            values = line.getvalue().strip()
        if not str(values or "").strip():
            raise UsageError(f"script_args: the {letter.upper()} axis {option['label']!r} has no values")
        axes.append(f"{option['key']}={values}")
    if not axes:
        raise UsageError("script_args: the X/Y/Z plot names no axis (every type is Nothing)")
    return tuple(axes), bool(args[10])


def checkpoint_name(title) -> str:
    """The model an A1111 title names: its titles read "name [hash]"."""
    return str(title).split(" [")[0]


def rounded_size(spec):
    """``spec`` at a size the model makes: A1111 makes a width or height that is not a multiple of the
    latent factor at the multiple below (100 → 96 on SD), where genimg refuses it; so an A1111 request is
    rounded so, with a log line, and its ``info`` names the size used. ``spec`` is checked already (no path)."""
    if spec.width is None and spec.height is None:
        return spec
    from genimg import config
    from genimg.models import resolve_model
    from genimg.models.families import FAMILIES

    name = spec.model or config.generation_defaults({"model": None})["model"]
    factor = FAMILIES[resolve_model(name, allow_pickle=False).family].factor
    sizes = {}
    for key in ("width", "height"):
        value = getattr(spec, key)
        if value is not None and value > 0 and value % factor:
            sizes[key] = max(factor, value // factor * factor)
            log.info("A1111 request: %s %d is made at %d (a multiple of %d), as A1111 makes it", key, value,
                     sizes[key], factor)
    return spec.replace(**sizes) if sizes else spec


def _noise(data: dict) -> dict:
    """A1111's variation seed (``subseed``, -1 random; ``subseed_strength``), seed resize, tiling and refiner."""
    out = {}
    strength = data.get("subseed_strength")
    if strength not in (None, "", 0):
        try:
            out["variation_strength"] = float(strength)
        except (TypeError, ValueError):
            raise UsageError(f"subseed_strength: expected a number between 0 and 1 (got {strength!r})") from None
        subseed = _whole(data, "subseed", -1)
        if subseed != -1:
            out["variation_seed"] = subseed
    width, height = _whole(data, "seed_resize_from_w", -1), _whole(data, "seed_resize_from_h", -1)
    if width > 0 and height > 0:
        out["seed_resize_from"] = f"{width}x{height}"
    if data.get("tiling"):
        out["tiling"] = "xy"
    if data.get("refiner_checkpoint") not in (None, "", "None"):
        out["refiner"] = checkpoint_name(data["refiner_checkpoint"])
        if data.get("refiner_switch_at") not in (None, ""):
            out["refiner_switch"] = data["refiner_switch_at"]
    return out


def _faces(data: dict, override: dict, options: dict) -> dict:
    """A1111's ``restore_faces``: the model its ``face_restoration_model`` option names (in the request's
    override_settings or set on the server), else the server's ``face_restorer`` setting; CodeFormer's weight
    from ``code_former_weight``."""
    if not data.get("restore_faces"):
        return {}
    from genimg import config

    name = override.get("face_restoration_model") or options.get("face_restoration_model") or config.get("face_restorer")
    if not name:
        raise UsageError("restore_faces: this server has no face restoration model; its owner sets one with "
                         "`genimg config set face_restorer FILE` (GFPGAN, CodeFormer or RestoreFormer weights)")
    out = {"restore_faces": name}
    weight = override.get("code_former_weight", options.get("code_former_weight"))
    if weight not in (None, ""):
        out["face_fidelity"] = weight
    return out


def a1111_face_settings(data: dict) -> dict:
    """A1111's extras fields for faces (``gfpgan_visibility``; ``codeformer_visibility`` and ``codeformer_weight``)
    as upscale settings: one model restores them here, so one visibility above 0 is taken."""
    gfpgan, codeformer, weight = (_number(data, key) for key in ("gfpgan_visibility", "codeformer_visibility",
                                                                 "codeformer_weight"))
    if gfpgan and codeformer:
        raise UsageError("gfpgan_visibility and codeformer_visibility: genimg restores faces with one model; "
                         "set the other to 0")
    if codeformer:
        return {"restore_faces": "CodeFormer", "face_strength": codeformer, "face_fidelity": weight}
    return {"restore_faces": "GFPGAN", "face_strength": gfpgan} if gfpgan else {}


def _number(data: dict, key: str) -> float:
    try:
        return float(data.get(key) or 0)
    except (TypeError, ValueError):
        raise UsageError(f"{key}: expected a number between 0 and 1 (got {data[key]!r})") from None


def _hires(data: dict) -> dict:
    """A1111's hires fix: hr_scale (or hr_resize_x/y as the target size), hr_upscaler, hr_second_pass_steps,
    and denoising_strength as the second pass's strength (A1111's default 0.7)."""
    scale = data.get("hr_scale", 2)
    if data.get("hr_resize_x") and data.get("width"):
        scale = float(data["hr_resize_x"]) / float(data["width"])
    hires = {"hires_scale": scale, "hires_strength": data.get("denoising_strength") or 0.7,
             "hires_upscaler": upscaler_name(data.get("hr_upscaler"))}
    if data.get("hr_second_pass_steps"):
        hires["hires_steps"] = data["hr_second_pass_steps"]
    return hires


def upscaler_name(name, field: str = "hr_upscaler") -> str:
    """An A1111 upscaler name as genimg's: its plain resamplers and latent upscales are Lanczos here; its model
    names (``R-ESRGAN 4x+``, ``ESRGAN_4x`` …) the file its users have for them in an upscaler folder; an alias
    or a file's name as it is. Anything else is a 400 naming what this server has."""
    from genimg import config
    from genimg.upscale.models import a1111_file_of, a1111_upscaler, folder_upscalers, upscaler_aliases

    from genimg.serve.safety import is_path

    name = str(name or "Latent")
    if name in ("None", "Lanczos", "Nearest") or name.startswith("Latent"):
        return "lanczos"
    if is_path(name):  # refused where every model name is checked, with the words for a path
        return name
    if name in upscaler_aliases() or config.search(name, "upscaler_dirs", (".safetensors",)) is not None:
        return name
    found = a1111_upscaler(name)
    if found:
        return found
    file = a1111_file_of(name)
    how = (f" (A1111's {name} is {file}.pth: put {file}.safetensors in an upscaler folder, config upscaler_dirs)"
           if file else "")
    have = ["None", "Lanczos", "Latent", *upscaler_aliases(), *folder_upscalers()]
    raise UsageError(f"{field}: {name!r} is not an upscaler this server has{how}; it has: {', '.join(have)}")


def _whole(data: dict, key: str, default: int) -> int:
    value = data.get(key)
    if value in (None, ""):
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not str(value).lstrip("-").isdigit():
        raise UsageError(f"{key}: expected a whole number (got {value!r})")
    return int(value)


def _table(data: dict, key: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"{key}: expected an object (got {type(value).__name__})")
    return value


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
        model = checkpoint_name(unit.get("model") or "None")
        if model != "None":
            known = model in controlnet_aliases()
            control["model"] = model if known or not model.startswith("control_v11") else f"lllyasviel/{model}"
        if control["type"] == "canny":
            for key, setting in (("threshold_a", "low"), ("threshold_b", "high")):
                if unit.get(key) not in (None, -1):
                    control[setting] = int(unit[key])
        controls.append(control)
    return controls, files
