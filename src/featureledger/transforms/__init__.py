"""Transforms that must run identically offline and online."""
