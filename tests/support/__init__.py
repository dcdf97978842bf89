"""Test support that is no part of the installed package: a real lakeFS server."""
