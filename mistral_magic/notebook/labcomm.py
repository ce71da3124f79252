"""The kernel's side of the JupyterLab extension (``lab/``): live spend, generated cells in place.

Spend
    At ``%load_ext mistral_magic`` in a Jupyter kernel, `install` opens a comm to the
    target ``mistral_magic.lab`` and sends the session's spend over it::

        {"type": "spend", "version": 1, "spent_usd": 0.0123, "cost_known": true,
         "calls": 3, "budget_usd": 0.5, "held_usd": 0.0, "running": false,
         "models": [{"model": ..., "calls": ..., "prompt_tokens": ...,
                     "completion_tokens": ..., "cost": ..., "cost_known": ...}]}

    when a call is recorded (also from the background loop: extraction rows, the chat
    panel), while a cell runs (``running``, and ``held_usd``, what the budget holds for
    calls under way) and when it ends: at most four messages a second, and only when
    something changed. Kernel-to-browser messages travel on iopub, so the status bar
    follows a busy kernel. A front end without the extension closes the comm, and
    nothing more is sent; outside a kernel (terminal IPython) nothing is opened. After
    a page reload the front end finds the open comm (a comm_info request) and says
    ``{"type": "hello"}``: the spend is sent again.

Generated cells
    `next_cell` is how ``%%mistral --format code``, ``--fim`` and ``%mistral fix`` put
    their code in the next cell. In a kernel it is the usual ``set_next_input``
    payload with a mark, ``"mistral_magic": {"generated_by": <id of the cell that ran>,
    "kind": "code" | "fim" | "fix"}``; the extension takes a marked payload out of the
    execute reply before JupyterLab inserts a cell, and replaces the cell that cell
    generated before instead (one an edit changed is kept, and a new one inserted).
    A front end without the extension reads the payload as it always did and inserts
    a cell; nbclient ignores payloads; a terminal gets the code as its next input.
"""

from __future__ import annotations

import threading
import time
from typing import Any

TARGET = "mistral_magic.lab"
VERSION = 1
MIN_INTERVAL_S = 0.25  # at most four spend messages a second
TICK_S = 0.5  # while a cell runs: how often what the budget holds is looked at

_link: SpendComm | None = None


def install(shell, session) -> None:
    """Open the spend comm when `shell` runs in a Jupyter kernel (else do nothing)."""
    global _link
    uninstall(shell)
    if getattr(shell, "kernel", None) is not None:
        _link = SpendComm(shell, session)


def uninstall(shell) -> None:
    """Close the spend comm, if one is open."""
    global _link
    link, _link = _link, None
    if link is not None:
        link.close()


def next_cell(shell, code: str, kind: str, cell_id: str | None) -> None:
    """Put `code` in the next cell, marked with the id of the cell that generated it."""
    if cell_id and getattr(shell, "kernel", None) is not None:
        shell.payload_manager.write_payload({
            "source": "set_next_input", "text": code, "replace": False,
            "mistral_magic": {"generated_by": cell_id, "kind": kind},
        })
    else:
        shell.set_next_input(code, replace=False)


class SpendComm:
    """The comm that sends one kernel's spend to the JupyterLab extension."""

    def __init__(self, shell, session):
        from comm import create_comm

        self.shell = shell
        self.session = session
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, Any]] = {}
        self._counted = 0
        self._last: dict | None = None
        self._last_at = 0.0
        self._timer: threading.Timer | None = None
        self._ticker: threading.Timer | None = None
        self._running = False
        self._closed = False
        self._recount()
        self._unsubscribe = session.ledger.subscribe(self._recorded)
        shell.events.register("pre_run_cell", self._cell_started)
        shell.events.register("post_run_cell", self._cell_ended)
        self._last = self.snapshot()
        self.comm = create_comm(target_name=TARGET, data=self._last)
        self.comm.on_msg(self._received)
        self.comm.on_close(lambda msg: self._stop())

    def snapshot(self) -> dict:
        """The spend message as it would be sent now."""
        ledger, budget = self.session.ledger, self.session.budget
        with self._lock:
            if self._counted != len(ledger):  # cleared, or records not seen: count again
                self._recount()
            models = [{"model": name, **totals} for name, totals in self._models.items()]
            running = self._running
        return {
            "type": "spend", "version": VERSION, "spent_usd": ledger.spent,
            "cost_known": all(m["cost_known"] for m in models),
            "calls": sum(m["calls"] for m in models), "budget_usd": budget.limit_usd,
            "held_usd": budget.reserved, "running": running, "models": models,
        }

    def _recount(self) -> None:
        self._models, self._counted = {}, 0
        for record in self.session.ledger.records:
            self._add(record)

    def _add(self, record) -> None:
        totals = self._models.setdefault(record.model, {
            "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0,
            "cost_known": True})
        totals["calls"] += 1
        totals["prompt_tokens"] += record.prompt_tokens or 0
        totals["completion_tokens"] += record.completion_tokens or 0
        if record.cost is None:
            # As the ledger's totals: a call that used nothing cost nothing, priced or not.
            totals["cost_known"] &= record.total_tokens == 0 and not record.pages
        else:
            totals["cost"] += record.cost
        self._counted += 1

    def _recorded(self, record) -> None:
        with self._lock:
            if self._counted == len(self.session.ledger) - 1:
                self._add(record)
            else:
                self._recount()
        self.changed()

    def _cell_started(self, info=None) -> None:
        with self._lock:
            self._running = True
        self.changed()
        self._tick()

    def _cell_ended(self, result=None) -> None:
        with self._lock:
            self._running = False
            ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
        self.changed()

    def _tick(self) -> None:
        """While a cell runs, look at what the budget holds every `TICK_S`."""
        with self._lock:
            if not self._running or self._closed:
                return
            self._ticker = _daemon_timer(TICK_S, self._tick)
        self.changed()

    def changed(self) -> None:
        """Send the spend now, or as soon as `MIN_INTERVAL_S` has passed since the last send."""
        with self._lock:
            if self._closed or self._timer is not None:
                return  # a send is already due, and will read the state then
            wait = self._last_at + MIN_INTERVAL_S - time.monotonic()
            if wait > 0:
                self._timer = _daemon_timer(wait, self._flush)
                return
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            self._last_at = time.monotonic()
        message = self.snapshot()
        with self._lock:
            if self._closed or message == self._last:
                return
            self._last = message
        self.comm.send(message)

    def _received(self, msg) -> None:
        data = msg.get("content", {}).get("data", {})
        if data.get("type") == "hello":
            with self._lock:
                self._last = None  # a front end that has nothing yet: send even if unchanged
            self.changed()

    def _stop(self) -> None:
        with self._lock:
            self._closed = True
            timers = (self._timer, self._ticker)
            self._timer = self._ticker = None
        for timer in timers:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        """Stop sending, unhook from the ledger and the shell, close the comm."""
        already = self._closed
        self._stop()
        self._unsubscribe()
        for event, callback in (("pre_run_cell", self._cell_started),
                                ("post_run_cell", self._cell_ended)):
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass  # already gone
        if not already:
            self.comm.close()


def _daemon_timer(seconds: float, callback) -> threading.Timer:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer
