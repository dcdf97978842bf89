"""Fixtures for the engine tests: the fetched engines (`make engines`), a direct-runner reference run of
the small real inputs, and how two runs are compared.

Equivalence of an engine run and the direct run (defined here, tested in each module): the same
decoded token stream for every document id across all shards, the same per-stage in/out/rejected
counts (by reason) in stats.json, and a report. Shard files are compared as sets of (id, tokens), not
byte for byte, since an engine may order documents within a shard differently.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.engines.distributions import DISTRIBUTIONS
from curate.metrics_progress import format_counts
from curate.run import run


def _engines_fetched() -> None:
    missing = []
    for distribution in DISTRIBUTIONS.values():
        try:
            distribution.classpath()
        except CurateError as error:
            missing.append(str(error))
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"engines not set up in CI: {missing[0]}")
        pytest.skip(missing[0])


@pytest.fixture(scope="session")
def engines_fetched() -> None:
    _engines_fetched()


def tokens_by_id(out: Path) -> dict[str, list[int]]:
    """Every document id in OUT/shards -> its token ids, decoded from the Parquet shards."""
    found: dict[str, list[int]] = {}
    for shard in sorted((out / "shards").glob("*.parquet")):
        table = pq.read_table(shard, columns=["id", "tokens"])
        for doc_id, tokens in zip(table["id"].to_pylist(), table["tokens"].to_pylist(), strict=True):
            assert doc_id not in found, f"{doc_id} in two shards"
            found[doc_id] = tokens
    return found


def stage_counts(stats: dict[str, Any]) -> dict[str, tuple[int, int, dict[str, int]]]:
    return {name: (e["in"], e["out"], dict(e["rejected"])) for name, e in stats["stages"].items()}


@pytest.fixture(scope="session")
def engine_recipe(servers):
    """``engine_recipe(out, runner)``: the small recipe on the small real inputs with that runner."""

    def recipe(out: Path, runner: dict[str, Any]) -> dict[str, Any]:
        data = servers.small_recipe([str(p) for p in servers.small_inputs()], str(out))
        data["runner"] = runner
        return data

    return recipe


@pytest.fixture(scope="session")
def direct_run(tmp_path_factory, servers) -> Callable[..., tuple[dict[str, list[int]], dict]]:
    """``direct_run(inputs, **extra)``: (tokens by document id, per-stage counts) of the direct runner on
    ``inputs`` with the small recipe (``extra``: its top-level sections replaced)."""

    def reference(inputs: list[Path], **extra: Any) -> tuple[dict[str, list[int]], dict]:
        out = tmp_path_factory.mktemp("direct") / "out"
        recipe = servers.small_recipe([str(p) for p in inputs], str(out), **extra)
        summary = run(parse_config(recipe), progress=False)
        return tokens_by_id(out), stage_counts(summary.stats)

    return reference


@pytest.fixture(scope="session")
def direct_result(direct_run, servers) -> tuple[dict[str, list[int]], dict]:
    """(tokens by document id, per-stage counts) of the direct runner on the small inputs."""
    return direct_run(servers.small_inputs())


@pytest.fixture(scope="session")
def same_as_direct(direct_result):
    """``same_as_direct(out, stats)`` asserts the equivalence above (``stats``: the run's stats.json)
    against the direct run of the small inputs, or against ``reference`` (a ``direct_run`` result)."""

    def check(out: Path, stats: dict[str, Any], reference: tuple | None = None) -> None:
        tokens, counts = reference or direct_result
        assert stats["balanced"]
        assert stage_counts(stats) == counts
        assert tokens_by_id(out) == tokens != {}
        assert (out / "report.html").is_file()

    return check


def _published(out: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".staging" not in p.parts and p.name != "run.log"
    }


@pytest.fixture(scope="session")
def run_while_killing(same_as_direct, engine_recipe):
    """``run_while_killing(out, runner, kill)``: reruns into ``out`` (which holds a previous run) on
    ``runner`` while ``kill`` (in a thread) kills part of the cluster mid-run. The run either recovers
    through the engine's restart, with the direct runner's result, or fails in one line with the
    previous output published as it was."""

    def check(out: Path, runner: dict[str, Any], kill: Callable[[], None]) -> None:
        before = _published(out)
        killer = threading.Thread(target=kill)
        killer.start()
        try:
            second = run(parse_config(engine_recipe(out, runner)), progress=False)
        except CurateError as error:
            print(f"outcome: failed cleanly: {error}")
            assert "\n" not in str(error)
            assert _published(out) == before  # nothing partial published
        else:
            print("outcome: recovered through the engine's restart")
            same_as_direct(out, second.stats)
        finally:
            killer.join()

    return check


@pytest.fixture(scope="session")
def engine_progress() -> Callable[..., None]:
    """``engine_progress(console, stats, where, exact=True)``: see _check_engine_progress."""
    return _check_engine_progress


def _check_engine_progress(console: str, stats: dict[str, Any], where: str, exact: bool = True) -> None:
    """`curate run`'s console named the engine's endpoint ``where`` as the source of its live counters,
    and its last counters line was read from there (not Beam's job service). ``exact``: that line equals
    stats.json; else (an engine whose counters count every attempt of a task) each stage's count is at
    least stats.json's."""
    lines = [line.strip() for line in console.splitlines()]
    assert f"live counters from {where}" in lines, console
    counters = [line for line in lines if line.startswith("metrics: ")]
    assert counters and "Beam's job service" not in counters[-1], console
    if exact:
        assert counters[-1] == format_counts(stats["stages"], list(stats["stages"])), console
        return
    shown = {
        m[1]: (int(m[2].replace(",", "")), int(m[3].replace(",", ""))) for m in _COUNTS.finditer(counters[-1])
    }
    assert set(shown) == set(stats["stages"]) - {"read"}, counters[-1]
    for stage, (docs_in, docs_out) in shown.items():
        entry = stats["stages"][stage]
        assert docs_in >= entry["in"] and docs_out >= entry["out"], (stage, counters[-1])


_COUNTS = re.compile(r"(\w+) ([\d,]+) → ([\d,]+)")  # "langid 32 → 31" in a metrics line


def _number(text: str) -> int:
    return int(text.replace(",", ""))
