"""Completions' own daily cap, and their ledger rows in each folder's store.

Every completion is a row of kind ``"completion"`` in the ledger of the folder its
notebook is in (``.mistral_magic/store.sqlite``, `mistral_magic.store.Store`), so
``%mistral usage --all`` there counts it. The cap (``MistralCompletion.daily_cap_usd``)
works as the kernel's budget does: before a completion is sent its worst case (every
byte of its prompt a token, plus ``max_tokens``, at list price) is held; a completion
whose hold does not fit beside today's spend and the other holds is refused; when it
ends, its real cost is spent and the hold given back. Today's spend is what this
process recorded today plus, for each folder, what its ledger held for today when
this process first used it (so a restarted server does not start again from $0).
The day is the server's local calendar day.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KIND = "completion"
#: The ledger session name of completions (`%mistral usage --all` shows it).
SESSION = "jupyterlab"


class Refused(Exception):
    """A completion the day's cap cannot pay for; the message says why and the fix."""


class DailyCap:
    """Today's completion spend against the cap, with holds for completions under way."""

    def __init__(self, cap_usd):
        self._cap = cap_usd  # read live: a callable
        self._day: date | None = None
        self._spent = 0.0
        self._held: dict[int, float] = {}
        self._loaded: dict[Path, asyncio.Future] = {}
        self._stores: dict[Path, Any] = {}
        self._tickets = itertools.count()

    @property
    def cap_usd(self) -> float:
        return float(self._cap())

    @property
    def spent_today(self) -> float:
        self._roll()
        return self._spent

    def _roll(self) -> None:
        today = date.today()
        if self._day != today:
            self._day, self._spent = today, 0.0
            self._loaded.clear()

    def store(self, folder: Path):
        """The folder's store (opened on first use; nothing is created until a write)."""
        if folder not in self._stores:
            from mistral_magic.store import Store

            self._stores[folder] = Store(folder / ".mistral_magic" / "store.sqlite",
                                         session=SESSION)
        return self._stores[folder]

    async def load(self, folder: Path) -> None:
        """Add what the folder's ledger spent on completions today, once per folder and day."""
        self._roll()
        loading = self._loaded.get(folder)
        if loading is None:
            loading = self._loaded[folder] = asyncio.ensure_future(
                asyncio.to_thread(_spent_today, self.store(folder)))
            loading.add_done_callback(self._add(self._day))
        await asyncio.shield(loading)

    def _add(self, day: date):
        def added(future: asyncio.Future) -> None:
            if not future.cancelled() and future.exception() is None and self._day == day:
                self._spent += future.result()
        return added

    def hold(self, amount: float) -> int:
        """Hold `amount` for a completion; `Refused` when the cap cannot pay for it."""
        self._roll()
        cap = self.cap_usd
        committed = self._spent + math.fsum(self._held.values())
        if committed + amount > cap:
            raise Refused(f"Codestral completions are at today's cap: ${committed:.4f} of "
                          f"${cap:.2f} spent or held, and one needs up to ${amount:.4f}; raise "
                          "MistralCompletion.daily_cap_usd in jupyter_server_config.py")
        ticket = next(self._tickets)
        self._held[ticket] = amount
        return ticket

    def settle(self, ticket: int, cost: float | None) -> None:
        """Spend what a completion cost and give its hold back."""
        self._roll()
        self._held.pop(ticket, None)
        self._spent += cost or 0.0

    def record(self, folder: Path, row: dict) -> None:
        """Write a completion's ledger row; a store that fails is logged, never raised."""
        from mistral_magic.store import StoreError

        try:
            self.store(folder).ledger.append([{**row, "kind": KIND}])
        except StoreError as exc:
            log.warning("mistral_magic_lab: the completion was not recorded: %s", exc)


def _spent_today(store) -> float:
    """USD of today's completion rows in a store's ledger (local day)."""
    if not store.exists:
        return 0.0
    frame = store.ledger.frame()
    if frame.empty:
        return 0.0
    start = datetime.combine(date.today(), time()).astimezone()
    rows = frame[(frame["kind"] == KIND) & (frame["time"] >= start)]
    return float(rows["cost"].fillna(0.0).sum())
