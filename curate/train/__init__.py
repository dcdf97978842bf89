"""The bundled trainer: a compact GPT that learns from curate's token shards (needs the `train` extra)."""
