"""Model lines are objects: a family's behaviour is asked of its line, nothing else decides by a family's
name, and a new line is a families.toml row, pipeline-table rows, an alias and one module — nothing more."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

import genimg
from genimg.models.families import FAMILIES, line_of
from genimg.models.lines import ModelLine

PACKAGE = Path(genimg.__file__).parent
# Allowed to name families: the lines themselves, and the test fixtures that build each family's tiny model.
EXEMPT = ("models/lines/", "testing/", "learn/")
# A comparison or membership test against a family's (or line's) name, in any spelling of the attribute.
BRANCH = re.compile(r"""(family|line|\.name)\s*(==|!=)\s*["'](%s)["']|(family|line)\s+(not\s+)?in\s+[(\[{]\s*["'](%s)["']"""
                    % ("|".join(map(re.escape, FAMILIES)), "|".join(map(re.escape, FAMILIES))))


def test_nothing_outside_the_lines_branches_on_a_familys_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(EXEMPT):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if BRANCH.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "decide by the model line instead:\n" + "\n".join(found)


def test_every_family_has_a_line_object_with_a_training_objective():
    for name, family in FAMILIES.items():
        line = line_of(name)
        assert isinstance(line, ModelLine) and line.name == family.line, name
        assert line.objective is not None, name  # lora-train trains every line genimg has


def test_a_new_line_is_a_toml_row_pipeline_rows_an_alias_and_one_module(tiny_models, tmp_path, monkeypatch):
    """A toy line on the SD architecture whose one difference, in its module, is to read CLIP one layer
    earlier: its image of a weighted prompt is SD's image of the same prompt at A1111's Clip skip 2."""
    import genimg.models.lines as lines_package
    from genimg.generation import generate
    from genimg.models import families
    from genimg.paths import config_dir
    from genimg.pipelines import PIPELINES
    from genimg.spec import GenerationSpec

    # 1. the families.toml row (the real file, one row added), read by the real loader
    table = tmp_path / "families.toml"
    sd_row = families.FAMILY_FILE.read_text().split("[sd]\n", 1)[1].split("\n[", 1)[0]
    table.write_text(families.FAMILY_FILE.read_text() + "\n[toy]\n"
                     + sd_row.replace('line = "sd"', 'line = "toy"').replace('label = "Stable Diffusion 1.x/2.x"',
                                                                             'label = "Toy diffusion"')
                     .replace("pipeline_prefixes = [", "pipeline_prefixes = [\"ToyPipeline\", "))
    monkeypatch.setattr(families, "FAMILY_FILE", table)
    monkeypatch.setattr(families, "FAMILIES", families._load())
    for name, family in families.FAMILIES.items():
        monkeypatch.setitem(FAMILIES, name, family)  # modules that imported the table see the new row
    # 2. the pipeline-table rows
    for task in ("txt2img", "img2img"):
        monkeypatch.setitem(PIPELINES, ("toy", task, None), PIPELINES[("sd", task, None)])
    # 3. the alias
    config_dir().mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(lines_package, "__path__", [*lines_package.__path__, str(tmp_path / "lines")])
    (config_dir() / "aliases.toml").write_text(f'[toy-model]\nfamily = "toy"\npath = "{tiny_models["sd"]}"\n')
    # 4. the one module
    (tmp_path / "lines").mkdir()
    (tmp_path / "lines" / "toy.py").write_text(
        "from genimg.models.lines.sd import SDLine\n\n\n"
        "class ToyLine(SDLine):\n"
        "    name = 'toy'\n\n"
        "    def prompt_hidden(self, encoder, out, clip_skip):\n"
        "        return super().prompt_hidden(encoder, out, (clip_skip or 0) + 1)\n\n\n"
        "LINE = ToyLine()\n")
    try:
        assert line_of("toy").name == "toy"
        spec = GenerationSpec("a (red:1.2) circle", width=64, height=64, steps=3, seed=11, preset="cpu")
        [toy] = generate(spec.replace(model="toy-model"))
        [sd_skip2] = generate(spec.replace(model=str(tiny_models["sd"]), clip_skip=2))
        [sd_plain] = generate(spec.replace(model=str(tiny_models["sd"])))
    finally:
        (config_dir() / "aliases.toml").unlink()
        sys.modules.pop("genimg.models.lines.toy", None)
    assert toy.plan.ref.family == "toy" and toy.summary()["model"] == "toy-model"
    assert np.array_equal(np.asarray(toy.image), np.asarray(sd_skip2.image))
    assert not np.array_equal(np.asarray(toy.image), np.asarray(sd_plain.image))  # the line's own code ran
