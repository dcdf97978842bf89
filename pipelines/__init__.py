"""Beam layer: readers, the generic stage wrapper, dedup, mixing, shard writing, the pipeline builder."""
