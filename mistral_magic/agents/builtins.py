"""Mistral's built-in tools: their names, which models have them, and the tool objects sent.

``web_search``, ``web_search_premium`` (adds news), ``code_interpreter`` and
``image_generation`` are named in ``--tools`` beside notebook functions; ``document_library``
comes from ``--library NAME``. Every cell that uses one goes through the Conversations API:
the docs say web search and the code interpreter do not work on chat completions
(image generation does, but one path shows every tool's work the same way).

The docs give built-in tools to `MODELS` (and their aliases). `check` refuses, before
anything is sent, a model the offline catalogue knows that is not one of them, naming
those that are; a model it does not know (a newer or fine-tuned one) is left to the server.
"""

from __future__ import annotations

from ..errors import ConfigError

TOOLS = ("web_search", "web_search_premium", "code_interpreter", "image_generation")
LIBRARY = "document_library"
NAMES = (*TOOLS, LIBRARY)
#: the models whose cards give them built-in tools (MISTRAL_FACTS_WAVE3 §3), with their aliases
MODELS = {
    "mistral-large-2512": ("mistral-large-latest",),
    "mistral-medium-3-5": ("mistral-medium-3", "mistral-medium-latest"),
    "mistral-small-2603": ("mistral-small-latest",),
}


def split(names: list[str]) -> tuple[list[str], list[str]]:
    """(built-in tools, notebook function names) of a ``--tools`` list, each in order, once."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    return [n for n in names if n in TOOLS], [n for n in names if n not in TOOLS]


def names_of(spec: str | None) -> list[str]:
    return [n.strip() for n in (spec or "").split(",") if n.strip()]


def able() -> list[str]:
    """The models that have built-in tools, by the names people type (aliases first)."""
    return [aliases[-1] if aliases else model for model, aliases in MODELS.items()]


def check(model: str, tools: list[str]) -> None:
    """Refuse (`ConfigError`, one line) a model known to lack built-in tools."""
    if not tools:
        return
    from ..offline import catalogue

    found = catalogue.find(model)
    if found is None or found.id in MODELS:
        return
    raise ConfigError(f"{model} cannot use Mistral's built-in tools ({', '.join(tools)}); models that "
                      f"can: {', '.join(able())}; e.g. -m {able()[-1]}")


def tool(name: str, library_ids: list[str] | None = None) -> dict:
    """The tool object a conversation sends."""
    if name == LIBRARY:
        return {"type": LIBRARY, "library_ids": list(library_ids or [])}
    return {"type": name}
