"""gradvet's version (the same as pyproject.toml's), where every layer may read it."""

VERSION = "0.1.0"
