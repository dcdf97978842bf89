"""Global combines the shard tail needs (one accumulator per worker, merged: nothing holds every row)."""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam


class SumPerKey(beam.CombineFn):
    """(key, n) pairs -> {key: sum}: one global combine where CombinePerKey + ToDict would take two."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, acc: dict[str, int], pair: tuple[str, int]) -> dict[str, int]:
        acc[pair[0]] = acc.get(pair[0], 0) + pair[1]
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, int]]) -> dict[str, int]:
        merged: dict[str, int] = {}
        for acc in accumulators:
            for key, n in acc.items():
                merged[key] = merged.get(key, 0) + n
        return merged

    def extract_output(self, acc: dict[str, int]) -> dict[str, int]:
        return dict(sorted(acc.items()))
