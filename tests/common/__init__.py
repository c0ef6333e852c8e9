"""Tests of the dependency-free helpers in ``common``."""
