"""Code of a model line that its data (families.toml, aliases.toml, the pipeline table) cannot say.

One module per line, named for it (``flux.py`` for FLUX.1, ``flux2.py`` for FLUX.2), found through the
family table by :func:`genimg.models.families.line_code`; a line that needs no code has no module. The
hooks a module may define, each optional:

- ``cut_prompt(pipe, text, limit) -> str | None``: the end of a prompt the text encoder does not read at
  ``max_sequence_length`` ``limit`` (None: all of it is read).
- ``check_reference(what, size)``: raise a UsageError for an image too small to edit from (before loading).
- ``objective(ref, config)``: the LoRA trainer's objective for the line (see genimg/train/objectives.py).
"""
