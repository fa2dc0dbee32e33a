"""The README's "What genimg guarantees" list names, for each promise, the test that checks it: every test it
names exists (a renamed or deleted test would leave a promise unchecked)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("### What genimg guarantees", 1)[1].split("\n## ", 1)[0]


def test_every_promise_names_a_test_that_exists():
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", _section())
    assert len(named) >= 12
    for path, name in named:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"the README's guarantee names {path}::{name}, which does not exist"


def test_every_promise_of_the_list_names_its_test():
    promises = [block for block in re.split(r"\n- ", _section())[1:]]
    assert promises and all("`tests/" in promise for promise in promises)
