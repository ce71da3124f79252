"""Tools priced per use under a budget: Mistral's built-in tools, and a library's document processing.

A conversation's built-in tools (``web_search``, ``code_interpreter``, ...) and each
document a library processes cost per use (`money.prices.PriceTable.use_price`), and
Mistral publishes no such price today: their cost is unknown, shown as unknown, never $0.
The server decides how many times a tool runs, so nothing on the wire bounds it either.

With ``MistralMagics.budget_usd`` set, `require` therefore refuses work that may use an
unpriced tool, in one line naming the tool and the three ways on: allow it explicitly
(``--allow-unpriced``, ``%config MistralMagics.allow_unpriced = True``, or
``allow_unpriced=True`` for ``df.mistral.to_library``), give it a price
(``MistralMagics.prices = {"web_search": {"per_call": 0.01}}``), or lift the budget.
Allowed, the tool's uses are recorded in the ledger at an unknown cost: the budget keeps
its promise for the model's tokens, not for the tool. A tool with a price is held at
`HELD_USES` uses per call (`hold`); a call that used more is recorded as it was, and said
in the log, as any call that costs more than its hold.
"""

from __future__ import annotations

from ..errors import BudgetExceeded
from ..money.usage import format_cost

#: uses a priced tool is held for, per call (the server decides how many it makes)
HELD_USES = 4


def unpriced(prices, names: list[str]) -> list[str]:
    """The names among `names` that have no price."""
    return [name for name in dict.fromkeys(names) if prices.use_price(name) is None]


def require(session, names: list[str], *, allowed: bool, what: str = "this cell") -> None:
    """Refuse (`BudgetExceeded`) `what`, which may use the tools `names`, when a budget is set,
    one of them has no price and unpriced tools were not allowed."""
    limit = session.budget.limit_usd
    missing = unpriced(session.prices, names)
    if limit is None or not missing or allowed:
        return
    listed = ", ".join(missing)
    raise BudgetExceeded(
        f"Refused: {what} may use {listed}, which Mistral prices per use without publishing the "
        f"price, so the {format_cost(limit)} budget cannot count it; allow it with --allow-unpriced "
        "(or %config MistralMagics.allow_unpriced = True), give it a price with %config "
        f'MistralMagics.prices = {{"{missing[0]}": {{"per_call": <USD>}}}}, or set '
        "MistralMagics.budget_usd = None")


def hold(session, names: list[str]):
    """Hold `HELD_USES` uses of each priced tool in `names` against the budget (a
    `budget.Reservation`, released by the caller); unpriced tools are held at nothing."""
    prices = session.prices
    worst = sum(prices.use_price(n) * HELD_USES for n in dict.fromkeys(names)
                if prices.use_price(n) is not None)
    return session.budget.reserve_total(worst, "its built-in tools", model=", ".join(names),
                                        running=True, fix="allow fewer tools")


def reserve(session, service: str, count: int, what: str):
    """Hold `count` uses of a service priced per use (nothing when its price is unknown: `require`
    said no to that under a budget, or it was allowed); a `budget.Reservation`."""
    cost = session.prices.use_cost(service, count)
    return session.budget.reserve_total(cost or 0.0, what, model=service, running=True,
                                        fix="add fewer documents")


async def reserve_async(session, service: str, count: int, what: str):
    """`reserve` on the background loop (rows of a row job)."""
    cost = session.prices.use_cost(service, count)
    return await session.budget.reserve_total_async(cost or 0.0, what, model=service,
                                                    fix="add fewer documents")
