"""Bundled example domains."""
