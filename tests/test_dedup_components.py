"""Distributed connected components (pipelines/connected_components.py) against a union-find reference,
on adversarial graphs: long chains in every id order, trees, random graphs."""

from __future__ import annotations

import random

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from curate.pipelines.connected_components import (
    DEFAULT_ROUNDS,
    ConnectedComponents,
    NotConverged,
    components_reference_rounds,
)


def union_find_roots(edges: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {node: find(node) for node in parent}


def _ids(n: int) -> list[str]:
    return [f"{i:06d}" for i in range(n)]


def chain(order: list[str]) -> list[tuple[str, str]]:
    return list(zip(order, order[1:], strict=False))


def adversarial_graphs() -> dict[str, list[tuple[str, str]]]:
    ids = _ids(4096)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    zigzag = [ids[i // 2] if i % 2 == 0 else ids[-1 - i // 2] for i in range(len(ids))]
    rng = random.Random(1)
    sparse = [(rng.choice(ids[:2000]), rng.choice(ids[:2000])) for _ in range(1500)]
    return {
        "sorted chain": chain(ids),
        "reversed chain": chain(ids[::-1]),
        "random chain": chain(shuffled),
        "zigzag chain": chain(zigzag),
        "binary tree": [(ids[i], ids[(i - 1) // 2]) for i in range(1, len(ids))],
        "grid": [(ids[i], ids[i + 1]) for i in range(4000) if i % 64 != 63]
        + [(ids[i], ids[i + 64]) for i in range(4000 - 64)],
        "random sparse graph": [(u, v) for u, v in sparse if u != v],
    }


@pytest.mark.parametrize("name", list(adversarial_graphs()))
def test_default_rounds_give_the_union_find_answer(name):
    edges = adversarial_graphs()[name]
    assert components_reference_rounds(edges, DEFAULT_ROUNDS) == union_find_roots(edges)


def test_too_few_rounds_fail_loudly_instead_of_returning_wrong_clusters():
    with pytest.raises(NotConverged, match="components_rounds"):
        components_reference_rounds(chain(_ids(256)), rounds=3)


def _run_beam(edges: list[tuple[str, str]], rounds: int, expected: list[tuple[str, str]]) -> None:
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        roots = pipeline | beam.Create(edges) | ConnectedComponents(rounds)
        assert_that(roots, equal_to(expected))


def test_beam_components_match_union_find_on_a_random_order_chain_and_extra_components():
    ids = _ids(300)
    random.Random(2).shuffle(ids)
    edges = chain(ids[:200]) + [(ids[250], ids[260]), (ids[261], ids[260]), (ids[270], ids[271])]
    _run_beam(edges, DEFAULT_ROUNDS, sorted(union_find_roots(edges).items()))


def test_beam_components_fail_when_rounds_do_not_suffice():
    with pytest.raises(Exception, match="did not converge"):
        _run_beam(chain(_ids(64)), 1, [])
