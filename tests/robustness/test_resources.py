"""Nothing a recipe or an input says can take memory or time without bound (issue case 8)."""

from __future__ import annotations

import os
import random

import pytest

from curate.filters import gopher
from curate.filters.text_units import TextUnits

ANCHOR_BOMB = "runner:\n  options:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"    {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefghijklm", "bcdefghijklmn", strict=False)
)


def _one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_a_yaml_anchor_bomb_is_refused_by_alias_count(tmp_path, curate_cli):
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(ANCHOR_BOMB)
    _one_line_error(
        curate_cli("config", "validate", str(recipe), "--no-files", timeout=60), str(recipe), "aliases"
    )


def test_runner_options_take_single_values_only(tmp_path, curate_cli):
    recipe = tmp_path / "small-bomb.yaml"
    recipe.write_text("runner:\n  options:\n    a: &a [x, x, x]\n    b: [*a, *a, *a]\n")
    _one_line_error(
        curate_cli("config", "validate", str(recipe), "--no-files"),
        str(recipe),
        "runner.options",
        "one value",
    )


def test_an_oversized_recipe_is_refused(tmp_path, curate_cli):
    recipe = tmp_path / "big.yaml"
    recipe.write_text("# padding\n" * 200_000)
    _one_line_error(curate_cli("config", "validate", str(recipe), "--no-files"), str(recipe), "at most")


@pytest.mark.parametrize("role", ["input", "recipe"])
def test_a_fifo_is_refused_instead_of_read_forever(tmp_path, role, curate_cli, write_recipe):
    fifo = tmp_path / ("docs.jsonl" if role == "input" else "recipe.yaml")
    os.mkfifo(fifo)
    if role == "input":
        recipe = write_recipe(tmp_path / "r.yaml", [str(fifo)], tmp_path / "out")
        result = curate_cli("run", str(recipe), timeout=60)
        _one_line_error(result, f"input: {fifo} is not a regular file")
        assert not (tmp_path / "out").exists()  # refused before anything was touched
    else:
        _one_line_error(
            curate_cli("config", "validate", str(fifo), timeout=60), f"{fifo}: not a regular file"
        )


def _datatrove_dup_ngram_chars(words: list[str], n: int) -> int:
    """datatrove 0.10.1 gopher_repetition_filter.find_all_duplicate, verbatim in behaviour."""
    unique: set[str] = set()
    repeated, index = 0, 0
    while index < len(words) - n + 1:
        gram = "".join(words[index : index + n])
        if gram in unique:
            repeated += len(gram)
            index += n
        else:
            unique.add(gram)
            index += 1
    return repeated


def test_the_linear_repeated_ngram_walk_gives_datatroves_results():
    """The walk is linear in the document's length now (bench/large_document.py measures it); its
    results must stay exactly those of datatrove's walk (which joins strings: slow, but plainly right)."""
    rng = random.Random(7)
    for _ in range(200):
        vocabulary = [f"w{i}" for i in range(rng.randint(1, 6))]  # few words: many overlapping repeats
        phrases = [" ".join(rng.choices(vocabulary, k=rng.randint(1, 9))) for _ in range(rng.randint(1, 5))]
        text = " ".join(rng.choice(phrases) for _ in range(rng.randint(0, 80)))
        units = TextUnits(text)
        signals = gopher.repetition_signals(units)
        for n in gopher.DUP_NGRAMS:
            expected = _datatrove_dup_ngram_chars(units.words, n)
            assert signals[f"gopher_dup_{n}gram_char_frac"] * len(text) == pytest.approx(expected), (text, n)
