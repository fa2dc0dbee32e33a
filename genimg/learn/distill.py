"""Few steps by distillation: *reflow* (Liu et al. 2022, "Flow Straight and Fast"), with the guidance baked in.

A flow model trained on random pairs (data x₀, noise ε) learns the *average* direction through each point:
where many straight lines cross, the learned paths bend, and one big Euler step from the noise lands
between the digits it could become — a blur. Reflow straightens them:

1. Let the trained model (the *teacher*) pick the pairs: for each noise ε, run its ODE with many small
   steps to the sample x₀ = Φ(ε) it leads to — with classifier-free guidance, as the user would sample.
2. Train a *student* (starting from the teacher's weights) with the same flow-matching loss on those
   pairs. The lines ε → Φ(ε) no longer cross (the ODE's paths never do), so their average is the line
   itself: the student's paths are straight and one Euler step ε − v(ε, 1) already reaches Φ(ε).

The student is trained on guided samples but sampled without guidance — one model call per step instead
of two: this is guidance distillation, what FLUX.1 [dev] and [schnell] ship. ``sd-turbo``, LCM and
SDXL-Lightning reach one to four steps by other distillations (adversarial, consistency), to the same end.
"""

from __future__ import annotations

import copy

import torch

from genimg.learn.flow import flow_loss, guided, logit_normal_times, sample


@torch.no_grad()
def teacher_pairs(teacher, tokens: torch.Tensor, empty: torch.Tensor, noise: torch.Tensor, guidance: float,
                  steps: int) -> torch.Tensor:
    """Φ(ε): where the teacher's guided ODE takes each noise, in ``steps`` Euler steps (the new pairs' x₀)."""
    return sample(guided(teacher, empty, guidance), noise, steps, tokens=tokens)


def reflow_loss(student, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor):
    """Flow matching's loss, on the teacher's pairs instead of random ones: nothing else changes."""
    return flow_loss(student, x0, noise, t, tokens=tokens)


def reflow(teacher, shape: tuple[int, ...], prompts_of, pairs: int = 4096, teacher_steps: int = 16, guidance: float = 3.0,
           epochs: int = 10, batch: int = 128, lr: float = 2e-4, seed: int = 0, on_epoch=None):
    """A student distilled from ``teacher`` (a velocity model ``v(x, t, tokens)`` of latents of ``shape``):
    ``pairs`` guided teacher samples of the prompts ``prompts_of(n, generator)`` gives (token ids, and the
    empty prompt's), then ``epochs`` of the reflow loss on them. Returns the student."""
    generator = torch.Generator().manual_seed(seed)
    noises, samples, prompts = [], [], []
    teacher.eval()
    for start in range(0, pairs, batch):
        tokens, empty = prompts_of(min(batch, pairs - start), generator)
        noise = torch.randn((len(tokens), *shape), generator=generator)
        samples.append(teacher_pairs(teacher, tokens, empty, noise, guidance, teacher_steps))
        noises.append(noise)
        prompts.append(tokens)
    noises, samples, prompts = torch.cat(noises), torch.cat(samples), torch.cat(prompts)
    student = copy.deepcopy(teacher).train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    for epoch in range(epochs):
        order = torch.randperm(len(noises), generator=generator)
        for i in range(0, len(order), batch):
            index = order[i:i + batch]
            t = logit_normal_times(len(index), generator)
            loss = reflow_loss(student, samples[index], noises[index], t, prompts[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch:
            on_epoch(epoch + 1, epochs, loss.item())
    return student.eval()

