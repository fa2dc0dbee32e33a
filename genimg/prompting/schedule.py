"""A1111's prompt editing and alternation, read as A1111 reads them (``modules/prompt_parser.py``, with its
grammar): ``[from:to:when]`` is ``from`` until step ``when`` and ``to`` after (``when`` with a decimal point a
fraction of the steps, else a step), ``[to:when]`` and ``[from::when]`` add or drop words, ``[a|b]``
alternates every step; they nest, and inside and around them weighting stays as written for
:mod:`genimg.prompting.weighting`. A prompt becomes a schedule: (last step, text) pairs."""

from __future__ import annotations

from functools import lru_cache

GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""


@lru_cache(maxsize=1)
def _parser():
    import lark

    return lark.Lark(GRAMMAR)


def _tree(prompt: str):
    import lark

    try:
        return _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return None  # not A1111 syntax it can schedule: the prompt is read as it is (A1111 does the same)


def is_scheduled(prompt: str) -> bool:
    """Whether ``prompt`` edits or alternates itself over the steps."""
    if "[" not in prompt:
        return False
    tree = _tree(prompt)
    return tree is not None and any(True for _ in tree.find_pred(lambda t: t.data in ("scheduled", "alternate")))


def schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """``prompt`` over ``steps`` steps: (last step, text) pairs in order, as A1111's
    ``get_learned_conditioning_prompt_schedules`` makes them; step ``s`` (from 0) reads the first pair whose
    last step is at least ``s``."""
    import lark

    tree = _tree(prompt) if "[" in prompt else None
    if tree is None:
        return [(steps, prompt)]
    boundaries = [steps]

    class Collect(lark.Visitor):
        def scheduled(self, node):
            text = node.children[-2]
            value = float(text)
            value = value * steps if "." in text else value  # a decimal point: a fraction of the steps
            node.children[-2] = min(steps, int(value))
            if node.children[-2] >= 1:
                boundaries.append(node.children[-2])

        def alternate(self, node):
            boundaries.extend(range(1, steps + 1))

    Collect().visit(tree)

    def at_step(step: int) -> str:
        class AtStep(lark.Transformer):
            def scheduled(self, args):
                before, after, _, when, _ = args
                yield (before or ()) if step <= when else after

            def alternate(self, args):
                args = ["" if not arg else arg for arg in args]
                yield args[(step - 1) % len(args)]

            def start(self, args):
                def flatten(x):
                    if isinstance(x, str):
                        yield x
                    else:
                        for item in x:
                            yield from flatten(item)

                return "".join(flatten(args))

            def plain(self, args):
                yield args[0].value

            def __default__(self, data, children, meta):
                for child in children:
                    yield child

        return AtStep().transform(tree)

    return [(step, at_step(step)) for step in sorted(set(boundaries))]


def text_at(pairs: list[tuple[int, str]], step: int) -> str:
    """The text a schedule's step ``step`` (counted from 0) reads: A1111's ``reconstruct_cond_batch``."""
    return next((text for last, text in pairs if step <= last), pairs[-1][1])
