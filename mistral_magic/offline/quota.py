"""The rate-limit headers the hosted API sends with a model call, with plausible limits that count down.

Names as seen on the hosted API: `x-ratelimit-limit-req-minute` and
`x-ratelimit-remaining-req-minute`, the same for `tokens-minute` and `tokens-month`,
and `x-ratelimit-tokens-query-cost` (the tokens this call cost). The limits are a
paid plan's order of magnitude (or, under a fault plan's `rate_limit_rps`, that rate
per minute); the remaining counts go down with each call over a sliding minute and
over the server's life for the month. They inform, as the hosted ones do: the offline
server refuses a call only under a fault plan.
"""

from __future__ import annotations

import collections
import math
import threading
import time

REQUESTS_PER_MINUTE = 1_200
TOKENS_PER_MINUTE = 2_000_000
TOKENS_PER_MONTH = 10_000_000_000
_WINDOW_S = 60.0


class Quota:
    """What one server's key has spent: calls and tokens in the last minute, tokens this month."""

    def __init__(self):
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._month = 0
        self._lock = threading.Lock()

    def spend(self, tokens: int, rps: float | None = None) -> dict[str, str]:
        """Count one call of `tokens` tokens; the headers its response carries."""
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, tokens))
            while self._recent and self._recent[0][0] <= now - _WINDOW_S:
                self._recent.popleft()
            self._month += tokens
            calls, spent, month = len(self._recent), sum(t for _, t in self._recent), self._month
        per_minute = math.ceil(rps * 60) if rps else REQUESTS_PER_MINUTE
        return {
            "x-ratelimit-limit-req-minute": str(per_minute),
            "x-ratelimit-remaining-req-minute": str(max(0, per_minute - calls)),
            "x-ratelimit-limit-tokens-minute": str(TOKENS_PER_MINUTE),
            "x-ratelimit-remaining-tokens-minute": str(max(0, TOKENS_PER_MINUTE - spent)),
            "x-ratelimit-limit-tokens-month": str(TOKENS_PER_MONTH),
            "x-ratelimit-remaining-tokens-month": str(max(0, TOKENS_PER_MONTH - month)),
            "x-ratelimit-tokens-query-cost": str(tokens),
        }
