"""genimg/batch/wildcards.py on its own: {a|b} choices and __file__ wildcards, random and combinatorial."""

import pytest

from genimg.batch.wildcards import Wildcards
from genimg.errors import UsageError


def test_combinatorial_expansion_gives_every_combination_once(tmp_path):
    (tmp_path / "colours.txt").write_text("red\nblue\n")
    with Wildcards([tmp_path]) as wildcards:
        prompts = wildcards.expand("a __colours__ {cat|dog}", combinatorial=True, repeat=1, seed=0)
    assert sorted(prompts) == ["a blue cat", "a blue dog", "a red cat", "a red dog"]


def test_random_picks_are_fixed_by_the_seed_and_come_from_the_choices(tmp_path):
    with Wildcards([tmp_path]) as wildcards:
        first = wildcards.expand("{cat|dog|fox|owl}", combinatorial=False, repeat=6, seed=3)
        again = wildcards.expand("{cat|dog|fox|owl}", combinatorial=False, repeat=6, seed=3)
    assert first == again and len(first) == 6 and set(first) <= {"cat", "dog", "fox", "owl"}


def test_a_plain_prompt_is_repeated_and_an_unknown_wildcard_is_an_error(tmp_path):
    with Wildcards([tmp_path]) as wildcards:
        assert wildcards.expand("a cat", combinatorial=False, repeat=3, seed=0) == ["a cat"] * 3
        with pytest.raises(UsageError, match="unknown wildcard"):
            wildcards.expand("a __nothing__", combinatorial=False, repeat=1, seed=0, where="jobs.txt:2")


def test_the_users_wildcard_file_wins_over_the_shipped_one(tmp_path):
    mine, shipped = tmp_path / "mine", tmp_path / "shipped"
    mine.mkdir()
    shipped.mkdir()
    (mine / "animal.txt").write_text("owl\n")
    (shipped / "animal.txt").write_text("cat\n")
    (shipped / "colour.txt").write_text("green\n")
    with Wildcards([mine, shipped]) as wildcards:
        assert wildcards.expand("a __colour__ __animal__", combinatorial=True, repeat=1, seed=0) == ["a green owl"]
