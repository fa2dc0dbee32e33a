"""Prompt embeddings the way A1111 makes them, for SD1.x/2.x and SDXL.

The prompt is parsed for weights (``weighting.parse``), tokenized fragment by fragment, and cut into
chunks of 75 tokens (``BREAK`` ends a chunk early). Each chunk is encoded on its own as
``[BOS] tokens [EOS] padding`` (77 tokens, what CLIP was trained on); each token's hidden state is
multiplied by its weight, then the chunk is rescaled so its mean is what it was before weighting
(A1111's ``process_tokens``); the chunks are concatenated along the sequence. The negative prompt is
encoded the same way and both are padded with empty chunks to the same length. SDXL concatenates
both encoders' penultimate hidden states and takes the pooled embedding of the first chunk from the
second encoder, as diffusers' SDXL pipelines do.

Only prompts that need it go through here (weights, BREAK, or more than 75 tokens); others are left
to the pipeline, whose encoding is the same for them.
"""

from __future__ import annotations

from genimg.third_party import execution_device
from genimg.prompting.weighting import has_syntax, parse

CHUNK = 75


def needs_own_encoding(tokenizer, texts: list[str]) -> bool:
    return any(has_syntax(t) or len(tokenizer(t, add_special_tokens=False).input_ids) > CHUNK for t in texts)


def chunks(tokenizer, prompt: str) -> list[list[tuple[int, float]]]:
    """The prompt as chunks of at most 75 (token id, weight) pairs."""
    out: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for fragment in parse(prompt):
        if fragment.is_break:
            out.append(current)
            current = []
            continue
        for token in tokenizer(fragment.text, add_special_tokens=False).input_ids:
            if len(current) == CHUNK:
                out.append(current)
                current = []
            current.append((token, fragment.weight))
    out.append(current)
    return out


def _ids(tokenizer, chunk) -> list[int]:
    """``[BOS] tokens [EOS] padding``: 77 ids, as CLIP was trained on them."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.bos_token_id] + [t for t, _ in chunk] + [tokenizer.eos_token_id]
    return ids + [pad] * (CHUNK + 2 - len(ids))


def _weighted(hidden, chunk):
    """Each token's state times its weight, then the whole rescaled to its unweighted mean (A1111)."""
    import torch

    weights = [1.0] + [w for _, w in chunk] + [1.0] * (CHUNK + 1 - len(chunk))
    if all(w == 1.0 for w in weights):
        return hidden  # nothing to weigh: exactly the plain encoding
    w = torch.tensor(weights, device=hidden.device, dtype=hidden.dtype)[None, :, None]
    original_mean = hidden.mean()
    weighted = hidden * w
    # A mean at rounding-noise level (a final layer norm without bias averages to zero) cannot be rescaled
    # to: the ratio of two noises would scale the whole chunk at random, differently on each CPU's kernels.
    # Compared with the states' size, not an absolute: the weights then stand as they are, on every machine.
    if abs(float(weighted.mean())) <= 1e-6 * float(weighted.abs().mean()):
        return weighted
    return weighted * (original_mean / weighted.mean())


def encode(pipe, family: str, prompts: list[str], negatives: list[str] | None, clip_skip: int | None = None):
    """``prompt_embeds`` (and for SDXL the pooled ones) for every prompt and negative prompt of a batch;
    ``clip_skip`` layers left out at the end of CLIP, counted as diffusers counts them."""
    import torch

    from genimg.models.families import line_of

    line = line_of(family)  # which encoders, which of their layers, whether a pooled embedding goes too
    encoders = line.prompt_encoders(pipe)
    texts = list(prompts) + list(negatives or [])
    split = [chunks(encoders[0][0], text) for text in texts]
    length = max(len(c) for c in split)
    device = execution_device(pipe)
    embeds, pooled = [], []
    with torch.no_grad():
        for text_chunks in split:
            text_chunks = text_chunks + [[]] * (length - len(text_chunks))  # pad with empty chunks
            per_chunk, first_pooled = [], None
            for n, chunk in enumerate(text_chunks):
                parts = []
                for tokenizer, encoder in encoders:
                    out = encoder(torch.tensor([_ids(tokenizer, chunk)], device=device), output_hidden_states=True)
                    parts.append(line.prompt_hidden(encoder, out, clip_skip))
                    if n == 0 and getattr(out, "text_embeds", None) is not None:  # SDXL's second encoder
                        first_pooled = out.text_embeds
                # SDXL: weights and the mean over both encoders' states together, as A1111 does
                per_chunk.append(_weighted(torch.cat(parts, dim=-1), chunk))
            embeds.append(torch.cat(per_chunk, dim=1))
            pooled.append(first_pooled)
    dtype = encoders[0][1].dtype
    prompt_embeds = torch.cat(embeds[:len(prompts)]).to(dtype)
    args = {"prompt_embeds": prompt_embeds}
    if negatives is not None:
        args["negative_prompt_embeds"] = torch.cat(embeds[len(prompts):]).to(dtype)
    if line.pooled_prompt:
        args["pooled_prompt_embeds"] = torch.cat(pooled[:len(prompts)]).to(dtype)
        if negatives is not None:
            args["negative_pooled_prompt_embeds"] = torch.cat(pooled[len(prompts):]).to(dtype)
    return args
