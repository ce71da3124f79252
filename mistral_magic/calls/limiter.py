"""Pacing: requests spaced to a key's limits, and everyone paused on a 429.

`RateLimiter`: requests are spaced (not bucketed): each request goes at least
`1/requests_per_second` after the previous one and, with `tokens_per_minute`, long
enough after it for the previous request's estimated tokens. A 429's `Retry-After`
moves every later slot past the pause, so concurrent workers stop together instead
of each hammering the server.

`Pacing` is how a row job's calls go out: through the limiter, a 429 waited out
(`retry_after`) and sent again up to `max_retries` times, 5xx and connection errors
retried by the SDK's own `RetryConfig` (`retries`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, is_api_error
from .backend import close_error_response

# Aim a little under the limit: a server counting a sliding one-second window sees
# evenly spaced requests at exactly the limit as one too many at the window's edge.
SAFETY = 0.97


class RateLimiter:
    """Async limiter for requests/s and tokens/min; both optional."""

    def __init__(
        self,
        requests_per_second: float | None = None,
        tokens_per_minute: float | None = None,
        clock=time.monotonic,
    ):
        for name, value in (("requests_per_second", requests_per_second),
                            ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.request_gap = 1 / (requests_per_second * SAFETY) if requests_per_second else 0.0
        self.token_rate = tokens_per_minute * SAFETY / 60 if tokens_per_minute else None
        self.clock = clock
        self._next = 0.0
        self.pauses = 0

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until this request may go (call from the loop's thread only).

        The slot is taken when the request actually goes, not when it starts
        waiting, so workers that wake late together (a busy loop) still go spaced.
        """
        gap = self.request_gap
        if self.token_rate:
            gap = max(gap, tokens / self.token_rate)
        while True:
            now = self.clock()
            if now >= self._next:
                self._next = now + gap
                return
            await asyncio.sleep(self._next - now)

    def pause(self, seconds: float) -> None:
        """Hold every later request for `seconds` (a 429's Retry-After)."""
        self.pauses += 1
        self._next = max(self._next, self.clock() + seconds)



@dataclass
class Pacing:
    """How a row job's calls go out: see the module's doc."""

    limiter: RateLimiter
    retries: Any  # the SDK's RetryConfig for 5xx and connection errors
    max_retries: int

    async def send(self, call, send) -> None:
        """Run `send()` for `call` when the limiter lets it go; a 429 pauses and tries again."""
        attempt = 0
        while True:
            await self.limiter.acquire(
                call.reservation.prompt_tokens + (call.request.get("max_tokens") or 0))
            call.sending()
            try:
                return await send()
            except Exception as exc:
                if not _rate_limited(exc) or attempt >= self.max_retries:
                    raise
                await close_error_response(exc)
                attempt += 1
                self.limiter.pause(retry_after(exc))


def _rate_limited(exc: BaseException) -> bool:
    return is_api_error(exc) and getattr(exc, "status_code", None) == 429


def retry_after(exc) -> float:
    """Seconds a 429 asks us to wait (`retry-after-ms` or `Retry-After`), at least a little."""
    headers = getattr(exc, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.05, float(headers["retry-after-ms"]) / 1000)
        if headers.get("retry-after"):
            return max(0.05, float(headers["retry-after"]))
    except ValueError:
        pass
    return 1.0


def check_limits(concurrency, requests_per_second, tokens_per_minute) -> None:
    """Refuse limits that could never let a request go (or would never stop them)."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"concurrency must be a whole number of at least 1, got {concurrency!r}; e.g. concurrency=8"
        )
    for name, value, example in (("requests_per_second", requests_per_second, 5),
                                 ("tokens_per_minute", tokens_per_minute, 500_000)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(
                f"{name} must be a number above 0 (or None for no limit), got {value!r}; "
                f"e.g. {name}={example}"
            )
