"""Numbered Alembic migrations of the registry schema (versions/NNNN_*.py)."""
