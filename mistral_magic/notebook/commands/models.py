"""`%mistral models`: the backend's models, the account's fine-tuned ones, and managing those.

    %mistral models                          # every model: context, what it can do, list prices
    %mistral models --mine                   # fine-tuned models: id, name, base, archived, ...
    %mistral models archive ft:mistral-small-2603:…
    %mistral models unarchive ft:mistral-small-2603:…
    %mistral models rename ft:mistral-small-2603:… Support tone v2

Fine-tuning jobs can no longer be created through the API (the spec and the SDK dropped
them); a fine-tuned model the account has works with ``-m`` and in row methods like any
model, priced by its base model unless the prices name its id. ``rename`` sets the model's
name (its id, what ``-m`` takes, stays). Each goes through the SDK (``client.models.archive``,
``unarchive``, ``update``); an id that is not one of the account's fine-tuned models is
refused in one line before anything is sent, when the backend's list can be read.
"""

from __future__ import annotations

from IPython.core.error import UsageError

from ...errors import ConfigError, guard
from . import Note, command

ACTIONS = ("archive", "unarchive", "rename")


@command(
    "models",
    (("action",), {"nargs": "?", "help": "archive, unarchive or rename a fine-tuned model"}),
    (("model_id",), {"nargs": "?", "help": "the fine-tuned model's id (ft:...)"}),
    (("name",), {"nargs": "*", "help": "with rename: the new name"}),
    (("--mine",), {"action": "store_true", "help": "only the account's fine-tuned models"}),
)
def models(ctx, args):
    from ...show import tables

    session = ctx.session
    if args.action is None:
        listing = session.backend.client.models.list()
        if args.mine:
            return tables.fine_tuned_frame(session, listing)
        return tables.models_frame(session, listing)
    action = _action(args)
    model_id = args.model_id
    _check_fine_tuned(session, model_id)
    client = session.backend.client
    hints = {404: f"no fine-tuned model {model_id} on this backend; %mistral models --mine lists "
                  "yours"}
    if action == "rename":
        name = " ".join(args.name).strip()
        guard(ctx.magics.debug, lambda: client.models.update(model_id=model_id, name=name), hints)
        return Note(f"Renamed {model_id} to {name!r}; its id, which -m takes, stays {model_id}.")
    call = client.models.archive if action == "archive" else client.models.unarchive
    done = guard(ctx.magics.debug, lambda: call(model_id=model_id), hints)
    if done.archived:
        return Note(f"Archived {model_id}; %mistral models --mine still lists it (archived), and "
                    f"%mistral models unarchive {model_id} brings it back.")
    return Note(f"Unarchived {model_id}.")


def _action(args) -> str:
    """The action asked for, checked with what it needs; a one-line `UsageError` otherwise."""
    import difflib

    if args.action not in ACTIONS:
        near = difflib.get_close_matches(args.action, ACTIONS, n=1)
        fix = f"did you mean %mistral models {near[0]}?" if near else (
            "use archive, unarchive or rename (or --mine to list the fine-tuned models)")
        raise UsageError(f"Unknown action {args.action!r} for %mistral models; {fix}")
    if args.mine:
        raise UsageError("%mistral models --mine lists the fine-tuned models; it takes no action")
    if not args.model_id:
        raise UsageError(f"%mistral models {args.action} needs a fine-tuned model's id, e.g. "
                         f"%mistral models {args.action} ft:...; %mistral models --mine lists them")
    if args.action == "rename" and not " ".join(args.name).strip():
        raise UsageError(f"%mistral models rename needs the new name: %mistral models rename "
                         f"{args.model_id} NEW NAME")
    if args.action != "rename" and args.name:
        raise UsageError(f"%mistral models {args.action} takes one model id, not "
                         f"{' '.join([args.model_id, *args.name])!r}")
    return args.action


def _check_fine_tuned(session, model_id: str) -> None:
    """Refuse (`ConfigError`) an id that the backend lists as a base model, or does not list
    among its fine-tuned ones; when the list cannot be read, the server's answer stands."""
    import difflib

    from ...calls.backend import retry_config

    try:
        cards = session.backend.client.models.list(retries=retry_config(0)).data or []
    except Exception:  # no list (a server without /v1/models): the request says what is wrong
        return
    mine = [card.id for card in cards if getattr(card, "type", None) == "fine-tuned"]
    if model_id in mine:
        return
    if any(model_id in (card.id, *(getattr(card, "aliases", None) or [])) for card in cards):
        raise ConfigError(f"{model_id} is a base model: only fine-tuned models (ft:...) can be "
                          "archived, unarchived or renamed; %mistral models --mine lists yours")
    near = difflib.get_close_matches(model_id, mine, n=1)
    fix = f"did you mean {near[0]}?" if near else "%mistral models --mine lists yours"
    raise ConfigError(f"No fine-tuned model {model_id} on this backend; {fix}")
