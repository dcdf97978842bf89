"""The path-field marker: every recipe value that names a file, folder or version is found from the
fields' declarations (curate.core.config.NamesPath), never from a list of key names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from curate.config import Config
from curate.core.config import NamesPath, Strict, path_values


def _locs(config: BaseModel) -> dict[tuple[str | int, ...], str]:
    return {found.loc: found.value for found in path_values(config)}


def test_every_path_bearing_recipe_key_is_found_with_its_key_path():
    config = Config.model_validate(
        {
            "input": ["in/*.warc.gz"],
            "output": "out",
            "stages": {
                "url_filter": {"blocklists": ["block.txt"], "banned_words": ["words.txt"]},
                "langid": {"model": "lid.bin"},
                "classifier": {
                    "enabled": True,
                    "models": [{"name": "q", "path": "q.bin"}],
                    "tokenizer": "tok.json",
                },  # fmt: skip
                "toxicity": {"wordlists": {"en": ["en.txt"], "de": "de.txt"}, "fasttext_model": "tox.bin"},
                "perplexity": {"model": {"en": "en.arpa"}, "sentencepiece": "sp.model"},
                "dedup_exact": {"against": ["web@main"]},
                "dedup_minhash": {"against": ["old-out"]},
                "decontaminate": {"enabled": True, "eval_sets": [{"name": "e", "paths": ["evals/*.jsonl"]}]},
                "tokenize": {"tokenizer": "tokenizer.json"},
            },
        }
    )
    assert _locs(config) == {
        ("input", "paths", 0): "in/*.warc.gz",
        ("output", "path"): "out",
        ("stages", "url_filter", "blocklists", 0): "block.txt",
        ("stages", "url_filter", "banned_words", 0): "words.txt",
        ("stages", "langid", "model"): "lid.bin",
        ("stages", "classifier", "models", 0, "path"): "q.bin",
        ("stages", "classifier", "tokenizer"): "tok.json",
        ("stages", "toxicity", "wordlists", "en", 0): "en.txt",
        ("stages", "toxicity", "wordlists", "de"): "de.txt",
        ("stages", "toxicity", "fasttext_model"): "tox.bin",
        ("stages", "perplexity", "model", "en"): "en.arpa",
        ("stages", "perplexity", "sentencepiece"): "sp.model",
        ("stages", "dedup_exact", "against", 0): "web@main",
        ("stages", "dedup_minhash", "against", 0): "old-out",
        ("stages", "decontaminate", "eval_sets", 0, "paths", 0): "evals/*.jsonl",
        ("stages", "tokenize", "tokenizer"): "tokenizer.json",
    }


def test_locations_address_the_dumped_recipe():
    config = Config.model_validate({"stages": {"toxicity": {"wordlists": {"en": ["a.txt", "b.txt"]}}}})
    dumped = config.model_dump(mode="json")
    for found in path_values(config):
        node = dumped
        for part in found.loc:
            node = node[part]
        assert node == found.value


def test_bundled_names_and_version_refs_are_not_paths():
    tokenizer = NamesPath("file", builtins=("gpt2",))
    against = NamesPath("folder", versions=True)
    assert not tokenizer.is_path("gpt2") and tokenizer.is_path("gpt2.json")
    assert not against.is_path("web@v1.2") and against.is_path("runs/out")
    assert against.is_path("../x@main") and against.is_path("/etc@main")  # not a store name: a path
    assert NamesPath("file").is_path("web@main")  # only where the field allows versions


def test_a_newly_declared_field_is_found_without_any_other_edit():
    class Lists(Strict):
        stopwords: Annotated[dict[str, list[str]], NamesPath("file")] = Field(default_factory=dict)
        threshold: float = 0.5

    class Section(Strict):
        lists: list[Lists] = Field(default_factory=list)
        name: str = "not a path"

    section = Section.model_validate({"lists": [{"stopwords": {"fr": ["fr.txt"]}}]})
    assert _locs(section) == {("lists", 0, "stopwords", "fr", 0): "fr.txt"}
