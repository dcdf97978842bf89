"""curate: raw web crawl in, versioned token shards out, on Apache Beam."""

__version__ = "0.1.0"
