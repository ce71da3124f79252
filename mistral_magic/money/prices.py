"""Prices: list prices per model, the user's overrides, and what a call costs.

`load_prices()` reads `prices.json` (list prices in USD per 1M tokens, with their
source and date) and applies the user's overrides, e.g. from
``%config MistralMagics.prices = {"my-finetune": {"input": 0.3, "output": 0.9}}``::

    >>> prices = load_prices({"mistral-small-latest": {"input": 0.1, "output": 0.3}})
    >>> prices.resolve("mistral-small-latest")
    'mistral-small-2603'
    >>> prices.cost("mistral-small-latest", 1_000_000, 0)
    0.1

An alias (``mistral-small-latest``) resolves to the dated model it names; an
override given for an alias applies to that model. A fine-tuned model
(``ft:mistral-small-2603:…``) costs what its base model costs, unless the table or an
override names its own id. A model with no known price
costs ``None`` (shown as "unknown"), never 0; a call that used no tokens costs 0,
whatever its price, so a failed call never makes a total unknown. Batch calls cost
``batch_discount`` (0.5) of the list price. Prompt tokens the server took from its prompt
cache (``cached_tokens``) cost the model's ``cached_input`` price, or else
``cached_input_share`` (0.1) of its input price (`cached_price`); `cached_saving` is what
they saved. OCR is priced per page (`page_cost`),
not per token, so its token `price`/`cost` is ``None``; a page read with an annotation
format costs ``per_annotated_page`` instead of ``per_page`` (the price list's "USD per
page with an annotation format"). Audio is priced per minute (``per_audio_minute``:
`audio_cost`, transcription alone, or on top of a chat's tokens for a model that listens)
and speech per million characters (``per_million_characters``: `speech_cost`); Mistral's
built-in tools and a library's document processing are priced per use (`use_price`, `use_cost`: ``prices.json``'s "tools", all
unknown today); ``{"web_search": {"per_call": 0.01}}`` gives one.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from ..errors import ConfigError

_OVERRIDE_FORM = (
    'expected {"model-or-alias": {"input": <USD per 1M>, "output": <USD per 1M>}}, '
    'e.g. %config MistralMagics.prices = {"my-model": {"input": 0.5, "output": 1.5}}'
)



@dataclass(frozen=True)
class ModelPrice:
    """One model's list price: USD per 1M tokens, per page (OCR), per minute of audio, or per
    1M characters of speech."""

    input: float | None = None
    output: float | None = None
    per_page: float | None = None
    context: int | None = None
    per_annotated_page: float | None = None
    per_audio_minute: float | None = None
    per_million_characters: float | None = None
    cached_input: float | None = None  # USD per 1M prompt tokens served from the prompt cache


class PriceTable:
    """Model prices with aliases; unknown models have no price (``None``), never 0."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        aliases: Mapping[str, str] | None = None,
        *,
        source: str = "",
        date: str = "",
        currency: str = "USD",
        batch_discount: float = 0.5,
        uses: Mapping[str, float | None] | None = None,
        cached_share: float = 0.1,
    ):
        self.models: dict[str, ModelPrice] = dict(models)
        #: USD per use of a built-in tool or service (None: no published price)
        self.uses: dict[str, float | None] = dict(uses or {})
        self.aliases: dict[str, str] = dict(aliases or {})
        self.source = source
        self.date = date
        self.currency = currency
        self.batch_discount = batch_discount
        self.cached_share = cached_share

    def __repr__(self) -> str:
        return f"<PriceTable {len(self.models)} models, {self.source!r}, {self.date}>"

    def resolve(self, model: str | None) -> str | None:
        """The canonical model id for a model id or alias, or None if not in the table."""
        if not model:
            return None
        model = model.strip()
        if model in self.models:
            return model
        if model in self.aliases:
            return self.aliases[model]
        base = fine_tuned_base(model)
        return None if base is None else self.resolve(base)

    def entry(self, model: str | None) -> ModelPrice | None:
        canonical = self.resolve(model)
        return self.models.get(canonical) if canonical else None

    def price(self, model: str | None) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens, or None if unknown or not priced per token."""
        entry = self.entry(model)
        if entry is None or entry.input is None:
            return None
        return entry.input, entry.output or 0.0

    def context_length(self, model: str | None) -> int | None:
        """The model's context window in tokens, when the table knows it."""
        entry = self.entry(model)
        return entry.context if entry else None

    def cost(
        self,
        model: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        batch: bool = False,
        cached_tokens: int | None = None,
    ) -> float | None:
        """USD for a call; None when the model's price is unknown (a call of no tokens costs 0).

        `cached_tokens` of the prompt tokens came from the prompt cache: they cost
        `cached_price` instead of the input price.
        """
        if not prompt_tokens and not completion_tokens:
            # A call that used nothing (refused, failed before any token) cost nothing,
            # whatever its price: it must not make a session's total unknown.
            return 0.0
        price = self.price(model)
        if price is None:
            return None
        cached = min(cached_tokens or 0, prompt_tokens or 0)
        usd = (((prompt_tokens or 0) - cached) * price[0] + cached * self.cached_price(model)
               + (completion_tokens or 0) * price[1]) / 1e6
        return usd * self.batch_discount if batch else usd

    def cached_price(self, model: str | None) -> float | None:
        """USD per 1M prompt tokens served from the prompt cache: the model's own
        ``cached_input``, else `cached_share` of its input price; None if unknown."""
        entry = self.entry(model)
        if entry is None or entry.input is None:
            return None
        return entry.cached_input if entry.cached_input is not None else entry.input * self.cached_share

    def cached_saving(self, model: str | None, cached_tokens: int | None,
                      batch: bool = False) -> float | None:
        """USD the prompt cache saved on `cached_tokens` (0 for none; None if unpriced)."""
        if not cached_tokens:
            return 0.0
        entry = self.entry(model)
        if entry is None or entry.input is None:
            return None
        usd = cached_tokens * (entry.input - self.cached_price(model)) / 1e6
        return usd * self.batch_discount if batch else usd

    def page_cost(self, model: str | None, pages: int | None, batch: bool = False,
                  annotated: bool = False) -> float | None:
        """USD for an OCR call of `pages` pages (annotated: with an annotation format); None if
        the model is not priced per page (or `pages` is unknown). No pages cost 0."""
        if pages == 0:
            return 0.0
        entry = self.entry(model)
        if entry is None or entry.per_page is None or pages is None:
            return None
        each = entry.per_annotated_page if annotated and entry.per_annotated_page else entry.per_page
        usd = pages * each
        return usd * self.batch_discount if batch else usd

    def audio_cost(self, model: str | None, seconds: float | None) -> float | None:
        """USD for `seconds` of audio (0 cost 0); None if the model has no price per minute or
        `seconds` is unknown."""
        if seconds == 0:
            return 0.0
        entry = self.entry(model)
        if entry is None or entry.per_audio_minute is None or seconds is None:
            return None
        return seconds / 60 * entry.per_audio_minute

    def speech_cost(self, model: str | None, characters: int | None) -> float | None:
        """USD for speaking `characters` characters (0 cost 0); None if the model has no price
        per character."""
        if characters == 0:
            return 0.0
        entry = self.entry(model)
        if entry is None or entry.per_million_characters is None or characters is None:
            return None
        return characters / 1e6 * entry.per_million_characters

    def use_price(self, name: str) -> float | None:
        """USD per use of a built-in tool or service (``web_search``), None when unknown."""
        return self.uses.get(name)

    def use_cost(self, name: str, uses: int) -> float | None:
        """USD for `uses` uses of `name`; None when its price is unknown (no use costs 0)."""
        if not uses:
            return 0.0
        price = self.use_price(name)
        return None if price is None else price * uses

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> PriceTable:
        """A copy with user prices applied (an alias's override applies to its model)."""
        table = PriceTable(
            self.models,
            self.aliases,
            source=self.source,
            date=self.date,
            currency=self.currency,
            batch_discount=self.batch_discount,
            uses=self.uses,
            cached_share=self.cached_share,
        )
        if not overrides:
            return table
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"MistralMagics.prices must be a dict: {_OVERRIDE_FORM}")
        for name, value in overrides.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(
                    f"MistralMagics.prices has a bad model name {name!r}: {_OVERRIDE_FORM}"
                )
            if isinstance(value, Mapping) and "per_call" in value:
                if set(value) != {"per_call"}:
                    raise ConfigError(f"MistralMagics.prices[{name!r}] takes only 'per_call' for a tool "
                                      "priced per use, e.g. {'web_search': {'per_call': 0.01}}")
                table.uses[name.strip()] = _number(name, "per_call", value["per_call"])
                continue
            # A fine-tuned id's override is its own, not its base model's.
            canonical = (name.strip() if fine_tuned_base(name.strip())
                         else table.resolve(name) or name.strip())
            known = table.models.get(canonical)
            table.models[canonical] = _parse_override(name, value, known)
        table.source = f"{self.source} (with user overrides)" if self.source else "user overrides"
        return table


def fine_tuned_base(model: str) -> str | None:
    """The base model a fine-tuned id names (``ft:BASE:...``), or None for any other id.

    >>> fine_tuned_base("ft:open-mistral-7b:587a6b29:20240514:7e773925")
    'open-mistral-7b'
    """
    parts = model.split(":")
    if len(parts) < 3 or parts[0] != "ft" or not parts[1] or parts[1].startswith("ft"):
        return None
    return parts[1]


def _number(name: str, key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(
            f"MistralMagics.prices[{name!r}][{key!r}] must be a number >= 0, got {value!r}: {_OVERRIDE_FORM}"
        )
    return float(value)


_AUDIO_UNITS = ("per_audio_minute", "per_million_characters")


def _parse_override(name: str, value: Any, known: ModelPrice | None) -> ModelPrice:
    """An override as a price; a unit it does not name (an audio model's per minute) is kept."""
    price = _parse_prices(name, value, known)
    extra = {unit: _number(name, unit, value[unit]) if unit in value else getattr(known, unit, None)
             for unit in _AUDIO_UNITS}
    return replace(price, **extra)


def _parse_prices(name: str, value: Any, known: ModelPrice | None) -> ModelPrice:
    context = known.context if known else None
    # A pair (input, output) is accepted too: it is what people type first.
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = {"input": value[0], "output": value[1]}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] = {value!r} is not a price: {_OVERRIDE_FORM}"
        )
    unknown = set(value) - {"input", "output", "per_page", "per_annotated_page", "cached_input",
                            *_AUDIO_UNITS}
    if unknown:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] has unknown keys {sorted(unknown)}: {_OVERRIDE_FORM}"
        )
    if "per_page" in value:
        annotated = value.get("per_annotated_page")
        return ModelPrice(
            per_page=_number(name, "per_page", value["per_page"]), context=context,
            per_annotated_page=None if annotated is None
            else _number(name, "per_annotated_page", annotated),
        )
    if "per_annotated_page" in value:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] needs a 'per_page' price beside 'per_annotated_page': "
            f"{_OVERRIDE_FORM}"
        )
    if "input" not in value:
        if set(value) & set(_AUDIO_UNITS):
            # A price per minute or character alone: the model's other prices stand.
            return known if known is not None else ModelPrice()
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] needs an 'input' price: {_OVERRIDE_FORM}"
        )
    cached = value.get("cached_input")
    return ModelPrice(
        input=_number(name, "input", value["input"]),
        output=_number(name, "output", value.get("output", 0.0)),
        context=context,
        cached_input=None if cached is None else _number(name, "cached_input", cached),
    )


_base_table: PriceTable | None = None
_base_lock = threading.Lock()


def _load_base() -> PriceTable:
    global _base_table
    with _base_lock:
        if _base_table is None:
            text = resources.files(__package__).joinpath("prices.json").read_text("utf-8")
            data = json.loads(text)
            models: dict[str, ModelPrice] = {}
            aliases: dict[str, str] = {}
            for model_id, entry in data["models"].items():
                models[model_id] = ModelPrice(
                    input=entry.get("input"),
                    output=entry.get("output"),
                    per_page=entry.get("per_page"),
                    context=entry.get("context"),
                    per_annotated_page=entry.get("per_annotated_page"),
                    per_audio_minute=entry.get("per_audio_minute"),
                    per_million_characters=entry.get("per_million_characters"),
                    cached_input=entry.get("cached_input"),
                )
                for alias in entry.get("aliases", []):
                    aliases[alias] = model_id
            _base_table = PriceTable(
                models,
                aliases,
                source=data.get("source", ""),
                date=data.get("date", ""),
                currency=data.get("currency", "USD"),
                batch_discount=float(data.get("batch_discount", 0.5)),
                uses=data.get("tools", {}),
                cached_share=float(data.get("cached_input_share", 0.1)),
            )
    return _base_table


def load_prices(overrides: Mapping[str, Any] | None = None) -> PriceTable:
    """The bundled price table with `overrides` (``{model_or_alias: {"input", "output"}}``) applied.

    Raises `ConfigError` (one line, showing the expected form) for a malformed override.
    """
    return _load_base().with_overrides(overrides)

