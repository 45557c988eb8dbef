"""gradvet's version (pyproject.toml reads it from here), where every layer may read it."""

VERSION = "0.1.0"
