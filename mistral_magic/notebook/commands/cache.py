"""`%mistral cache [clear | export FILE [--all] | import FILE]`: the response cache."""

from __future__ import annotations

from IPython.core.error import UsageError

from . import Note, command


@command("cache", (("action",), {"nargs": "?", "choices": ["clear", "export", "import"]}), (("file",), {"nargs": "?"}), (("--all",), {"action": "store_true", "help": "export every answer, not this notebook's"}))
def cache(ctx, args):
    """`%mistral cache [clear | export FILE [--all] | import FILE]`."""
    from ...show import tables

    responses = ctx.session.responses
    if args.action is None:
        return tables.cache_info(responses)
    where = tables.shown_path(responses.store.path)
    if args.action == "clear":
        cleared = responses.clear()
        return Note(f"Cache cleared: {cleared:,} answer{'' if cleared == 1 else 's'} and every "
                    f"finished row forgotten in `{where}` (the ledger stays).")
    if not args.file:
        raise UsageError(f"%mistral cache {args.action} needs a file, e.g. "
                         f"%mistral cache {args.action} answers.sqlite")
    if args.action == "import":
        added = responses.store.import_from(args.file)
        return Note(f"Imported {added:,} answer{'' if added == 1 else 's'} from `{args.file}` "
                    f"into `{where}` (answers already there were kept); the "
                    "tool calls they replay ask before they run.")
    keys = None if args.all else responses.export_keys()
    if keys == []:
        return Note("Nothing to export: this notebook has used no stored answer yet; run its "
                    "cells first, or export every answer with --all.")
    written = responses.store.export(args.file, keys=keys, notebook=None)
    return Note(
        f"Exported {written:,} answer{'' if written == 1 else 's'} to `{args.file}`. To replay "
        f"them with no key: `%config MistralMagics.cache_path = {str(args.file)!r}` and "
        "`%config MistralMagics.cache = 'replay'`."
    )
