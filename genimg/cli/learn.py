"""``genimg learn``: train models from scratch on a CPU (the built-in demo assets, and the course's chapters)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from genimg.cli import learn_demo
from genimg.cli import options as o
from genimg.cli.help_format import App

app = App(help="Train small models from scratch: the demo assets, and the course's VAE, DDPM, samplers, latent "
               "diffusion, ControlNet, LoRA, DCGAN and FID.", no_args_is_help=True)


Dataset = typer.Option("digits", "--dataset", "-d", help="digits, digits-bold, faces, shapes, or a folder of images.")
Run = typer.Option(..., "--output", "-o", help="Run folder (config, checkpoint, samples, loss curve).")
Resume = typer.Option(False, "--resume", help="Continue the run in -o from its last checkpoint.")


# The demo assets (the built-in model, upscaler and ControlNet) are trained by their own module's commands.
app.command("demo-model")(learn_demo.demo_model)
app.command("demo-upscaler")(learn_demo.demo_upscaler)
app.command("demo-controlnet")(learn_demo.demo_controlnet)


def _epoch_progress(report, label: str):
    task = {}

    def on_event(event, epoch, total, loss, seconds):
        on_event.finished = (epoch, total)
        report.note(f"{label} epoch {epoch}/{total} (loss {loss:.4f})")
        progress = report.progress
        if progress is None:
            return
        if "id" not in task:
            task["id"] = progress.add_task(label, total=total, completed=epoch - 1)
        progress.update(task["id"], completed=epoch, description=f"{label} (loss {loss:.4f})")

    on_event.finished = None  # (epoch, epochs) of the last checkpoint written in this process
    return on_event


def _train_run(train, run: Path, config, resume: bool, overwrite: bool, quiet: bool, label: str, **extra) -> None:
    """Run a course trainer with its epochs shown as ``label``; ``extra`` progress callbacks (named
    ``*_progress``, for a trainer's stages before its own epochs) get their own bars."""
    from genimg.cli.render import progress_reporter

    with progress_reporter(quiet) as report:
        stages = {name: _epoch_progress(report, text) for name, text in extra.items()}
        _train_until_ctrl_c(lambda *a: train(*a, **stages), run, config, resume, overwrite,
                            _epoch_progress(report, label))


def _train_until_ctrl_c(train, run: Path, config, resume: bool, overwrite: bool, on_epoch) -> None:
    """Run a course trainer; Ctrl-C says which checkpoint the run folder keeps and how to go on."""
    from genimg.errors import Interrupted

    try:
        train(run, config, resume, overwrite, on_epoch)
    except KeyboardInterrupt:
        if on_epoch.finished:
            epoch, total = on_epoch.finished
            kept = f"in epoch {epoch + 1} of {total}; {run / 'checkpoint.safetensors'} holds epoch {epoch}"
        elif resume:
            kept = f"before this run's first epoch ended; {run / 'checkpoint.safetensors'} is as it was"
        else:
            raise Interrupted(f"interrupted before the first epoch ended: {run} holds no checkpoint yet "
                              "(a new run may replace it)") from None
        raise Interrupted(f"interrupted {kept}: continue with the same command and --resume") from None


@app.command("vae")
def vae(
    output: Path = Run,
    dataset: str = Dataset,
    epochs: int = typer.Option(500, "--epochs", help="Passes over the data."),
    size: int = typer.Option(16, "--size", help="Image side in pixels (a multiple of 4)."),
    latent: int = typer.Option(4, "--latent", help="Dimensions of the code z."),
    width: int = typer.Option(64, "--width", help="Channels of the first convolution (the second has twice as many)."),
    beta: float = typer.Option(1.0, "--beta", help="Weight of the KL term (1: the VAE; more: a β-VAE)."),
    spatial: bool = typer.Option(False, "--spatial", help="A code of --latent channels at a quarter of the side (Stable Diffusion's shape, for `learn ldm`) instead of a vector."),
    batch: int = typer.Option(64, "--batch", help="Images per step."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = Resume,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Train a variational autoencoder (Kingma & Welling 2013) and measure its samples and reconstructions."""
    import json as _json

    from genimg.errors import UsageError
    from genimg.learn.train_vae import VAEConfig, quality, train_vae

    if epochs < 1 or batch < 1 or width < 1 or latent < 1 + (not spatial) or size < 8 or size % 4 or not beta >= 0:
        raise UsageError("--epochs, --batch and --width must be at least 1, --latent at least 2 (1 with --spatial), "
                         "--size a multiple of 4 of at least 8, --beta 0 or more")
    config = VAEConfig(dataset=dataset, epochs=epochs, size=size, latent=latent, width=width, beta=beta,
                       spatial=spatial, batch=batch, seed=seed)
    _train_run(train_vae, output, config, resume, overwrite, quiet, "training VAE")
    measured = quality(output) if dataset.startswith("digits") else {}
    if json:
        print(_json.dumps({"run": str(output), **measured}))
        return
    print(f"{output}: reconstructions.png, prior_samples.png, latent_walk.png, loss curve loss.png"
          + ("".join(f"; {k} {v:.1%}" if k != "fid" else f"; FID {v:.2f}" for k, v in measured.items())))


@app.command("ddpm")
def ddpm(
    output: Path = Run,
    dataset: str = Dataset,
    epochs: int = typer.Option(150, "--epochs", help="Passes over the data."),
    size: int = typer.Option(16, "--size", help="Image side in pixels."),
    conditional: bool = typer.Option(True, "--conditional/--unconditional", help="Learn the classes (for guidance)."),
    schedule: str = typer.Option("cosine", "--schedule", help="Noise schedule: linear or cosine."),
    batch: int = typer.Option(128, "--batch", help="Images per step."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = Resume,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train a denoising diffusion model (DDPM) from scratch."""
    from genimg.errors import UsageError
    from genimg.learn.train_ddpm import DDPMConfig, train_ddpm

    if schedule not in ("linear", "cosine"):
        raise UsageError(f"--schedule must be linear or cosine (got {schedule!r})")
    if epochs < 1 or batch < 1 or size < 8 or size % 4:
        raise UsageError("--epochs and --batch must be at least 1, and --size a multiple of 4 of at least 8")
    config = DDPMConfig(dataset=dataset, epochs=epochs, size=size, conditional=conditional, schedule=schedule,
                        batch=batch, seed=seed)
    _train_run(train_ddpm, output, config, resume, overwrite, quiet, "training DDPM")
    print(f"{output}: samples in {output / 'samples'}, loss curve {output / 'loss.png'}")


@app.command("ldm")
def ldm(
    output: Path = Run,
    dataset: str = typer.Option("digits", "--dataset", "-d", help="A labelled dataset (the prompts name its classes): digits, digits-bold or shapes."),
    vae: Optional[Path] = typer.Option(None, "--vae", help="A `genimg learn vae --spatial` run to diffuse the codes of (default: train one into RUN/vae first)."),
    epochs: int = typer.Option(150, "--epochs", help="Passes over the data of the diffusion model."),
    vae_epochs: int = typer.Option(100, "--vae-epochs", help="Passes of the autoencoder trained first (without --vae)."),
    size: int = typer.Option(16, "--size", help="Image side in pixels (a multiple of 4; the code is a quarter of it)."),
    batch: int = typer.Option(128, "--batch", help="Codes per step."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = Resume,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Train latent diffusion: a DDPM on an autoencoder's codes, told the prompt through cross-attention."""
    from genimg.learn.train_ldm import LDMConfig, quality, train_ldm

    _check_latent_run(epochs, vae_epochs, batch, size, vae)
    config = LDMConfig(dataset=dataset, vae=str(vae) if vae else None, epochs=epochs, vae_epochs=vae_epochs,
                       size=size, batch=batch, seed=seed)
    _train_run(train_ldm, output, config, resume, overwrite, quiet, "training LDM",
               vae_progress="training the autoencoder")
    _print_measured(output, quality(output) if dataset.startswith("digits") else {}, json,
                    f"samples in {output / 'samples'}, attention maps {output / 'attention.png'}")


def _check_latent_run(epochs: int, vae_epochs: int, batch: int, size: int, vae: Path | None) -> None:
    """The checks of a latent run's flags (ldm, flow), before anything trains."""
    from genimg.errors import UsageError

    if epochs < 1 or vae_epochs < 1 or batch < 1 or size < 8 or size % 4:
        raise UsageError("--epochs, --vae-epochs and --batch must be at least 1, and --size a multiple of 4 of at "
                         "least 8")
    if vae is not None and not (vae / "checkpoint.safetensors").is_file():
        raise UsageError(f"--vae {vae} is no trained run; train one with `genimg learn vae --spatial -o {vae}`")


def _print_measured(output: Path, measured: dict, json: bool, figures: str) -> None:
    import json as _json

    if json:
        print(_json.dumps({"run": str(output), **measured}))
        return
    print(f"{output}: {figures}" + "".join(f"; {k} {v:.1%}" if k.startswith("samples") else f"; {k} {v:.2f}"
                                           for k, v in measured.items()))


@app.command("flow")
def flow(
    output: Path = Run,
    vae: Optional[Path] = typer.Option(None, "--vae", help="A `genimg learn vae --spatial` run (an ldm run's RUN/vae too) to move the codes of (default: train one into RUN/vae first)."),
    epochs: int = typer.Option(150, "--epochs", help="Passes over the data of the transformer."),
    vae_epochs: int = typer.Option(100, "--vae-epochs", help="Passes of the autoencoder trained first (without --vae)."),
    size: int = typer.Option(16, "--size", help="Image side in pixels (a multiple of 4; the code is a quarter of it)."),
    batch: int = typer.Option(128, "--batch", help="Codes per step."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = Resume,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Train FLUX's recipe in miniature: a diffusion transformer moved by flow matching on the digits' codes,
    told the prompt by joint attention."""
    from genimg.learn.train_flow import FlowConfig, quality, train_flow

    _check_latent_run(epochs, vae_epochs, batch, size, vae)
    config = FlowConfig(vae=str(vae) if vae else None, epochs=epochs, vae_epochs=vae_epochs, size=size, batch=batch,
                        seed=seed)
    _train_run(train_flow, output, config, resume, overwrite, quiet, "training the flow DiT",
               vae_progress="training the autoencoder")
    _print_measured(output, quality(output), json, f"samples in {output / 'samples'}")


@app.command("distill")
def distill(
    teacher: Path = typer.Argument(..., help="A run of `genimg learn flow` to distil."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the student (student.safetensors) and its record."),
    pairs: int = typer.Option(4096, "--pairs", help="Guided teacher samples the student straightens its paths on."),
    teacher_steps: int = typer.Option(16, "--teacher-steps", help="Euler steps of each teacher sample."),
    epochs: int = typer.Option(10, "--epochs", help="Passes of the student over the pairs."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: o.Overwrite = False,
    json: o.Json = False,
) -> None:
    """Distil a flow run into a few-step student by reflow (guidance distilled in): its 1-, 2- and 4-step
    samples measured beside the teacher's 50."""
    import json as _json

    from genimg.errors import UsageError
    from genimg.learn.train_flow import ReflowConfig, distill_flow, steps_table

    if pairs < 1 or teacher_steps < 1 or epochs < 1:
        raise UsageError("--pairs, --teacher-steps and --epochs must be at least 1")
    if not (teacher / "checkpoint.safetensors").is_file() or '"kind": "flow"' not in _read(teacher / "config.json"):
        raise UsageError(f"{teacher} is not a run of `genimg learn flow`; train one with `genimg learn flow -o {teacher}`")
    if (output / "student.safetensors").exists() and not overwrite:
        raise UsageError(f"{output} holds a student already; pass --overwrite to replace it, or choose another -o")
    distill_flow(output, ReflowConfig(str(teacher), pairs, teacher_steps, epochs=epochs, seed=seed))
    rows = steps_table({"teacher": teacher}, steps=(50,)) + steps_table({"student": output}, steps=(1, 2, 4))
    for row in rows:
        print(_json.dumps(row) if json else f"{row['run']:8} {row['steps']:3} steps: read as asked "
              f"{row['read as asked']:.1%}, FID {row['fid']:.2f}, {row['seconds for 100']:.2f} s for 100")


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


@app.command("controlnet")
def controlnet(
    base: Path = typer.Argument(..., help="A run of `genimg learn ddpm` to steer."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the ControlNet (controlnet.safetensors), its record and the figure."),
    steps: int = typer.Option(800, "--steps", help="Training steps."),
    batch: int = typer.Option(64, "--batch", help="Images (and their edge maps) per step."),
    lr: float = typer.Option(5e-4, "--lr", help="Learning rate of the copy and the zero convolutions."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Train a ControlNet by hand: a copy of a trained DDPM's encoder, joined by zero convolutions, learns to
    follow the digits' edge maps while the DDPM stays locked."""
    import json as _json

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.learn.sampling import load_base
    from genimg.learn.train_controlnet import ControlNetConfig, compare, train_controlnet

    if steps < 1 or batch < 1 or not lr > 0:
        raise UsageError("--steps and --batch must be at least 1, --lr above 0")
    load_base(base, "a ControlNet steers")  # a base that is no DDPM run says so before anything is written
    if (output / "controlnet.safetensors").exists() and not overwrite:
        raise UsageError(f"{output} already holds a ControlNet; pass --overwrite to replace it, or choose another -o")
    config = ControlNetConfig(steps=steps, batch=batch, lr=lr, seed=seed)
    with progress_reporter(quiet) as report:
        record = train_controlnet(base, output, config, _epoch_progress(report, "training ControlNet"))
    record.update(compare(base, output))
    if json:
        print(_json.dumps(record))
        return
    measured = "; ".join(f"{k} {v:.1%}" for k, v in record.items() if k.startswith(("read as", "ink overlap")))
    print(f"{output}: {record['trainable']:,} parameters trained beside the locked {record['base']:,} in "
          f"{record['seconds']:.0f} s; {measured}; figure {output / 'control.png'}")


@app.command("lora")
def lora(
    base: Path = typer.Argument(..., help="A run of `genimg learn ddpm` to adapt."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the adapter (lora.safetensors), its record and the before/after grids."),
    dataset: str = typer.Option("digits-bold", "--dataset", "-d", help="The new style: digits-bold (default), another dataset name, or a folder of images."),
    images: int = typer.Option(300, "--images", help="How many of its images the fine-tune sees."),
    steps: int = typer.Option(600, "--steps", help="Training steps."),
    rank: int = typer.Option(4, "--rank", help="r, the adapter's rank."),
    alpha: float = typer.Option(4.0, "--alpha", help="α; the update is scaled by α/r."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of A and B."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Fine-tune a trained DDPM with a hand-written LoRA (only the low-rank adapters train)."""
    import json as _json

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.learn.sampling import load_run
    from genimg.learn.train_lora import LoRAConfig, compare, train_lora

    if images < 1 or steps < 1 or rank < 1 or alpha <= 0 or not lr > 0:
        raise UsageError("--images, --steps and --rank must be at least 1, --alpha and --lr above 0")
    load_run(base)  # a base that is no run says so before anything is written
    if (output / "lora.safetensors").exists() and not overwrite:
        raise UsageError(f"{output} already holds an adapter; pass --overwrite to replace it, or choose another -o")
    config = LoRAConfig(dataset=dataset, images=images, steps=steps, rank=rank, alpha=alpha, lr=lr, seed=seed)
    with progress_reporter(quiet) as report:
        record = train_lora(base, output, config, _epoch_progress(report, "training LoRA"))
    record.update(compare(base, output))
    if json:
        print(_json.dumps(record))
        return
    target = record["ink of the style's images"]
    print(f"{output}: {record['trainable']:,} of {record['total']:,} parameters trained "
          f"({record['trainable'] / record['total']:.1%}) in {record['seconds']:.0f} s; ink {record['ink before']:.3f} "
          f"before -> {record['ink after']:.3f} after (the style's images: {target:.3f}); "
          f"grids {output / 'before.png'}, {output / 'after.png'}")


@app.command("dcgan")
def dcgan(
    output: Path = Run,
    dataset: str = Dataset,
    epochs: int = typer.Option(300, "--epochs", help="Passes over the data."),
    size: int = typer.Option(32, "--size", help="Image side: 32 or 64."),
    batch: int = typer.Option(64, "--batch", help="Images per step."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Train D on 1 - this for real images (0.1 is common)."),
    conditional: bool = typer.Option(False, "--conditional/--unconditional",
                                     help="Learn the classes too (a conditional GAN), so `learn sample --class` can ask for one."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = Resume,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train a DCGAN from scratch."""
    from genimg.errors import UsageError
    from genimg.learn.train_dcgan import GANConfig, train_dcgan

    if size not in (32, 64):
        raise UsageError(f"--size must be 32 or 64 for DCGAN (got {size})")
    if not 0 <= label_smoothing < 0.5:
        raise UsageError("--label-smoothing must be between 0 and 0.5")
    config = GANConfig(dataset=dataset, epochs=epochs, size=size, batch=batch, label_smoothing=label_smoothing,
                       conditional=conditional, seed=seed)
    _train_run(train_dcgan, output, config, resume, overwrite, quiet, "training DCGAN")
    print(f"{output}: samples in {output / 'samples'}, loss curve {output / 'loss.png'}")


@app.command("sample")
def sample(
    run: Path = typer.Argument(..., help="A run folder from `genimg learn ddpm`, `ldm`, `flow` or `dcgan`."),
    label: Optional[int] = typer.Option(None, "--class", help="Class to draw (conditional runs); default: all in turn."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="ldm runs: the text, e.g. \"a seven\" (default: \"a <class>\" for each class in turn)."),
    guidance: float = typer.Option(3.0, "--guidance", help="Classifier-free guidance scale (1 = none)."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddpm (all T steps), ddim, euler or dpmpp-2m (DPM-Solver++ 2M)."),
    steps: int = typer.Option(50, "--steps", help="Steps of ddim, euler and dpmpp-2m."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM η: 0 deterministic, 1 DDPM-like."),
    count: int = typer.Option(64, "--count", "-n", help="How many images."),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Grid PNG (default RUN/sample.png); a GIF of the reverse process goes beside it."),
    overwrite: o.Overwrite = False,
) -> None:
    """Sample a grid (and a reverse-process GIF) from a trained run."""
    from genimg.errors import UsageError
    from genimg.learn.pictures import save_gif, save_grid
    from genimg.learn.sampling import SampleRequest, sample_run

    from genimg.learn.samplers import SAMPLERS

    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler must be one of {', '.join(SAMPLERS)} (got {sampler!r})")
    if count < 1 or steps < 1:
        raise UsageError("--count and --steps must be at least 1")
    output = output or run / "sample.png"
    for path in (output, output.with_suffix(".gif")):
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
    images, frames = sample_run(run, SampleRequest(count, label, guidance, sampler, steps, eta, seed, prompt=prompt))
    save_grid(images, output)
    print(output)
    if frames:
        print(save_gif(frames, output.with_suffix(".gif"), nrow=8))
@app.command("fid")
def fid(
    run: Path = typer.Argument(..., help="A run of `genimg learn ddpm` or `dcgan` on digits."),
    count: int = typer.Option(500, "--count", "-n", help="Samples to measure (more: a steadier number)."),
    sampler: str = typer.Option("ddim", "--sampler", help="DDPM runs: ddim, euler, dpmpp-2m or ddpm."),
    steps: int = typer.Option(50, "--steps", help="DDPM runs: sampling steps."),
    seed: int = typer.Option(0, "--seed"),
    json: o.Json = False,
) -> None:
    """FID of a run's samples against the real digits, in the course's digit classifier's features."""
    import json as _json

    from genimg.errors import UsageError
    from genimg.learn import datasets
    from genimg.learn.metrics import fid as frechet, train_digit_features
    from genimg.learn.samplers import SAMPLERS
    from genimg.learn.sampling import SampleRequest, load_run, sample_run

    if count < 2 or steps < 1 or sampler not in SAMPLERS:
        raise UsageError(f"--count must be at least 2, --steps at least 1, --sampler one of {', '.join(SAMPLERS)}")
    config = load_run(run)
    if not config.dataset.startswith("digits"):
        raise UsageError(f"{run} was trained on {config.dataset}; FID here is measured in a digit classifier's "
                         "features, which say nothing of other images")
    digits = datasets.load("digits", 16)
    net = train_digit_features(digits.images, digits.labels)
    images, _ = sample_run(run, SampleRequest(count=count, sampler=sampler, steps=steps, seed=seed, gif=False))
    value = frechet(net, digits.images, images)
    if json:
        print(_json.dumps({"run": str(run), "fid": round(value, 4), "count": count, "sampler": sampler, "steps": steps}))
    else:
        print(f"{run}: FID {value:.3f} against the {len(digits.images)} real digits ({count} samples)")
