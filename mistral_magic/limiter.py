"""RateLimiter: spaces requests to a key's limits and pauses everyone on a 429.

Requests are scheduled (not bucketed): each `acquire` takes the next free slot at
`1/requests_per_second` spacing and, with `tokens_per_minute`, a slot long enough
for its estimated tokens. A 429's `Retry-After` moves every later slot past the
pause, so concurrent workers stop together instead of each hammering the server.
"""

from __future__ import annotations

import asyncio
import time

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

    def _reserve(self, tokens: int) -> float:
        """Claim the next slot; returns the time it starts."""
        now = self.clock()
        start = max(now, self._next)
        gap = self.request_gap
        if self.token_rate:
            gap = max(gap, tokens / self.token_rate)
        self._next = start + gap
        return start

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for this request's slot (call from the loop's thread only)."""
        start = self._reserve(tokens)
        delay = start - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every later request for `seconds` (a 429's Retry-After)."""
        self.pauses += 1
        self._next = max(self._next, self.clock() + seconds)
