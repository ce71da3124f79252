"""`%%mistral --dry-run`: the exact request a cell would send, its tokens and worst case; nothing
is sent."""

from __future__ import annotations

import json


def worst_case(session, request: dict, estimate) -> str:
    """The dry run's worst case: at the request's max_tokens, or, with none, at the model's limit."""
    from ..money.usage import format_cost, format_tokens

    if "max_tokens" in request:
        return (f"worst case with {format_tokens(estimate.max_completion_tokens)} answer tokens: "
                f"{format_cost(estimate.worst_cost)}")
    at = (f"{format_tokens(estimate.max_completion_tokens)} answer tokens cost "
          f"{format_cost(estimate.worst_cost)}")
    context = session.prices.context_length(request["model"])
    if not context or context <= estimate.prompt_tokens:
        return f"no max_tokens, so the answer may run to the model's limit; {at}"
    room = context - estimate.prompt_tokens
    limit = session.prices.cost(request["model"], estimate.prompt_tokens, room)
    return (f"no max_tokens, so the worst case is the model's limit ({format_tokens(room)} answer "
            f"tokens: {format_cost(limit)}); {at}")


def dry_run(magics, request: dict, output: str | None, filled, chat: str | None = None) -> None:
    """Show the request a cell would send, its tokens and worst case, and what was filled in;
    `-o VAR` gets the request. Nothing is sent and nothing changes (the budget's hold is only
    read)."""
    from IPython.display import display

    from ..calls.prompt_cache import keyed
    from ..core import preview_request
    from ..errors import BudgetExceeded
    from ..money.usage import format_cost, format_tokens
    from ..show import render

    session = magics.session
    # With a budget, the request sent carries the budget's max_tokens: show that one.
    # The reservation is taken only to read its cap and given back at once.
    refused = None
    try:
        reservation = session.reserve(request)
    except BudgetExceeded as exc:
        refused = str(exc)
    else:
        request = reservation.apply(request)
        reservation.release()
    request = keyed(session, request, chat)  # as the call path sends it
    estimate = session.estimate(request)
    spec = session.backend_spec()
    # Long messages are shown as head and tail; -o VAR still gets the whole request.
    body = json.dumps(preview_request(request), indent=2, ensure_ascii=False)
    summary = (f"Dry run — nothing sent. {format_tokens(estimate.prompt_tokens)} prompt "
               f"tokens ({format_cost(estimate.prompt_cost)}); {worst_case(session, request, estimate)}"
               f" · {spec.label}")
    if filled.names:
        summary += f" · filled in: {', '.join(filled.names)}"
    if filled.in_math:
        summary += f" · inside math, sent as written: {', '.join(filled.in_math)}"
    if filled.frames:
        summary += " · DataFrames: " + ", ".join(f.describe() for f in filled.frames)
    if refused:
        summary += f" · the budget would refuse it: {refused}"
    if filled.frames:  # the tables as the model reads them, not as JSON escapes them
        display(render.code(filled.text, "text", "The prompt as sent"), raw=True)
    display(render.code(body, "json", summary), raw=True)
    if output:
        magics.shell.user_ns[output] = request
    return None
