"""`%mistral usage|config|backend|key|tokens|meter|panel|schema`: what the session holds and costs, its settings and views."""

from __future__ import annotations

import json

from IPython.core.error import UsageError

from ...errors import ConfigError
from . import Note, command


@command("usage", (("--all",), {"action": "store_true",
                                               "help": "every kernel's calls in this folder"}))
def usage(ctx, args):
    from ...show import tables

    if args.all:
        return tables.usage_all_frame(ctx.session)
    return tables.usage_frame(ctx.session)


@command("config")
def config(ctx, args):
    from ...show import tables

    return tables.config_frame(ctx.magics)


@command("backend")
def backend(ctx, args):
    session = ctx.session
    spec = session.backend_spec()
    if spec.kind == "offline":
        backend = session.backend
        return Note(f"Backend: {spec.label}, at {backend.url}.")
    return Note(f"Backend: {spec.label}.")


@command("key", (("--clear",), {"action": "store_true"}))
def key(ctx, args):
    if args.clear:
        ctx.session.set_key(None)
        return Note(f"Key cleared from memory. Backend: {ctx.session.backend_spec().label}.")
    import getpass

    from IPython.core.error import StdinNotImplementedError

    try:
        key = getpass.getpass("Mistral API key (kept in memory only, never saved): ")
    except StdinNotImplementedError:
        raise ConfigError(
            "%mistral key needs a front end that can ask for input, and this one cannot "
            "(a headless run); set MISTRAL_API_KEY in the environment or in a .env file instead"
        ) from None
    if not key.strip():
        return Note("No key entered; nothing changed.")
    ctx.session.set_key(key)
    return Note(f"Key set for this session. Backend: {ctx.session.backend_spec().label}.")


@command("tokens", raw=True)
def tokens(ctx, text: str):
    from ...money.tokens import count_text

    if not text.strip():
        raise UsageError("%mistral tokens needs text, e.g. %mistral tokens How long is this?")
    return count_text(text)


@command("meter")
def meter(ctx, args):
    from ... import widgets

    widgets.show_meter(ctx.session)


@command("panel")
def panel(ctx, args):
    from ... import widgets

    widgets.show_panel(ctx.magics)


@command("schema", (("spec",), {}), (("--many",), {"action": "store_true"}))
def schema(ctx, args):
    from ...structured.schema import SchemaSpec

    spec = SchemaSpec.from_spec(args.spec, ctx.magics.shell.user_ns)
    from ...show.render import fence

    body = json.dumps(spec.response_format(many=args.many), indent=2)
    return Note(fence(body, "json"))
