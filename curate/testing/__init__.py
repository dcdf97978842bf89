"""Servers that stand in for external services in tests and benchmarks (never used by a real run)."""
