"""Prompt caching: a chat's requests carry a ``prompt_cache_key``, so the prefix the API has
seen (the chat's history, resent by every cell) is billed at a tenth of the input price.

Every call made for a chat (a `%%mistral` cell and its re-asks, each step of a ``--tools``
cell, the chat panel) is sent with ``prompt_cache_key`` set to `cache_key`: a hash of the
working folder, the notebook's name (when the front end says it) and the chat's name, so
the cells of one chat share a key and two chats or two notebooks do not. It never comes
from the API key, and says nothing about either once hashed. ``%config
MistralMagics.prompt_cache = False`` sends none. Calls that belong to no chat (row
methods, ``--no-history``, FIM) are sent without one, and so is every call to a
self-hosted server (``server_url``), which may not know the field.

The server says what it took from its cache in ``usage.prompt_tokens_details.cached_tokens``
(`cached_tokens`); those tokens are priced at the model's cached-input price
(`money.prices.PriceTable.cost`), and the footer, the ledger and ``%mistral usage`` show
them with what they saved. Estimates and budget holds stay worst case: nothing is
assumed cached before the server says so, and a call whose usage never arrived (an
interrupt) is priced uncached. The key is added to the request as it is sent, not to the
request the response cache knows an answer by, so the setting changes no cached answer.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

PREFIX = "mistral-magic-"
HOSTS = ("mistral", "offline")  # the backends known to take the field


def cache_key(folder: str, notebook: str | None, chat: str) -> str:
    """The ``prompt_cache_key`` of a chat: the same for every cell of it, in any kernel here."""
    seed = "\0".join(("mistral_magic prompt cache 1", folder, notebook or "", chat))
    return PREFIX + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def keyed(session, request: dict, chat: str | None) -> dict:
    """`request` with its chat's ``prompt_cache_key`` when the setting is on (a copy), else as it is."""
    if (chat is None or "messages" not in request or "prompt_cache_key" in request
            or not getattr(session.settings, "prompt_cache", False)
            or session.backend_spec().kind not in HOSTS):
        return request
    key = cache_key(os.getcwd(), session.responses.notebook, chat)
    return {**request, "prompt_cache_key": key}


def cached_tokens(usage: Any) -> int | None:
    """The prompt tokens a response's usage says came from the cache, or None when it says nothing.

    Read from ``prompt_tokens_details.cached_tokens`` (the SDK keeps it as an extra field,
    as the spec's UsageInfo lacks it), else ``num_cached_tokens``; a value that is not a
    whole number from 0 is ignored, never trusted.
    """
    if usage is None:
        return None
    details = _field(usage, "prompt_tokens_details") or _field(usage, "prompt_token_details")
    value = _field(details, "cached_tokens") if details is not None else None
    if value is None:
        value = _field(usage, "num_cached_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name)
    found = getattr(value, name, None)
    if found is None:
        extra = getattr(value, "__pydantic_extra__", None) or {}
        found = extra.get(name)
    # The SDK's Unset marker for a field the server left out.
    return None if type(found).__name__ == "Unset" else found
