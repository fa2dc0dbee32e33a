"""A job's uploads: each input image a client sends written into the job's own folder (the client's name
chooses nothing of where), the spec renamed to those copies for running, and back to the client's names
for what the images record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genimg.inputs import IMAGE_SUFFIXES


def saved_uploads(uploads: dict[str, bytes], folder: Path) -> dict[str, str]:
    """Each upload written into ``folder``; the client's name -> the server's copy."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = {}
    for n, (name, data) in enumerate(uploads.items()):
        suffix = Path(name).suffix.lower()  # the client's name chooses nothing else of where the copy goes
        copy = folder / f"{n}{suffix if suffix in IMAGE_SUFFIXES else '.png'}"
        copy.write_bytes(data)
        copies[name] = str(copy)
    return copies


def client_spec(spec, client_paths: dict):
    """The spec as the client wrote it: the server's copies named by the client's names again."""
    return renamed(spec, client_paths)


def renamed(spec, names: dict):
    def name(value):
        return names.get(value, value)

    changes = {}
    if spec.image:
        changes["image"] = name(spec.image)
    if spec.references:
        changes["references"] = tuple(name(r) for r in spec.references)
    if spec.mask and spec.mask.path:
        changes["mask"] = replace(spec.mask, path=name(spec.mask.path))
    if spec.controls:
        changes["controls"] = tuple(replace(c, image=name(c.image)) for c in spec.controls)
    if spec.ip_adapters:
        changes["ip_adapters"] = tuple(replace(a, image=name(a.image)) for a in spec.ip_adapters)
    if spec.redux:
        changes["redux"] = tuple(replace(r, image=name(r.image)) for r in spec.redux)
    return spec.replace(**changes) if changes else spec
