"""Train the course's diffusion transformer (dit.py) by flow matching (flow.py) on the LDM chapter's latent
codes, told the prompt by joint attention: FLUX's recipe at the size of a handwritten digit. The autoencoder
is the LDM chapter's (trained into RUN/vae first, or ``--vae`` a trained one). Checkpoints every epoch and
resumes exactly. ``genimg learn flow`` runs it; :func:`steps_table` compares it with the LDM step for step."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from genimg.learn.runs import (Progress, end_epoch, log_losses, one_cycle, open_run, read_losses, resume_training,
                               training_state)
from genimg.output.plots import loss_curve


@dataclass
class FlowConfig:
    dataset: str = "digits"
    size: int = 16
    vae: str | None = None  # a `genimg learn vae --spatial` run (or an ldm run's RUN/vae); None: train one first
    vae_epochs: int = 100
    vae_beta: float = 0.05
    latent: int = 4
    epochs: int = 150
    batch: int = 128
    lr: float = 1e-3
    dim: int = 96  # the transformer's width
    depth: int = 4  # double-stream blocks
    heads: int = 4
    text_layers: int = 1
    label_dropout: float = 0.1  # prompts replaced by the empty one (for guidance)
    ema_decay: float = 0.995
    shift: float = 1.0  # the sampling schedule's shift (flow.py): 4×4 codes need none
    seed: int = 0
    sample_every: int = 25
    limit: int | None = None
    conditional: bool = True
    kind: str = field(default="flow", init=False)


class LatentFlow(torch.nn.Module):
    """The whole model: the frozen autoencoder, the codes' scale, the tokenizer and the DiT's velocity."""

    def __init__(self, vae, model, tokenizer, scale: float, shift: float = 1.0):
        super().__init__()
        self.vae, self.model, self.tokenizer = vae.eval().requires_grad_(False), model, tokenizer
        self.scale, self.shift = scale, shift

    def loss(self, latents, prompts: list[str], generator: torch.Generator):
        """Flow matching's loss at logit-normal times, on scaled codes, conditioned on the prompts."""
        from genimg.learn.flow import flow_loss, logit_normal_times

        noise = torch.randn(latents.shape, generator=generator)
        t = logit_normal_times(len(latents), generator)
        return flow_loss(self.model, latents, noise, t, tokens=self.tokenizer(prompts))

    @torch.no_grad()
    def sample(self, prompts: list[str], guidance: float = 3.0, steps: int = 20,
               generator: torch.Generator | None = None):
        """Images in [−1, 1]: Euler on the guided velocity (flow.guided) from noise (t = 1) to codes (t = 0),
        then decoded; with guidance 1 (a distilled student: its guidance is in its weights) one call a step."""
        from genimg.learn.flow import guided, sample

        tokens, empty = self.tokenizer(prompts), self.tokenizer([""] * len(prompts))
        noise = torch.randn((len(prompts), *self.vae.latent_shape), generator=generator)
        velocity = self.model if guidance == 1 else guided(self.model, empty, guidance)
        return self.vae.decode(sample(velocity, noise, steps, self.shift, tokens=tokens) / self.scale)


def build_flow(config: FlowConfig, vae, class_names: list[str], scale: float) -> LatentFlow:
    from genimg.learn.dit import DiT
    from genimg.learn.ldm import Tokenizer

    tokenizer = Tokenizer.for_classes(class_names)
    model = DiT(vae.latent, len(tokenizer.vocabulary), tokenizer.length, config.dim, config.depth, config.heads,
                text_layers=config.text_layers)
    return LatentFlow(vae, model, tokenizer, scale, config.shift)


def train_flow(run: Path, config: FlowConfig, resume: bool = False, overwrite: bool = False,
               progress: Progress | None = None, vae_progress: Progress | None = None,
               stop_after_epoch: int | None = None) -> FlowConfig:
    from genimg.learn import pictures
    from genimg.learn.ema import EMA
    from genimg.learn.ldm import TEMPLATES, latent_scale, prompt_for
    from genimg.learn.train_ldm import first_stage

    vae = first_stage(run, config, None) if config.vae else None  # a wrong --vae: nothing written
    config, data, _ = open_run(run, config, resume, overwrite)
    vae = vae or first_stage(run, config, vae_progress)
    with torch.no_grad():
        mu = vae.encoder(data.images)[0]
    flow = build_flow(config, vae, data.class_names, latent_scale(mu))
    latents = mu * flow.scale
    model = flow.model
    ema = EMA(model, config.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    steps_per_epoch = (len(latents) + config.batch - 1) // config.batch
    sched = one_cycle(opt, config.lr, steps_per_epoch * config.epochs)
    data_gen = torch.Generator().manual_seed(config.seed)
    epoch = 0
    if resume:
        sched, epoch = resume_training(run, model, ema, opt, sched, data_gen, config.lr, steps_per_epoch * config.epochs)
    began = time.perf_counter()
    while epoch < config.epochs:
        model.train()
        order = torch.randperm(len(latents), generator=data_gen)
        templates = torch.randint(len(TEMPLATES), (len(latents),), generator=data_gen)
        dropped = torch.rand(len(latents), generator=data_gen) < config.label_dropout
        rows = []
        for i in range(steps_per_epoch):
            index = order[i * config.batch:(i + 1) * config.batch]
            prompts = ["" if dropped[j] else prompt_for(data.class_names[int(data.labels[j])], TEMPLATES[int(templates[j])])
                       for j in index]
            loss = flow.loss(latents[index], prompts, data_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(model)
            rows.append({"epoch": epoch + 1, "step": epoch * steps_per_epoch + i + 1, "loss": round(loss.item(), 6)})
        epoch += 1
        log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            sampler = build_flow(config, vae, data.class_names, flow.scale)
            sampler.model.load_state_dict(ema.model.state_dict())
            prompts = [prompt_for(name) for name in data.class_names for _ in range(8)]
            pictures.save_grid(sampler.sample(prompts, generator=torch.Generator().manual_seed(0)),
                               run / "samples" / f"epoch_{epoch:03d}.png")
        state = training_state(model, ema, opt, sched, data_gen, epoch, scale=torch.tensor(flow.scale))
        end_epoch(run, state, rows, progress, config.epochs, began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    loss_curve(read_losses(run), run / "loss.png")
    return config


def load_flow(run: Path):
    """A trained run's model (EMA weights), config and class names."""
    import json

    from genimg.learn import datasets
    from genimg.learn.runs import config_from_dict
    from genimg.learn.train_ldm import first_stage
    from genimg.state_file import load_state

    config = config_from_dict(json.loads((run / "config.json").read_text()), {"flow": FlowConfig})
    state = load_state(run / "checkpoint.safetensors")
    class_names = datasets.load(config.dataset, 8, limit=1).class_names
    flow = build_flow(config, first_stage(run, config, None), class_names, float(state["scale"]))
    flow.model.load_state_dict(state["ema"])
    return flow.eval(), config, class_names


@dataclass
class ReflowConfig:
    teacher: str  # a `genimg learn flow` run
    pairs: int = 4096  # guided teacher samples to straighten the paths on
    teacher_steps: int = 16
    guidance: float = 3.0
    epochs: int = 10
    batch: int = 128
    lr: float = 2e-4
    seed: int = 0
    kind: str = field(default="reflow", init=False)


def distill_flow(run: Path, config: ReflowConfig, on_epoch=None) -> ReflowConfig:
    """distill.py's reflow of a trained flow run into RUN/student.safetensors: a student sampled unguided in
    one to four steps. Prompts drawn as in training (every template, every class)."""
    import json

    from safetensors.torch import save_file

    from genimg.learn.distill import reflow
    from genimg.learn.ldm import TEMPLATES, prompt_for

    teacher, _, names = load_flow(Path(config.teacher))

    def prompts_of(n, generator):
        classes = torch.randint(len(names), (n,), generator=generator)
        templates = torch.randint(len(TEMPLATES), (n,), generator=generator)
        prompts = [prompt_for(names[int(c)], TEMPLATES[int(k)]) for c, k in zip(classes, templates)]
        return teacher.tokenizer(prompts), teacher.tokenizer([""] * n)

    began = time.perf_counter()
    student = reflow(teacher.model, teacher.vae.latent_shape, prompts_of, config.pairs, config.teacher_steps,
                     config.guidance, config.epochs, config.batch, config.lr, config.seed, on_epoch)
    run.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(run / "student.safetensors"))
    record = {**asdict(config), "seconds": round(time.perf_counter() - began, 1)}
    (run / "config.json").write_text(json.dumps(record))
    return config


def load_student(run: Path):
    """A reflow run's student in its teacher's autoencoder and tokenizer (sample it with guidance 1)."""
    import json

    from safetensors.torch import load_file

    data = {k: v for k, v in json.loads((run / "config.json").read_text()).items() if k not in ("kind", "seconds")}
    flow, config, names = load_flow(Path(ReflowConfig(**data).teacher))
    flow.model.load_state_dict(load_file(str(run / "student.safetensors")))
    return flow.eval(), config, names


STEPS = (1, 2, 4, 8, 16, 50)


@torch.no_grad()
def steps_table(runs: dict[str, Path], steps=STEPS, per_class: int = 10, fid_count: int = 200) -> list[dict]:
    """Quality against sampling steps, one row per (run, steps): the share of guided samples for "a <digit>"
    read as that digit by the course's classifier, and their FID — flow runs by Euler, LDM runs by DDIM."""
    from genimg.learn import datasets
    from genimg.learn.ldm import prompt_for
    from genimg.learn.metrics import fid, train_digit_features
    import json

    from genimg.learn.train_ldm import load_ldm

    rows = []
    judge = digits = None
    wanted = torch.arange(10).repeat_interleave(per_class)
    for name, run in runs.items():
        kind = json.loads((run / "config.json").read_text())["kind"]
        model, config, _ = {"flow": load_flow, "ldm": load_ldm, "reflow": load_student}[kind](run)
        if judge is None:
            digits = datasets.load("digits", config.size)
            judge = train_digit_features(digits.images, digits.labels)
        for n in steps:
            def draw(prompts, seed):
                generator = torch.Generator().manual_seed(seed)
                if kind != "ldm":  # the student unguided: its guidance is distilled in
                    return model.sample(prompts, guidance=3.0 if kind == "flow" else 1.0, steps=n, generator=generator)
                return model.sample(prompts, sampler="ddim", steps=n, generator=generator)

            began = time.perf_counter()
            images = draw([prompt_for(str(int(k))) for k in wanted], 0)
            seconds = time.perf_counter() - began
            more = draw([prompt_for(str(k % 10)) for k in range(fid_count)], 1)
            rows.append({"run": name, "kind": kind, "steps": n,
                         "read as asked": round(float((judge(images).argmax(1) == wanted).float().mean()), 3),
                         "fid": round(fid(judge, digits.images, more), 3), "seconds for 100": round(seconds, 2)})
    return rows


def quality(run: Path, steps: int = 20) -> dict:
    """The chapter's measures at ``steps`` Euler steps: the share of guided samples read as the digit asked
    for, their FID (200 samples) and the time to sample 100."""
    [row] = steps_table({"flow": run}, steps=(steps,))
    return {"samples read as the digit asked for": row["read as asked"], "fid": row["fid"],
            "seconds to sample 100": row["seconds for 100"]}
