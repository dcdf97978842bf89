"""Connected components of the duplicate graph in Beam, with no worker ever holding more than one
node's neighbourhood: the alternating large-star / small-star algorithm of Kiveris et al., "Connected
Components in MapReduce and Beyond" (SoCC 2014).

Each round is two GroupByKeys over the edges. Large-star links every larger neighbour of a node to the
smallest node of its neighbourhood; small-star links a node and its smaller neighbours to the smallest
of them. Neither adds edges (each input edge yields at most one output edge), and the fixed point is a
set of stars, each centred on the smallest id of its component. The paper proves O(log^2 n) rounds and
measures a handful in practice; ``DEFAULT_ROUNDS`` is checked against adversarial graphs (long chains
in sorted, reversed and random id order, binary trees, grids) in tests/test_dedup_components.py.

Beam graphs are static, so the rounds are unrolled. Converged-or-fail is checked at the end, per node:
a node that still has two smaller neighbours, or a smaller and a larger one, means the graph is not yet
a set of stars, and the step raises instead of returning a wrong clustering. Extra rounds on a converged
graph change nothing and cost one shuffle of the (few) edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam

from curate.core.errors import CurateError

# Rounds of large-star + small-star. The worst graphs measured are chains whose ids increase along the
# chain: about log2(n) rounds for n nodes (8 for 2^8, 12 for 2^12, 14 for 2^14; random order needs
# fewer). 16 covers such a chain of 2^16 near-duplicates of one page, far beyond real drift chains;
# duplicate graphs from LSH buckets are star-shaped already and converge in 1-3.
DEFAULT_ROUNDS = 16

Edge = tuple[str, str]


def large_star(node: str, neighbours: Iterable[str]) -> Iterator[Edge]:
    """Link each strictly larger neighbour of ``node`` to the smallest of ``node`` and its neighbours."""
    around = set(neighbours)
    smallest = min(around | {node})
    for other in around:
        if other > node:
            yield (other, smallest)


def small_star(node: str, smaller: Iterable[str]) -> Iterator[Edge]:
    """Link ``node`` and its smaller neighbours to the smallest of them (edges keyed at their larger end)."""
    group = set(smaller) | {node}
    smallest = min(group)
    for other in group:
        if other != smallest:
            yield (other, smallest)


class NotConverged(CurateError):
    """The unrolled rounds did not reach the star fixed point: never return a partial clustering."""


def star_root(node: str, neighbours: Iterable[str], rounds: int) -> str:
    """The component root of ``node`` once the graph is a set of stars, else raise NotConverged."""
    around = set(neighbours)
    smaller = [other for other in around if other < node]
    if not smaller:
        return node
    if len(smaller) == 1 and len(smaller) == len(around):
        return smaller[0]
    raise NotConverged(
        f"dedup connected components did not converge in {rounds} rounds (node {node} still has "
        f"{len(smaller)} smaller and {len(around) - len(smaller)} larger neighbours); "
        "raise stages.dedup_minhash.components_rounds"
    )


def components_reference_rounds(edges: Iterable[Edge], rounds: int) -> dict[str, str]:
    """The same rounds in plain Python on one machine (for tests and for choosing DEFAULT_ROUNDS)."""
    current = {tuple(edge) for edge in edges}
    for _ in range(rounds):
        adjacency: dict[str, set[str]] = {}
        for u, v in current:
            adjacency.setdefault(u, set()).add(v)
            adjacency.setdefault(v, set()).add(u)
        current = {e for node, around in adjacency.items() for e in large_star(node, around)}
        smaller: dict[str, set[str]] = {}
        for u, v in current:
            smaller.setdefault(max(u, v), set()).add(min(u, v))
        current = {e for node, group in smaller.items() for e in small_star(node, group)}
    adjacency = {}
    for u, v in current:
        adjacency.setdefault(u, set()).add(v)
        adjacency.setdefault(v, set()).add(u)
    return {node: star_root(node, around, rounds) for node, around in adjacency.items()}


def _both_directions(edge: Edge) -> Iterator[Edge]:
    yield edge
    yield (edge[1], edge[0])


def _large_star_keyed_for_small(node: str, neighbours: Iterable[str]) -> Iterator[Edge]:
    """`large_star`'s edges keyed at their larger end, as small-star groups them (one step, not two)."""
    for edge in large_star(node, neighbours):
        yield (max(edge), min(edge))


def _small_star_both_directions(node: str, smaller: Iterable[str]) -> Iterator[Edge]:
    """`small_star`'s edges in both directions, as the next large-star (or the final step) groups them."""
    for edge in small_star(node, smaller):
        yield from _both_directions(edge)


class ConnectedComponents(beam.PTransform):
    """Edges ``(u, v)`` of string node ids -> ``(node, root)`` for every node on an edge, where root is
    the smallest id of the node's component (so the root itself maps to itself)."""

    def __init__(self, rounds: int = DEFAULT_ROUNDS):
        super().__init__()
        self._rounds = rounds

    def expand(self, edges: beam.PCollection) -> beam.PCollection:
        # Each step that follows a GroupByKey also keys its output for the next one, so a round is two
        # shuffles and two steps (large-star keyed by the larger end; small-star in both directions).
        edges = (
            edges
            | "Undirected" >> beam.Filter(lambda e: e[0] != e[1])
            | "LargeStarBoth0" >> beam.FlatMap(_both_directions)
        )
        for i in range(self._rounds):
            edges = (
                edges
                | f"LargeStarGroup{i}" >> beam.GroupByKey()
                | f"LargeStar{i}" >> beam.FlatMapTuple(_large_star_keyed_for_small)
                | f"SmallStarGroup{i}" >> beam.GroupByKey()
                | f"SmallStar{i}" >> beam.FlatMapTuple(_small_star_both_directions)
            )
        rounds = self._rounds
        return (
            edges
            | "FinalGroup" >> beam.GroupByKey()
            | "Root" >> beam.MapTuple(lambda node, around: (node, star_root(node, around, rounds)))
        )
