"""Textual inversion embeddings (A1111's ``embeddings/`` files): a new word whose meaning is a few
learned token vectors. The word is the file's name, as in A1111 ("in the style of my-style"). SD1.x
files hold one tensor (``emb_params``, or a single key) as wide as the text encoder; SDXL files hold
``clip_l`` and ``clip_g``, one for each of its two encoders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError
from genimg.models.checkpoint import PICKLE_SUFFIXES, safetensors_header

# The text encoders' widths: CLIP ViT-L (SD1.x, SDXL's first), OpenCLIP ViT-H (SD2.x), bigG (SDXL's second).
_WIDTH_FAMILY = {768: "SD1.x", 1024: "SD2.x"}


@dataclass(frozen=True)
class Embedding:
    path: str
    token: str  # the word that calls it: the file name without its suffix

    @property
    def short_hash(self) -> str:
        """A1111's "TI hashes" value: the first 12 hex digits of the file's sha256."""
        import hashlib

        return hashlib.sha256(Path(self.path).read_bytes()).hexdigest()[:12]


def _find(name: str) -> Path:
    """A path as given, else a file of that name in the embedding folders (A1111's embeddings/)."""
    from genimg import config
    from genimg.paths import config_dir

    path = Path(name).expanduser()
    if path.exists():
        return path
    return config.search(name, "embedding_dirs", (".safetensors", *PICKLE_SUFFIXES), also=(config_dir() / "embeddings",)) or path


def check_embedding(text: str, ref, text_width: int | None, allow_pickle: bool) -> Embedding:
    """``--embedding FILE[:TOKEN]`` checked against the model: it exists, is safetensors (pickle if
    allowed), and has the vectors this family's text encoders take. The word is TOKEN, else the token a
    diffusers ``learned_embeds.safetensors`` names, else the file name (A1111's rule)."""
    path, token = _find(text), None
    head, sep, tail = text.rpartition(":")
    if sep and head and not path.exists() and _find(head).exists():
        path, token = _find(head), tail.strip()
    from genimg.models.families import FAMILIES, line_of

    if not FAMILIES[ref.family].weighted_prompts:  # the CLIP families are the ones with A1111's embeddings
        raise UsageError(f"textual inversion embeddings are for SD1.x/2.x and SDXL; {FAMILIES[ref.family].label}'s "
                         "text encoders take none")
    if not path.is_file():
        raise UsageError(f"embedding {text} does not exist")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UsageError(f"embedding {path.name} is a pickle file; convert it to .safetensors or pass --allow-pickle")
        return Embedding(str(path.resolve()), token or path.stem)
    header = {k: v for k, v in safetensors_header(path).items() if k != "__metadata__"}
    keys = line_of(ref.family).embedding_keys  # one tensor per text encoder, or one for the single encoder
    if keys:
        if not set(keys) <= set(header):
            raise UsageError(f"embedding {path.name} has no {'/'.join(keys)} vectors: it was made for "
                             f"{_made_for(header)}, not {FAMILIES[ref.family].label}")
    elif "clip_l" in header or len(header) != 1 and "emb_params" not in header:
        raise UsageError(f"embedding {path.name} was made for {_made_for(header)}, not {ref.name}")
    else:
        width = (header.get("emb_params") or next(iter(header.values())))["shape"][-1]
        if text_width and width != text_width:
            raise UsageError(f"embedding {path.name} has {width}-wide vectors ({_WIDTH_FAMILY.get(width, 'another model')}); "
                             f"{ref.name}'s text encoder takes {text_width}")
    named = [k for k in header if k not in ("emb_params", "clip_l", "clip_g")]
    return Embedding(str(path.resolve()), token or (named[0] if len(header) == 1 and named else path.stem))


def _made_for(header: dict) -> str:
    if {"clip_l", "clip_g"} <= set(header):
        return "SDXL"
    widths = {info["shape"][-1] for info in header.values() if info.get("shape")}
    return next((_WIDTH_FAMILY[w] for w in widths if w in _WIDTH_FAMILY), "another model")


def apply_embeddings(pipe, loaded, embeddings: tuple[Embedding, ...]) -> None:
    """Make ``pipe``'s tokenizers and text encoders (shared by its task pipelines) know exactly ``embeddings``."""
    from genimg.models.families import line_of

    wanted = tuple((e.path, e.token) for e in embeddings)  # a file taught as another word is another embedding
    if loaded.embedding_paths == wanted:
        return
    line = line_of(loaded.ref.family)
    if loaded.embedding_paths:  # from every tokenizer and text encoder they went into (SDXL: both)
        for tokenizer, encoder in line.prompt_encoders(pipe):
            pipe.unload_textual_inversion(tokenizer=tokenizer, text_encoder=encoder)
    loaded.embedding_paths = ()
    for embedding in embeddings:
        ids = pipe.tokenizer(embedding.token, add_special_tokens=False).input_ids
        if len(ids) == 1 and ids[0] != pipe.tokenizer.unk_token_id:
            raise UsageError(f"embedding {Path(embedding.path).name}: {embedding.token!r} is already a word the model "
                             "knows; give it another with FILE:TOKEN")
        try:
            if line.embedding_keys:  # one tensor per text encoder, each into its own
                from safetensors.torch import load_file

                state = load_file(embedding.path)
                for key, (tokenizer, encoder) in zip(line.embedding_keys, line.prompt_encoders(pipe)):
                    pipe.load_textual_inversion(state[key], token=embedding.token, text_encoder=encoder,
                                                tokenizer=tokenizer)
            else:
                pipe.load_textual_inversion(embedding.path, token=embedding.token)
        except (ValueError, KeyError, RuntimeError) as e:
            raise UsageError(f"cannot load embedding {Path(embedding.path).name}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    loaded.embedding_paths = wanted
