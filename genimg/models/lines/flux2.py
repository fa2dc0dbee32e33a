"""FLUX.2 ([dev] and [klein]): what the line needs beyond its data.

Both read the prompt with a language model through its chat template ([dev]: Mistral Small 3 with Black
Forest Labs' system message; [klein]: Qwen3 with thinking turned off), so the template's tokens count
against ``max_sequence_length`` too. Everything else (reference images, LoRAs, the 32-channel VAE and its
packing) diffusers' pipelines do themselves."""

from __future__ import annotations

from genimg.errors import UsageError

MIN_SIDE = 64  # Flux2ImageProcessor refuses reference images smaller than this on either side


def check_reference(what: str, size: tuple[int, int]) -> None:
    """An image the pipeline reads as a reference (the input of an edit, each --ref) is large enough."""
    if min(size) < MIN_SIDE:
        raise UsageError(f"{what} is {size[0]}x{size[1]}; FLUX.2 reads images at least {MIN_SIDE} pixels on each "
                         "side: pass a larger one (or upscale it)")


def cut_prompt(pipe, text: str, limit: int) -> str | None:
    """The end of ``text`` past ``limit`` tokens of the templated prompt, as the pipeline truncates it."""
    tokenizer = getattr(pipe.tokenizer, "tokenizer", pipe.tokenizer)  # [dev]'s is a Pixtral processor
    total = len(tokenizer(_templated(pipe, text), add_special_tokens=False).input_ids)
    if total <= limit:
        return None
    own = tokenizer(text, add_special_tokens=False).input_ids
    return tokenizer.decode(own[max(0, len(own) - (total - limit)):], skip_special_tokens=True)


def _templated(pipe, text: str) -> str:
    """The prompt as the pipeline gives it to its text encoder (see Flux2Pipeline and Flux2KleinPipeline)."""
    if hasattr(pipe, "system_message"):  # [dev]
        messages = [{"role": "system", "content": [{"type": "text", "text": pipe.system_message}]},
                    {"role": "user", "content": [{"type": "text", "text": text}]}]
        return pipe.tokenizer.apply_chat_template(messages, tokenize=False)
    return pipe.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                              add_generation_prompt=True, enable_thinking=False)
