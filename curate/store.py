"""Compatibility names for the embedded version store, which now lives in curate.versions."""

from curate.versions import resolve_data
from curate.versions.embedded import Commit, LocalStore, default_store_root, parse_spec

__all__ = ["Commit", "LocalStore", "default_store_root", "parse_spec", "resolve_data"]
