"""Hashes, diffs and rollback: the pure side of versioning."""
