"""Output names: folders and templates, and prompt-derived parts made safe."""

import pytest

from genimg.errors import UsageError
from genimg.output.naming import output_paths, sanitize
from genimg.spec import GenerationSpec


@pytest.mark.parametrize("text,name", [
    ("a cat", "a_cat"), ("../../etc/passwd", "etc_passwd"), ("", "image"), ("...", "image"),
    ("ünïcödé ✨ stars", "ünïcödé_stars"), ("über ñandú", "über_ñandú"), ("a/b\\c:d*e?f", "a_b_c_d_e_f"), ("x" * 200, "x" * 60), ("C:\\Windows\\system32", "C_Windows_system32"),
])
def test_sanitize(text, name):
    assert sanitize(text) == name


def test_another_task_is_named_in_the_file_so_it_never_takes_a_txt2img_name(tmp_path):
    made = GenerationSpec("a cat", seed=5, width=64, height=64, steps=1)
    edited = made.replace(task="img2img", image="in.png")
    grown = made.replace(task="inpaint", image="in.png", outpaint={"left": 64})
    assert [output_paths(tmp_path, [s], "m")[0].name for s in (made, edited, grown)] == \
        ["a_cat-5.png", "a_cat-img2img-5.png", "a_cat-outpaint-5.png"]
    assert output_paths(tmp_path / "{task}-{index}.png", [edited], "m") == [tmp_path / "img2img-0.png"]


def test_default_output_is_a_folder_with_prompt_and_seed(tmp_path):
    specs = [GenerationSpec("hello world", seed=s, width=64, height=64, steps=1) for s in (5, 6)]
    assert output_paths(tmp_path, specs, "m") == [tmp_path / "hello_world-5.png", tmp_path / "hello_world-6.png"]


def test_plain_file_name_with_several_images_gets_the_seed(tmp_path):
    specs = [GenerationSpec("p", seed=s) for s in (5, 6)]
    assert output_paths(tmp_path / "cat.png", specs, "m") == [tmp_path / "cat-5.png", tmp_path / "cat-6.png"]


def test_template_that_collides_is_refused(tmp_path):
    specs = [GenerationSpec("p", seed=s) for s in (5, 6)]
    with pytest.raises(UsageError, match="same name"):
        output_paths(tmp_path / "{prompt}.png", specs, "m")


def test_template_with_unknown_field(tmp_path):
    with pytest.raises(UsageError, match="bad field"):
        output_paths(tmp_path / "{colour}.png", [GenerationSpec("p", seed=1)], "m")
