"""The course's own rules, checked on its source: plain PyTorch (no diffusers, peft, accelerate or
transformers anywhere under genimg/learn/), and the chapter files free of the product and of run
management (they import only torch, the standard library and other chapter files)."""

import ast
from pathlib import Path

import pytest

LEARN = Path(__file__).parents[2] / "genimg" / "learn"
CHAPTERS = ("vae", "schedule", "ddpm", "unet", "samplers", "ldm", "controlnet", "lora", "dcgan", "metrics", "ema")
LIBRARIES = ("diffusers", "peft", "accelerate", "transformers")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(LEARN.glob("*.py")), ids=lambda p: p.name)
def test_the_course_uses_no_library_that_does_it_for_it(path):
    assert not {n for n in _imports(path) if n.split(".")[0] in LIBRARIES}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_file_imports_torch_and_other_chapters_only(chapter):
    imported = _imports(LEARN / f"{chapter}.py")
    product = {n for n in imported if n.startswith("genimg") and n.removeprefix("genimg.learn.") not in CHAPTERS}
    assert not product, f"{chapter}.py imports {product}"
