"""The package's version, in one place (the package and every answer's provenance read it)."""

__version__ = "0.1.0"
