"""Helpers that build small dataset trees in the published layouts (used by the data tests)."""
