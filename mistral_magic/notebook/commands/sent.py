"""`%mistral sent [--columns]`: what left this kernel, one row per call sent (`calls.sent`).

Each row: when, the kind of call, model, status, the host and region it went to, the
characters and prompt tokens of its text, the DataFrames, columns and row labels whose
values were in it, and its pictures and documents (names, bytes). ``--columns`` sums it
up per DataFrame column: how many calls carried it, how many rows, in what form and to
which hosts. A call answered from the cache sent nothing and has no row.
"""

from __future__ import annotations

from . import command


@command("sent", (("--columns",), {"action": "store_true",
                                     "help": "one row per DataFrame column that left"}))
def sent(ctx, args):
    """`%mistral sent [--columns]`."""
    log = ctx.session.sent
    return log.by_column() if args.columns else log.to_frame()
