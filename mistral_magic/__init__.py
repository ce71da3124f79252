"""mistral_magic: Mistral's models inside IPython and Jupyter."""

__version__ = "0.1.0"
