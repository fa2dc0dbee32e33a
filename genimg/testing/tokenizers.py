"""Tokenizers built from nothing, so tiny models need no download: CLIP's (the demo model's builder)
and a T5 unigram one for FLUX."""

from __future__ import annotations

from genimg.demo.tokenizer import CHARS, clip_tokenizer

__all__ = ["clip_tokenizer", "t5_tokenizer"]


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
