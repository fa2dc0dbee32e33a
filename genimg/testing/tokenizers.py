"""Tokenizers built from nothing, so tiny models need no download: CLIP's (the demo model's builder), a
T5 unigram one for FLUX.1, and chat-templated ones for FLUX.2's language models (Qwen3's for [klein], a
Pixtral processor's for [dev]): a character each, with the special tokens and chat template shapes of
the real ones."""

from __future__ import annotations

from genimg.demo.tokenizer import CHARS, clip_tokenizer

__all__ = ["clip_tokenizer", "t5_tokenizer", "qwen_tokenizer", "pixtral_processor"]

# Qwen3's chat template, cut to what FLUX.2 [klein] uses: user turns, the generation prompt, thinking off.
QWEN_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n"
                 "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
# Mistral Small 3's, cut to text: a system prompt and user turns whose content is a list of text parts.
MISTRAL_TEMPLATE = ("<s>{% for m in messages %}{% set text = m['content'] if m['content'] is string else "
                    "m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') %}"
                    "{% if m['role'] == 'system' %}[SYSTEM_PROMPT]{{ text }}[/SYSTEM_PROMPT]"
                    "{% elif m['role'] == 'user' %}[INST]{{ text }}[/INST]{% else %}{{ text }}</s>{% endif %}{% endfor %}")


def _characters(special: list[str]):
    """A tokenizers ``Tokenizer``: ``special`` first, then one token per printable character."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(special + sorted(set(CHARS) | {" ", "\n"}))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=special[0]))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


def qwen_tokenizer():
    """A ``Qwen2TokenizerFast`` with Qwen3's special tokens and chat template (FLUX.2 [klein])."""
    from transformers import Qwen2TokenizerFast

    tok = Qwen2TokenizerFast(tokenizer_object=_characters(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
                             unk_token="<|endoftext|>", pad_token="<|endoftext|>", eos_token="<|im_end|>",
                             bos_token=None, model_max_length=512)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = QWEN_TEMPLATE
    return tok


PIXTRAL_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                   "[IMG]", "[IMG_BREAK]", "[IMG_END]"]


def pixtral_processor():
    """A ``PixtralProcessor`` (Mistral Small 3's, which FLUX.2 [dev] loads as its tokenizer)."""
    from transformers import PixtralImageProcessor, PixtralProcessor, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=_characters(PIXTRAL_SPECIAL), unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", pad_token="<pad>", model_max_length=512)
    tok.add_special_tokens({"additional_special_tokens": PIXTRAL_SPECIAL[4:]})
    return PixtralProcessor(image_processor=PixtralImageProcessor(patch_size=8, size={"longest_edge": 64}),
                            tokenizer=tok, patch_size=8, spatial_merge_size=2, chat_template=MISTRAL_TEMPLATE)


def t5_tokenizer():
    """A ``T5TokenizerFast`` over a unigram model of the printable characters (for FLUX)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)] + [(c, -2.0) for c in CHARS]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           model_max_length=512, extra_ids=0)
