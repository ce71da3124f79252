"""Never a key in the store: credential fields dropped, the keys in use redacted.

Everything the store writes passes through `Scrubber.json` (or `Scrubber.text`):
dict keys that carry credentials (`SECRET_NAMES`) are dropped at any depth, and the
values of `MISTRAL_API_KEY`, `MISTRAL_SERVER_KEY` and any key the session gives are
replaced by ``[redacted]`` wherever they appear, raw or escaped inside JSON, in any
letter case.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

#: dict keys that carry credentials: dropped from requests and responses, at any depth.
SECRET_NAMES = frozenset(
    {
        "api_key", "apikey", "api-key", "x-api-key", "server_key", "secret_key",
        "authorization", "proxy-authorization", "headers", "http_headers", "access_token",
    }
)
#: environment variables whose values are redacted wherever they would be written.
SECRET_ENV = ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")
REDACTED = "[redacted]"
# Shorter values are not credentials, and replacing them would garble ordinary text.
MIN_SECRET_LENGTH = 8


def is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and name.lower() in SECRET_NAMES


def strip_secret_names(value: Any) -> Any:
    """A copy of `value` without credential-carrying dict keys, at any depth."""
    if isinstance(value, dict):
        return {k: strip_secret_names(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, (list, tuple)):
        return [strip_secret_names(v) for v in value]
    return value


class Scrubber:
    """Replaces every known secret in text to be written; the secrets are read per write."""

    def __init__(self, extra: Callable[[], Iterable[str | None]] | None = None):
        self.extra = extra

    def secrets(self) -> list[str]:
        """The keys in use, as written raw and as escaped inside JSON text."""
        values = [os.environ.get(name) for name in SECRET_ENV]
        if self.extra is not None:
            values.extend(self.extra() or ())
        found: list[str] = []
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
                    if form not in found:
                        found.append(form)
        # Longest first, so a key that contains another is replaced whole.
        return sorted(found, key=len, reverse=True)

    @staticmethod
    def text(value: Any, secrets: list[str]) -> Any:
        """`value` with each secret replaced in any letter case (a model may echo a key
        lower-cased), when it is text; anything else unchanged."""
        if not isinstance(value, str):
            return value
        lowered = value.lower()
        for secret in secrets:
            if secret.lower() in lowered:
                value = re.sub(re.escape(secret), REDACTED, value, flags=re.IGNORECASE)
                lowered = value.lower()
        return value

    def json(self, value: Any, secrets: list[str]) -> str:
        """`value` as JSON text, without credential keys or secrets."""
        text = json.dumps(strip_secret_names(value), ensure_ascii=False, default=str)
        return self.text(text, secrets)
