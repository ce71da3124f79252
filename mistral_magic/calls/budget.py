"""The budget: ``MistralMagics.budget_usd`` as a hard cap, kept by reservations.

`Budget` (``session.budget``) keeps spent (the ledger) plus held (calls still
running) from ever passing the limit. Every call (a cell, a structured re-ask, the
chat panel, each extraction row and re-ask, a batch job) first takes a `Reservation`:

- *reserved*: the call's worst case, its prompt plus its ``max_tokens`` at list
  price (half for a batch job), is held until the call settles; then the ledger
  records the real usage and the hold is given back, also after an error or an
  interrupt (whatever was really used is still recorded);
- *capped*: the request carries a ``max_tokens`` no larger than what is left
  affords after its prompt (the user's own ``--max-tokens`` stays when smaller;
  no cap when the budget covers the model's whole context; an extraction row or
  batch line without one is capped at `estimates.DEFAULT_MAX_TOKENS` too). An answer cut
  there says "cut by budget" in its footer;
- *refused*: a call that cannot afford its prompt plus `MIN_ANSWER_TOKENS` (16)
  answer tokens, or a batch job (or an OCR call, priced per page, whose worst case
  is fixed) whose whole worst case does not fit, raises a
  one-line `BudgetExceeded` before anything is sent, with what is left, what the
  call needs, and the fix.

A model that listens pays for its recordings by the minute besides its tokens: that fixed
part (`fixed_cost`, from the length measured here) is held with the rest.

The prompt count is exact on the offline server (it counts with the same
tokenizer). Hosted models' tokenizers are not bundled, so there the prompt is
held at Tekken's count plus a margin (`estimates.prompt_bound`) and the cap is as
good as that margin.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from ..errors import BudgetExceeded, ConfigError
from ..money.prices import PriceTable
from ..money.usage import CallRecord, Ledger, format_cost, format_tokens

log = logging.getLogger(__name__)

#: The fewest answer tokens worth paying for. With a budget, a call that cannot afford
#: its prompt plus this many answer tokens (or its own ``max_tokens``, when smaller) is
#: refused before it is sent; 16 tokens is about one short sentence or a small record.
MIN_ANSWER_TOKENS = 16
FIX_TOTAL = "lower max_tokens or send fewer rows"


class Reservation:
    """The worst case one call (or one batch job) holds against the budget until it settles.

    `max_tokens` is what the request must carry (None: leave the request's own);
    `capped` says the budget, not the user, set it, so an answer cut there was cut by
    the budget. `settle(*records)` puts the call's real usage in the ledger and gives
    back the hold (once); `release()` gives it back when nothing was sent (idempotent).
    """

    def __init__(self, budget: Budget, held: float, *, prompt_tokens: int | Callable[[], int] = 0,
                 max_tokens: int | None = None, capped: bool = False, running: bool = True):
        self.budget = budget
        self.held = held
        self._prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.capped = capped
        self.running = running
        self.open = True

    def __repr__(self) -> str:
        state = "open" if self.open else "settled"
        return (f"<Reservation {format_cost(self.held)} max_tokens={self.max_tokens} "
                f"capped={self.capped} {state}>")

    @property
    def prompt_tokens(self) -> int:
        """The prompt's count; one held without a limit is counted when first asked for."""
        if callable(self._prompt_tokens):
            self._prompt_tokens = self._prompt_tokens()
        return self._prompt_tokens

    def apply(self, request: dict) -> dict:
        """The request with the budget's `max_tokens` (the same dict when it sets none)."""
        if self.max_tokens is None or request.get("max_tokens") == self.max_tokens:
            return request
        return {**request, "max_tokens": self.max_tokens}

    def settle(self, *records: CallRecord) -> None:
        """Record what the call really used, then give back the hold.

        Recording first means the spend plus the holds never looks lower than it is,
        so a concurrent reservation can never slip in between.
        """
        for rec in records:
            if rec is not None:
                self.budget.ledger.record(rec)
        actual = math.fsum(rec.cost or 0.0 for rec in records if rec is not None)
        if self.open and self.held > 0 and actual > self.held * (1 + 1e-9):
            log.warning(
                "mistral_magic: a call cost %s, more than the %s its reservation held "
                "(the server counted more prompt tokens than the estimate)",
                format_cost(actual), format_cost(self.held),
            )
        self.release()

    def release(self) -> None:
        """Give back the hold without recording anything (the call was never sent)."""
        if self.open:
            self.open = False
            self.budget._release(self)


class Budget:
    """The session's hard spending cap (``MistralMagics.budget_usd``): spent + held <= limit.

    Spent is what the ledger has recorded; held is the worst case of every call still
    running (and of batch jobs not yet read back). Every call goes through `reserve`
    before it is sent and through `Reservation.settle` after, so concurrent calls,
    re-asks and later multi-step calls all see what the others may still spend.
    Without a limit every reservation holds nothing and caps nothing.

    With a limit, a call whose price is unknown is refused: its cost could not be
    counted against the limit. Set its price via ``MistralMagics.prices`` to allow it.
    Thread-safe: the kernel's thread and the background loop reserve side by side.
    """

    def __init__(self, limit: float | None | Callable[[], float | None] = None,
                 ledger: Ledger | None = None):
        self.ledger = ledger if ledger is not None else Ledger()
        self._limit = limit if callable(limit) else (lambda value=limit: value)
        _valid_limit(self._limit())
        self._lock = threading.Lock()
        self._holds: dict[int, Reservation] = {}
        self._waiters: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Budget({self.limit_usd!r}, held={format_cost(self.reserved)})"

    @property
    def limit_usd(self) -> float | None:
        """The limit in USD, read live (None: no limit)."""
        return _valid_limit(self._limit())

    @property
    def reserved(self) -> float:
        """USD held by calls that have not settled yet."""
        with self._lock:
            return self._held()

    def remaining(self) -> float | None:
        """USD that new calls may still take (never below 0), or None without a limit."""
        limit = self.limit_usd
        if limit is None:
            return None
        with self._lock:
            return max(0.0, limit - self._committed())

    def _held(self) -> float:
        return math.fsum(r.held for r in self._holds.values())

    def _committed(self) -> float:
        return self.ledger.spent + self._held()

    @staticmethod
    def _passes(committed: float, cost: float, limit: float) -> bool:
        """The one comparison: would `cost` more take the spend past the limit? (equal is allowed)"""
        return committed + cost > limit

    # -- reserving ------------------------------------------------------------------

    def reserve(self, prices: PriceTable, model: str, prompt_tokens: int,
                max_tokens: int | None = None, *, batch: bool = False, n: int = 1,
                default_cap: int | None = None, exact_prompt: int | Callable[[], int] | None = None,
                fixed_cost: float = 0.0,
                recount: Callable[[], tuple[int, int]] | None = None) -> Reservation:
        """Hold one call's worst case and cap its answer; raise `BudgetExceeded` if it cannot
        afford `MIN_ANSWER_TOKENS` answer tokens (or its own `max_tokens`, when smaller).

        `prompt_tokens` is the count to hold (an exact count or an upper bound, see
        `prompt_bound`); `exact_prompt`, when given, is the plain count kept for the
        ledger (a callable: counted when first needed). Without `max_tokens` the answer
        is capped at what the budget affords, at `default_cap` (rows that share the
        budget), or left uncapped when the budget covers the model's whole context.
        `fixed_cost` is paid whatever the answer (a recording's minutes).

        With `recount`, `prompt_tokens` is a cheap upper bound of a prompt not counted
        yet: the call is held there when the bound decides nothing an exact count would
        (the call fits with its whole answer: its `max_tokens`, or the whole context);
        otherwise `recount()` gives (the count to hold, the plain count) and the call is
        reserved as usual.
        """
        return self._reserve(prices, model, prompt_tokens, max_tokens, batch, n, default_cap,
                             exact_prompt, waiter=None, fixed_cost=fixed_cost, recount=recount)

    async def reserve_async(self, prices: PriceTable, model: str, prompt_tokens: int,
                            max_tokens: int | None = None, *, batch: bool = False, n: int = 1,
                            default_cap: int | None = None,
                            exact_prompt: int | Callable[[], int] | None = None,
                            fixed_cost: float = 0.0,
                            recount: Callable[[], tuple[int, int]] | None = None) -> Reservation:
        """`reserve` for the background loop: waits while running calls hold what it needs.

        It caps or refuses (`BudgetExceeded`) only when no other running call holds
        anything, so the rows of an extraction share the budget instead of cutting or
        refusing each other.
        """
        held = None if recount is None else self._within_bound(
            prices, model, prompt_tokens, max_tokens, batch, n, default_cap, exact_prompt,
            fixed_cost)
        if held is not None:
            return held
        if recount is not None:
            prompt_tokens, exact_prompt = recount()
        return await self._waiting(lambda wake: self._reserve(
            prices, model, prompt_tokens, max_tokens, batch, n, default_cap, exact_prompt,
            waiter=wake, fixed_cost=fixed_cost))

    async def _waiting(self, attempt: Callable[[Callable[[], None]], Reservation | None]
                       ) -> Reservation:
        """`attempt(wake)` until it holds: it returns None (after adding `wake` to the
        waiters) while running calls hold what it needs, and is tried again when one settles."""
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            woken = asyncio.Event()

            def wake(event=woken) -> None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # the loop is closing: nothing waits any more
                    pass

            reservation = attempt(wake)
            if reservation is not None:
                return reservation
            try:
                await woken.wait()
            finally:
                with self._lock:
                    if wake in self._waiters:
                        self._waiters.remove(wake)

    def reserve_total(self, worst_cost: float | None, what: str, *, model: str,
                      running: bool = False, fix: str = FIX_TOTAL) -> Reservation:
        """Hold a fixed worst case (a batch job's); raise `BudgetExceeded` if it does not fit.

        `running=False` marks a hold that may last (a batch job runs on after an
        interrupt), so calls do not wait for it to come back.
        """
        return self._total(worst_cost, what, model, running, fix, waiter=None)

    async def reserve_total_async(self, worst_cost: float | None, what: str, *,
                                  model: str, fix: str = FIX_TOTAL) -> Reservation:
        """`reserve_total` for a call on the background loop (an OCR row, priced per page):
        waits while running calls hold what it needs, refuses only when none does."""
        return await self._waiting(
            lambda wake: self._total(worst_cost, what, model, True, fix, waiter=wake))

    def _total(self, worst_cost, what, model, running, fix, waiter) -> Reservation | None:
        limit = self._priced_limit(worst_cost, model)
        if limit is None:
            return Reservation(self, 0.0, running=running)
        with self._lock:
            fits = not self._passes(self._committed(), worst_cost, limit)
            if not fits and waiter is not None and any(r.running for r in self._holds.values()):
                self._waiters.append(waiter)
                return None
            self._refuse_past(limit, worst_cost, f"{what} may cost up to", fix)
            return self._hold(Reservation(self, worst_cost, running=running))

    def require(self, cost: float | None, what: str, *, model: str) -> None:
        """Refuse (`BudgetExceeded`) work whose least possible cost already does not fit."""
        limit = self._priced_limit(cost, model)
        if limit is None:
            return
        with self._lock:
            self._refuse_past(limit, cost, f"{what} needs at least",
                              "shorten the prompt or send fewer rows")

    def _priced_limit(self, cost: float | None, model: str) -> float | None:
        """The limit (None: no limit); with one, an unknown cost is refused."""
        limit = self.limit_usd
        if limit is not None and cost is None:
            raise _unpriced(model, limit, self.ledger.spent)
        return limit

    def _refuse_past(self, limit: float, cost: float, claim: str, fix: str) -> None:
        """Raise `BudgetExceeded` when `cost` more would pass the limit (hold the lock)."""
        committed = self._committed()
        if self._passes(committed, cost, limit):
            raise BudgetExceeded(
                f"Refused: {claim} {format_cost(cost)} but only "
                f"{_left(limit, committed, self._held())}; raise MistralMagics.budget_usd, {fix}"
            )

    def _within_bound(self, prices, model, bound, max_tokens, batch, n, default_cap,
                      exact_prompt, fixed_cost: float = 0.0) -> Reservation | None:
        """The call held at its prompt's upper bound with its whole answer, when that fits
        (then an exact count would neither refuse nor cap it either); else None."""
        limit = self.limit_usd
        answer = max_tokens if max_tokens is not None else prices.context_length(model)
        if limit is None or default_cap is not None or not answer or prices.price(model) is None:
            return None
        worst = (prices.cost(model, bound, answer * max(1, int(n or 1)), batch=batch) or 0.0) \
            + fixed_cost
        with self._lock:
            if self._passes(self._committed(), worst, limit):
                return None
            return self._hold(Reservation(self, worst, prompt_tokens=exact_prompt,
                                          max_tokens=max_tokens))

    def _reserve(self, prices, model, prompt_tokens, max_tokens, batch, n, default_cap,
                 exact_prompt, waiter, fixed_cost: float = 0.0, recount=None) -> Reservation | None:
        if recount is not None:
            held = self._within_bound(prices, model, prompt_tokens, max_tokens, batch, n,
                                      default_cap, exact_prompt, fixed_cost)
            if held is not None:
                return held
            prompt_tokens, exact_prompt = recount()
        counted = prompt_tokens if exact_prompt is None else exact_prompt
        limit = self.limit_usd
        if limit is None:
            return Reservation(self, 0.0, prompt_tokens=counted)
        if callable(prompt_tokens):  # counted late, for no limit; one was set meanwhile
            raise BudgetExceeded("Refused: MistralMagics.budget_usd was set while this call was "
                                 "being prepared; run it again to hold it against the budget")
        if prices.price(model) is None:
            raise _unpriced(model, limit, self.ledger.spent)
        n = max(1, int(n or 1))

        def cost(answer_tokens: int) -> float:
            return (prices.cost(model, prompt_tokens, answer_tokens * n, batch=batch) or 0.0) \
                + fixed_cost

        least = MIN_ANSWER_TOKENS if max_tokens is None else min(MIN_ANSWER_TOKENS, max_tokens)
        most, whole_context = max_tokens, False
        if most is None:
            most = default_cap
        if most is None:
            room = (prices.context_length(model) or 0) - prompt_tokens
            if room > 0:
                most, whole_context = room, True
        with self._lock:
            committed = self._committed()
            others_running = any(r.running for r in self._holds.values())
            if self._passes(committed, cost(least), limit):
                if waiter is not None and others_running:
                    self._waiters.append(waiter)
                    return None
                raise BudgetExceeded(
                    f"Refused: this call needs at least {format_cost(cost(least))} "
                    f"({format_tokens(prompt_tokens)} prompt + {format_tokens(least * n)} answer "
                    f"tokens on {model}) but only {_left(limit, committed, self._held())}; "
                    "raise MistralMagics.budget_usd, shorten the prompt, or %mistral reset the chat"
                )
            tokens = self._most_tokens(committed, limit, cost, least, most)
            if (waiter is not None and others_running and tokens is not None
                    and most is not None and tokens < most):
                # What running calls hold may come back: wait for it rather than cut
                # this answer short; cap only once nothing else holds any.
                self._waiters.append(waiter)
                return None
            if tokens is None:  # answers are free: only the prompt costs
                send, capped, worst = max_tokens, False, cost(0)
            else:
                worst = cost(tokens)
                if max_tokens is not None or default_cap is not None:
                    send, capped = tokens, tokens < most
                elif whole_context and tokens == most:
                    # The budget covers any answer the model can give: leave it uncapped.
                    send, capped = None, False
                else:
                    send, capped = tokens, True
            return self._hold(Reservation(self, worst, prompt_tokens=counted, max_tokens=send,
                                          capped=capped))

    def _most_tokens(self, committed: float, limit: float, cost, least: int,
                     most: int | None) -> int | None:
        """The largest answer (least..most tokens) whose cost fits; None when answers are free."""
        per_token = cost(1) - cost(0)
        if per_token <= 0:
            return most
        guess = int(max(0.0, limit - committed - cost(0)) / per_token)
        guess = max(least, guess if most is None else min(most, guess))
        # The division rounds; settle the last token or two with the comparison itself.
        while guess > least and self._passes(committed, cost(guess), limit):
            guess -= 1
        while (most is None or guess < most) and not self._passes(committed, cost(guess + 1), limit):
            guess += 1
        return guess

    def _hold(self, reservation: Reservation) -> Reservation:
        self._holds[id(reservation)] = reservation
        return reservation

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            self._holds.pop(id(reservation), None)
            waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()


def _valid_limit(limit_usd: Any) -> float | None:
    if limit_usd is None:
        return None
    if isinstance(limit_usd, bool) or not isinstance(limit_usd, (int, float)) or not limit_usd >= 0:
        raise ConfigError(
            f"MistralMagics.budget_usd must be a number >= 0 or None, got {limit_usd!r}; "
            "e.g. %config MistralMagics.budget_usd = 1.0"
        )
    return float(limit_usd)


def _left(limit: float, committed: float, held: float) -> str:
    text = f"{format_cost(max(0.0, limit - committed))} of the {format_cost(limit)} budget is left"
    if held > 0:
        text += f" ({format_cost(held)} held by calls still running)"
    return text


def _unpriced(model: str, limit: float, spent: float) -> BudgetExceeded:
    return BudgetExceeded(
        f"Refused: no price is known for {model}, so it cannot be counted against the "
        f"{format_cost(limit)} budget ({format_cost(spent)} spent); set its price with "
        f'%config MistralMagics.prices = {{"{model}": {{"input": <USD per 1M>, "output": '
        '<USD per 1M>}} or set MistralMagics.budget_usd = None'
    )
