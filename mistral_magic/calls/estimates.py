"""Estimates: what a call may cost before it is sent.

`estimate_call` counts the prompt with the shared Tekken tokenizer
(`mistral_magic.money.tokens`) and prices a worst case of the prompt plus ``max_tokens``
(`DEFAULT_MAX_TOKENS` when unset): what a dry run and an extraction show up front.

The prompt count is exact on the offline server (it counts with the same
tokenizer). Hosted models' tokenizers are not bundled, so what a budget holds for
their prompts is Tekken's count plus a margin (`prompt_bound`).

This module imports the tokenizer only when it counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..money.prices import PriceTable

#: Answer tokens an estimate assumes when a call sets no ``max_tokens`` (dry runs, an
#: extraction's up-front worst case), and the cap on each extraction row or batch line
#: without ``max_tokens`` while a budget is set: rows share the budget concurrently.
DEFAULT_MAX_TOKENS = 1024

#: Hosted and self-hosted prompts are held at Tekken's count times (1 + margin) plus
#: slack tokens: their own tokenizers are not bundled (see `prompt_bound`).
PROMPT_MARGIN = 0.05
PROMPT_SLACK = 16


@dataclass
class Estimate:
    """What a call may cost before it is sent: prompt tokens counted, completion at most."""

    prompt_tokens: int
    max_completion_tokens: int
    worst_cost: float | None  # prompt + max completion; None = unknown price
    prompt_cost: float | None
    model: str | None = None
    batch: bool = False
    pages: int | None = None  # pages an OCR call reads (priced per page); None: unknown or tokens
    audio_seconds: float | None = None  # seconds of audio a call sends, as measured here


def estimate_call(
    prices: PriceTable,
    model: str,
    messages: list[Any],
    tools: list[Any] | None = None,
    max_tokens: int | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    batch: bool = False,
    prompt_tokens: int | None = None,
) -> Estimate:
    """Count the prompt (Tekken, via `tokens.count_messages`) and price the worst case.

    The worst case is the prompt plus `max_tokens` completion tokens. When the call
    sets no `max_tokens`, `default_max_tokens` (1024) is assumed rather than the
    model's whole context, which would make any budget refuse every call.
    `prompt_tokens`, when given, is the prompt's count (one made with attachments' bounds).
    """
    from ..money.tokens import count_messages

    prompt = count_messages(messages, tools=tools) if prompt_tokens is None else prompt_tokens
    completion = int(max_tokens if max_tokens is not None else default_max_tokens)
    return Estimate(
        prompt_tokens=prompt,
        max_completion_tokens=completion,
        worst_cost=prices.cost(model, prompt, completion, batch=batch),
        prompt_cost=prices.cost(model, prompt, 0, batch=batch),
        model=model,
        batch=batch,
    )


def prompt_bound(tokens: int, exact: bool) -> int:
    """The prompt tokens a reservation counts: the exact count, or that count with a margin.

    The offline server counts with the same Tekken tokenizer (`mistral_magic.money.tokens`),
    so there the count is exact. Hosted and self-hosted models' tokenizers are not
    bundled: their prompts are held at Tekken's count plus `PROMPT_MARGIN` and
    `PROMPT_SLACK` tokens (control tokens and tokenizer versions differ by a few).
    """
    if exact:
        return tokens
    return math.ceil(tokens * (1 + PROMPT_MARGIN)) + PROMPT_SLACK

