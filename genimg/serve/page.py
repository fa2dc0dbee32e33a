"""The page `genimg serve` shows at ``/``, and the gallery of what the server made (with the command that
remakes each image)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from genimg.serve.common import worker_of
from genimg.serve.jobs import Worker

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def page():
    from genimg.models.resolve import aliases
    from genimg.prompting.styles import load_styles

    return render_page(list(aliases()), list(load_styles()))


@router.get("/v1/gallery")
async def gallery(worker: Worker = Depends(worker_of)):
    """Every image this server made, newest first, with its settings and the command that remakes it (an
    upscale: its source's name and the upscaler; an X/Y/Z plot's grid: its axes)."""
    made = [{"url": f"/v1/jobs/{job.id}/images/{n}", "made": job.submitted, **_described(summary)}
            for job in worker.jobs.values() for n, (_, summary) in enumerate(job.results)]
    return {"images": sorted(made, key=lambda image: -image["made"])}


def _described(summary: dict) -> dict:
    from genimg.xyz import is_grid

    if is_grid(summary):  # an X/Y/Z plot's grid: its axes as written
        return {"plot": summary["axes"], "size": summary["size"]}
    if "settings" not in summary:  # an upscale
        return {"upscaled": summary["source"], "upscaler": summary["upscaler"], "size": summary["size"]}
    return {"settings": summary["settings"], "model": summary["model"], "command": remake_command(summary["settings"])}


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
    `<figure><img src="${esc(i.url)}" alt=""><figcaption>` + (i.settings
      ? `${esc(i.settings.prompt)} (seed ${esc(i.settings.seed)})<code>${esc(i.command)}</code>`
      : i.plot ? `X/Y/Z plot: ${esc(i.plot.join(" · "))}`
      : `${esc(i.upscaled)} upscaled (${esc(i.upscaler)})`) + `</figcaption></figure>`).join("");
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
