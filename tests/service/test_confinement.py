"""The service stays inside its roots: every recipe value that names a file, folder or version is confined
(the list comes from the config fields' NamesPath markers, never from a list of key names), before any
file is opened; inputs are frozen to real files at submission and checked again when the job opens them;
recipes are parsed with the command line's bounds."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import Field

from curate.config import Config
from curate.core.config import SHAPE_ONLY, NamesPath, Strict, path_values
from curate.core.files import CONFINE_ENV, OutsideRoots, check_confined
from curate.filters.langid import FASTTEXT_MAGIC, model_languages
from curate.service.app import create_app
from curate.service.paths import PathOutsideRoots
from curate.service.requests import confined_paths
from curate.service.settings import ServiceSettings

SECRET = "the outside file's secret sentence that no job may read"


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.jsonl").write_text(json.dumps({"id": "s", "text": SECRET}) + "\n")
    return folder


def _every_path_field(value: str, index: bool = False) -> dict[str, Any]:
    """A recipe naming ``value`` in every path-bearing key a recipe has (found from the markers); the
    decontamination index or its eval sets (a recipe has one or the other)."""
    decontaminate = {"index": "x"} if index else {"eval_sets": [{"name": "e", "paths": ["x"]}]}
    recipe: dict[str, Any] = {
        "input": ["x"],
        "stages": {
            "url_filter": {"blocklists": ["x"], "banned_words": ["x"]},
            "langid": {"model": "x"},
            "classifier": {"enabled": True, "models": [{"name": "q", "path": "x"}]},
            "toxicity": {"wordlists": {"en": ["x"]}, "fasttext_model": "x"},
            "perplexity": {"model": {"en": "x"}, "sentencepiece": "x"},
            "dedup_exact": {"against": ["x"]},
            "dedup_minhash": {"against": ["x"]},
            "decontaminate": {"enabled": True, **decontaminate},
        },
    }
    config = Config.model_validate(recipe)
    dumped = config.model_dump(mode="json")
    for found in path_values(config):
        node = dumped
        for part in found.loc[:-1]:
            node = node[part]
        node[found.loc[-1]] = value
    for found in path_values(Config.model_validate(dumped, context=SHAPE_ONLY)):
        assert found.value == value, found.loc  # every marked key now names ``value``
    return dumped


def test_every_path_bearing_key_outside_the_roots_gets_403_naming_it(served, outside: Path):
    """One request per key: the outside value is refused and the answer names that key."""
    source = str(served.roots[1] / "jsonl" / "*.jsonl.gz")
    (served.roots[0] / "inside.txt").write_text("a file inside the roots\n")
    checked = set()
    for index in (False, True):
        for found in path_values(Config.model_validate(_every_path_field("outside", index))):
            recipe = _every_path_field(str(served.roots[0] / "inside.txt"), index)
            node = recipe
            for part in found.loc[:-1]:
                node = node[part]
            node[found.loc[-1]] = str(outside / "secret.jsonl")
            body = {"recipe": recipe} | ({} if found.loc[0] == "input" else {"input": [source]})
            status, answer = served.request("POST", "/api/runs", body)
            assert status == 403, (found.loc, answer)
            named = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in found.loc)
            assert answer["field"] == "recipe" + named, answer
            checked.add(found.loc)
    assert len(checked) == 16  # input, output, 5 models, 3 lists, eval set, index, 2 tokenizers, 2 against


def test_beam_options_are_refused(served):
    """Free-form Beam flags can name paths the declarations cannot see (temp_location, staging)."""
    recipe = {"runner": {"options": {"temp_location": "/tmp/elsewhere"}}}
    source = [str(served.roots[1] / "jsonl" / "*.jsonl.gz")]
    status, answer = served.request("POST", "/api/runs", {"recipe": recipe, "input": source})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "recipe", "runner", "options"]


def test_versions_and_bundled_names_are_not_paths(served):
    config = Config.model_validate({"stages": {"dedup_exact": {"against": ["web@main"]}}})
    dumped, _ = confined_paths(config, tuple(served.roots))
    assert dumped["stages"]["dedup_exact"]["against"] == ["web@main"]
    assert dumped["stages"]["tokenize"]["tokenizer"] == "gpt2"
    with pytest.raises(PathOutsideRoots, match="against"):  # a name@ref that is a path outside
        confined_paths(Config.model_validate({"stages": {"dedup_minhash": {"against": ["/etc@x"]}}}),
                       tuple(served.roots))  # fmt: skip


def test_a_newly_declared_path_field_is_confined_without_any_other_edit(tmp_path: Path, outside: Path):
    class Lists(Strict):
        stopwords: Annotated[dict[str, list[str]], NamesPath("file")] = Field(default_factory=dict)

    class Recipe(Strict):
        lists: Lists = Field(default_factory=Lists)
        title: str = "not a path"

    roots = (tmp_path,)
    (tmp_path / "fr.txt").write_text("le\n")
    dumped, _ = confined_paths(Recipe.model_validate({"lists": {"stopwords": {"fr": ["fr.txt"]}}}), roots)
    assert dumped["lists"]["stopwords"]["fr"] == [str(tmp_path / "fr.txt")]
    hostile = Recipe.model_validate({"lists": {"stopwords": {"fr": [str(outside / "secret.jsonl")]}}})
    with pytest.raises(PathOutsideRoots, match=r"recipe\.lists\.stopwords\.fr\[0\]"):
        confined_paths(hostile, roots)


def test_a_model_outside_is_refused_before_it_is_opened(served, outside: Path, tmp_path: Path):
    """Missing, a text file, or a huge file: the same 403, at once (nothing outside is opened)."""
    source = [str(served.roots[1] / "jsonl" / "*.jsonl.gz")]
    big = outside / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB of zeros
    for model in [str(outside / "missing.bin"), str(outside / "secret.jsonl"), str(big)]:
        started = time.monotonic()
        recipe = {"stages": {"langid": {"model": model}}}
        status, answer = served.request("POST", "/api/runs", {"recipe": recipe, "input": source})
        assert status == 403 and answer["field"] == "recipe.stages.langid.model", answer
        assert time.monotonic() - started < 10


def test_a_forged_model_header_inside_the_roots_is_refused_quickly(served):
    forged = served.roots[0] / "forged.ftz"
    header = struct.pack("<ii", FASTTEXT_MAGIC, 12) + bytes(56) + struct.pack("<iii", 2**31 - 1, 5, 5)
    forged.write_bytes(header + b"\xff" * 200)
    with pytest.raises(ValueError, match="does not fit"):
        model_languages(str(forged))
    recipe = {"stages": {"langid": {"model": "forged.ftz"}}}
    source = [str(served.roots[1] / "jsonl" / "*.jsonl.gz")]
    status, answer = served.request("POST", "/api/runs", {"recipe": recipe, "input": source})
    assert status == 422 and "not a fastText model" in answer["detail"][0]["msg"], answer


def test_deep_or_aliased_recipes_get_422(served):
    source = [str(served.roots[1] / "jsonl" / "*.jsonl.gz")]
    deep_yaml = "stages: " + "[" * 50_000 + "]" * 50_000
    bomb = "a: &a [x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    deep_block = "stages:\n" + "".join("  " * i + "k:\n" for i in range(1, 200))
    for recipe in [deep_yaml, bomb * 10, deep_block]:
        status, answer = served.request("POST", "/api/runs", {"recipe": recipe, "input": source})
        assert status == 422 and answer["detail"][0]["loc"] == ["body", "recipe"], answer
    for depth, expected in [(900, 422), (50_000, 400)]:  # 400: a body too deep for JSON parsing itself
        nested = '{"k": ' * depth + "{}" + "}" * depth
        raw = f'{{"recipe": {{"stages": {nested}}}, "input": {json.dumps(source)}}}'.encode()
        status, answer = served.request("POST", "/api/runs", raw=raw)
        assert status == expected, answer


def test_inputs_are_frozen_at_submission(served, outside: Path, shared_data: Path, processes_of):
    """A queued job's input folder gains a symlink to an outside file, and one of its files becomes such a
    symlink: the job reads neither (the glob was expanded at submission; the swap is refused on open)."""
    folder = served.roots[0] / "frozen"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"id": "a", "text": "an inside document " * 20}) + "\n")
    crawl = str(shared_data / "crawl" / "*.warc.gz")
    status, first = served.request("POST", "/api/runs", {"recipe": {}, "input": [crawl]})  # holds the slot
    assert status == 201
    status, body = served.request("POST", "/api/runs", {"recipe": {}, "input": ["frozen/*.jsonl"]})
    assert status == 201, body
    job = served.request("GET", f"/api/runs/{body['id']}")[1]
    assert job["status"] == "queued"
    recipe = served.request("GET", f"/api/runs/{body['id']}/recipe")[1]["recipe"]
    assert str(folder / "a.jsonl") in recipe and "frozen/*.jsonl" not in recipe
    (folder / "b.jsonl").symlink_to(outside / "secret.jsonl")
    (folder / "a.jsonl").unlink()
    (folder / "a.jsonl").symlink_to(outside / "secret.jsonl")
    served.request("POST", f"/api/runs/{first['id']}/cancel")
    job = served.wait("runs", body["id"], {"succeeded", "failed", "cancelled"})
    assert job["status"] == "failed" and "outside the service's roots" in job["error"], job
    out = Path(job["output"])
    written = [p.read_bytes() for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not any(SECRET.encode() in data for data in written)


def test_a_job_refuses_to_open_a_path_that_leads_outside(monkeypatch, tmp_path: Path, outside: Path):
    """What the job's readers and model loaders call right before opening (curate.core.files)."""
    (tmp_path / "ok.txt").write_text("x")
    (tmp_path / "link.txt").symlink_to(outside / "secret.jsonl")
    check_confined(str(tmp_path / "link.txt"))  # outside a job of the service: no roots, no check
    monkeypatch.setenv(CONFINE_ENV, os.pathsep.join([str(tmp_path)]))
    check_confined(str(tmp_path / "ok.txt"))
    with pytest.raises(OutsideRoots, match="outside the service's roots"):
        check_confined(str(tmp_path / "link.txt"))
    with pytest.raises(OutsideRoots):
        check_confined("s3://bucket/key")


def test_a_relative_report_path_is_looked_up_under_every_root(tmp_path: Path):
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    for folder in (second / "runs" / "a", first / "runs" / "b", outside / "runs" / "a"):
        folder.mkdir(parents=True)
    (second / "runs" / "a" / "report.html").write_text("<p>report a, second root</p>")
    (first / "runs" / "b" / "report.html").write_text("<p>report b, first root</p>")
    (outside / "runs" / "a" / "report.html").write_text("<p>outside</p>")
    client = TestClient(
        create_app(ServiceSettings.create([str(first), str(second)], None, state=str(tmp_path)))
    )
    assert "second root" in client.get("/reports/runs/a").text
    assert "first root" in client.get("/reports/runs/b/report.html").text
    assert "second root" in client.get(f"/reports/{second}/runs/a").text
    assert client.get("/reports/runs/nowhere").status_code == 404
    assert client.get("/reports/../outside/runs/a").status_code in (403, 404)
    assert client.get(f"/reports/{outside}/runs/a").status_code == 403
