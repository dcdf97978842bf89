"""Training a tokenizer inside the run: a runner-independent sample of the curated text, then BPE."""

from __future__ import annotations

import apache_beam as beam

from curate.core.ids import seeded_hash
from curate.core.tokenizer import train


class SmallestByHash(beam.CombineFn):
    """The texts with the smallest seeded id-hashes, up to ``max_chars``: a runner-independent sample."""

    def __init__(self, seed: int, max_chars: int):
        self._seed = seed
        self._max_chars = max_chars

    def _trim(self, items: list[tuple[int, str]]) -> list[tuple[int, str]]:
        items.sort()
        kept: list[tuple[int, str]] = []
        size = 0
        for h, text in items:
            size += len(text)
            if size > self._max_chars and kept:
                break
            kept.append((h, text))
        return kept

    def create_accumulator(self) -> list[tuple[int, str]]:
        return []

    def add_input(self, acc, doc):
        acc.append((seeded_hash(self._seed, doc["id"]), doc["text"]))
        if len(acc) % 1024 == 0:
            acc = self._trim(acc)
        return acc

    def merge_accumulators(self, accumulators):
        return self._trim([item for acc in accumulators for item in acc])

    def extract_output(self, acc):
        return [text for _, text in self._trim(list(acc))]


def train_tokenizer(texts: list[str], vocab_size: int) -> str:
    return train(texts, vocab_size).json
