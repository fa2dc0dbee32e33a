"""User text reaches the terminal as it was written: prompts are full of A1111's [ and ], and none of it is
read as Rich markup (or emoji codes) — a "[/x]" once ended the command with a MarkupError."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

TRICKY = st.text(alphabet=st.sampled_from(list("[]/()\\:=ab xyz:bold red,")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(TRICKY)
def test_a_warning_prints_any_text_exactly(text):
    from genimg.cli.render import warning_line

    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        warning_line(text)
    assert out.getvalue() == f"warning: {text}\n"


@settings(max_examples=100, deadline=None)
@given(TRICKY)
def test_progress_descriptions_show_any_model_name_exactly(text):
    from rich.console import Console
    from rich.progress import Progress

    from genimg.cli.render import Reporter

    from genimg.cli.render import progress_columns

    out = io.StringIO()
    screen = Console(file=out, width=300, markup=False, emoji=False)
    progress = Progress(*progress_columns(), console=screen)
    reporter = Reporter(progress, quiet=False)
    reporter("load", model=text)
    reporter("loaded", model=text)
    screen.print(progress.get_renderable())
    assert f"loaded {text}" in out.getvalue()


def test_a_prompt_with_a_stray_closing_tag_makes_its_image_and_says_so(cli, tmp_path):
    result = cli("txt2img", "a (dot [/x]", "--steps", "2", "--seed", "1", "-o", tmp_path / "a.png")
    assert result.code == 0, result
    assert "a (dot [/x]" in result.err and (tmp_path / "a.png").is_file()


def test_a_warning_quotes_the_bracketed_words_too(cli, tmp_path, tiny_models):
    prompt = "a (red:1.4) circle, [blurry] :smile:"
    result = cli("txt2img", prompt, "-m", tiny_models["flux"], "-W", "64", "-H", "64", "--steps", "1",
                 "--max-sequence-length", "32", "-o", tmp_path / "b.png")
    assert result.code == 0, result
    assert f"{prompt!r} is read as plain text" in result.err  # FLUX's T5 has no weights: every word quoted
