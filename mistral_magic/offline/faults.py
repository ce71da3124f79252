"""Fault plans: what the offline server does wrong, on purpose, and when."""

from __future__ import annotations

import collections
import json
import math
import random
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEADER = "x-offline-faults"
HOUR_MS = 3_600_000
MAX_ANSWER_TOKENS = 65536


class FaultPlan(BaseModel):
    """Faults the offline server injects; every field defaults to "no fault".

    Delays are in milliseconds and never block the server's event loop.
    Probabilities are drawn from a `random.Random(seed)` stream per plan, so a plan
    with the same seed faults the same requests in the same order.
    """

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(0, ge=0, le=HOUR_MS, description="delay before the first token, streamed or not")
    token_delay_ms: float = Field(0, ge=0, le=HOUR_MS, description="delay before each further token, streamed or not")
    latency_ms: float = Field(0, ge=0, le=HOUR_MS, description="fixed latency added to every request")
    rate_limit_rps: float | None = Field(None, gt=0, description="requests/s per API key, sliding 1 s window")
    error_status: int | None = Field(None, ge=400, le=599, description="status of injected errors")
    error_rate: float = Field(0, ge=0, le=1, description="probability that a request gets error_status")
    error_on_nth: int | list[int] | None = Field(None, description="1-based request numbers (per path) to fault")
    drop_stream_after: int | None = Field(None, ge=0, description="cut a stream after this many tokens")
    bad_json_rate: float = Field(0, ge=0, le=1, description="probability that a JSON-mode answer is broken")
    batch_line_error_rate: float = Field(0, ge=0, le=1, description="probability that a batch line fails")
    answer_tokens: int | None = Field(None, ge=1, le=MAX_ANSWER_TOKENS,
                                      description="make text answers exactly this many tokens")
    shuffle_embeddings: bool = Field(False, description="send embeddings out of order, each with its index")
    seed: int = 0

    def merged(self, override: FaultPlan | None) -> FaultPlan:
        """This plan with the fields explicitly set in `override` replacing its own."""
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(include=override.model_fields_set))
        return FaultPlan(**data)

    def nth_set(self) -> frozenset[int]:
        if self.error_on_nth is None:
            return frozenset()
        if isinstance(self.error_on_nth, int):
            return frozenset({self.error_on_nth})
        return frozenset(self.error_on_nth)

    @property
    def is_empty(self) -> bool:
        return self == NO_FAULTS


NO_FAULTS = FaultPlan()
# The pace of the extension's own offline server: streaming shows in a demo (a
# 150-token answer arrives over about 0.7 s, in a dozen display updates) while a
# 20-row extraction, 8 rows at a time, of ~50-token JSON answers stays near a second.
DEMO_PACE = FaultPlan(ttft_ms=100, token_delay_ms=4)


def shuffled(items: list, plan: FaultPlan) -> list:
    """`items` in an order drawn from the plan's seed, never their own (when there are two or more)."""
    order = list(range(len(items)))
    random.Random(f"{plan.seed}:shuffle:{len(items)}").shuffle(order)
    if order == sorted(order):
        order = order[1:] + order[:1]
    return [items[i] for i in order]


def coerce(plan: FaultPlan | dict | None) -> FaultPlan:
    """A FaultPlan from a plan, a dict of its fields, or None (no faults)."""
    if plan is None:
        return NO_FAULTS
    if isinstance(plan, FaultPlan):
        return plan
    return FaultPlan(**plan)


class FaultState:
    """Counters, random streams and rate windows behind the plans; thread-safe.

    Request numbers for `error_on_nth` and the random streams are kept per
    (endpoint path, plan source): the server-wide plan restarts them when it is
    replaced; a plan sent in the X-Offline-Faults header has its own, keyed by the
    header's text, so identical headers share one sequence.
    """

    def __init__(self, plan: FaultPlan | dict | None = None):
        self._lock = threading.Lock()
        self.plan = coerce(plan)
        self._generation = 0
        self._counters: dict[tuple, int] = collections.defaultdict(int)
        self._randoms: dict[tuple, random.Random] = {}
        self._windows: dict[str, collections.deque] = collections.defaultdict(collections.deque)

    def replace(self, plan: FaultPlan | dict | None) -> None:
        with self._lock:
            self.plan = coerce(plan)
            self._generation += 1
            self._counters.clear()
            self._randoms.clear()
            self._windows.clear()

    def resolve(self, header: str | None) -> tuple[FaultPlan, Any]:
        """The plan for one request and the key naming its source; raises ValueError on a bad header."""
        plan = self.plan
        if not header:
            return plan, self._generation
        try:
            override = FaultPlan(**json.loads(header))
        except Exception as exc:  # any malformed header is the caller's error, reported as 400
            raise ValueError(f"invalid X-Offline-Faults header: {exc}") from exc
        return plan.merged(override), (self._generation, header)

    def count(self, source: Any, path: str) -> int:
        """Number this request (1-based) among requests to `path` under this plan."""
        with self._lock:
            self._counters[(source, path)] += 1
            return self._counters[(source, path)]

    def chance(self, plan: FaultPlan, source: Any, kind: str, rate: float) -> bool:
        """Draw the next value of the plan's `kind` stream: True with probability `rate`."""
        if rate <= 0:
            return False
        with self._lock:
            rng = self._randoms.get((source, kind))
            if rng is None:
                rng = self._randoms[(source, kind)] = random.Random(f"{plan.seed}:{kind}")
            return rng.random() < rate

    def rate_limit_wait(self, plan: FaultPlan, key: str) -> float:
        """Seconds to wait before `key` may send again (0: admitted and recorded)."""
        rps = plan.rate_limit_rps
        if not rps:
            return 0.0
        # Below 1 request/s the window widens so one request fits in it.
        capacity = max(1, math.floor(rps))
        window = max(1.0, capacity / rps)
        now = time.monotonic()
        with self._lock:
            stamps = self._windows[key]
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= capacity:
                return stamps[0] + window - now
            stamps.append(now)
            return 0.0
