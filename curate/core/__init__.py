"""Base layer: errors, ids, file helpers, the shard format, tokenizer loading.

Imports nothing else of curate: every other layer builds on it.
"""
