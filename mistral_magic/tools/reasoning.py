"""`--think`: the reasoning controls a request carries, as the spec and the model allow.

``%%mistral --think [none|low|medium|high]`` (``MistralMagics.think`` for every cell)
sets the chat request's ``reasoning_effort`` (the spec's `ReasoningEffort`) and, for
the models that reason natively (Magistral), ``prompt_mode: "reasoning"`` (the
spec's `MistralPromptMode`: their reasoning system prompt). Which model takes which
effort comes from the model catalogue (Mistral's docs, `offline.catalogue`): the
adjustable models (Mistral Small 4, Medium 3.5) and Magistral take ``none`` and
``high``; a model that cannot reason takes only ``none`` (sent as nothing: it does
not think anyway). An effort the model does not take is refused before anything is
sent, in one line naming what it takes. A model the catalogue does not know (a
self-hosted one, a newer id) gets the effort as asked, and its server decides.

The reasoning arrives as thinking chunks (`events.ThinkingDelta`); how it is shown
and counted is the display's and the call path's business.
"""

from __future__ import annotations

from ..errors import ConfigError

LEVELS = ("none", "low", "medium", "high")


def controls(model: str, level: str | None) -> dict:
    """The request fields for `--think level` on `model` (``{}``: send none).

    Raises `ConfigError` for an effort the model does not take, naming what it takes.
    """
    if level is None:
        return {}
    if level not in LEVELS:
        raise ConfigError(f"--think takes {', '.join(LEVELS)}, not {level!r}")
    from ..offline import catalogue

    known = catalogue.find(model)
    if known is None:
        return {"reasoning_effort": level}
    if not known.efforts:
        if level == "none":
            return {}
        able = ", ".join(catalogue.able("reasoning")[:4])
        raise ConfigError(f"{model} cannot reason, so --think {level} has no effect on it; "
                         f"use a reasoning model (-m {able.split(', ')[0]}; others: {able})")
    if level not in known.efforts:
        takes = " or ".join(known.efforts)
        raise ConfigError(f"{model} takes --think {takes}, not {level}; e.g. --think "
                         f"{known.efforts[-1]}")
    found = {"reasoning_effort": level}
    if known.native_reasoning and level != "none":
        found["prompt_mode"] = "reasoning"
    return found


def can_reason(model: str) -> bool | None:
    """Whether the catalogue says `model` reasons (None: a model it does not know)."""
    from ..offline import catalogue

    known = catalogue.find(model)
    return None if known is None else bool(known.efforts)
