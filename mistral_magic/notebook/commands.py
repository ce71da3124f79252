"""`%mistral` commands: one method each, values not prints (`%mistral history|usage|...`)."""

from __future__ import annotations

import json

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..errors import ConfigError, guard


class Note(str):
    """A message that is a value: shown without quotes, as rendered Markdown in Jupyter."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from ..show.render import block

        return block(self)


def parse(parser: MagicArgumentParser, line: str):
    """Parse like a shell: quotes group words and are removed (IPython's own split keeps them).

    A misspelt option is refused in one line with the nearest real one
    ("unknown option --temprature; did you mean --temperature?").
    """
    import shlex

    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{parser.prog}: {exc} (check your quotes)") from None
    try:
        args, extra = parser.parse_known_args(argv)
    except UsageError:
        # An unknown option may be why (its value taken for a positional): say that instead.
        _refuse_unknown_option(parser, argv, failed=True)
        raise
    if extra:
        _refuse_unknown_option(parser, extra)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _refuse_unknown_option(parser: MagicArgumentParser, words: list[str],
                           failed: bool = False) -> None:
    """Raise a one-line `UsageError` for the first word that is an option `parser` lacks
    (when argparse `failed`, also a long option written with one dash: -temperature)."""
    import difflib

    # argparse keeps its options in a private table; `add_argument` is the only public way in.
    options = sorted(parser._option_string_actions)
    for word in words:
        if word == "--":
            return
        name = word.split("=", 1)[0]
        if not name.startswith("-") or name == "-" or " " in word or _is_number(word):
            continue
        if name.startswith("--") and any(option.startswith(name) for option in options):
            continue  # the option itself, or an abbreviation argparse accepts
        # Compared without the dashes, which every option shares.
        near = difflib.get_close_matches(name.lstrip("-"), [o[2:] for o in options
                                                            if o.startswith("--")], n=1)
        if not name.startswith("--") and name[:2] in options:
            if not (failed and near and name[1:].isalpha()):
                continue  # a short option with its value attached: -t0.2
        where = f" for {parser.prog}" if parser.prog.startswith("%") else ""
        if near:
            raise UsageError(f"unknown option {name}{where}; did you mean --{near[0]}?")
        known = ", ".join(o for o in options if o.startswith("--") and o != "--help")
        raise UsageError(f"unknown option {name}{where}; "
                         + (f"its options: {known}" if where else "%%mistral? lists the options"))


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


class Commands:
    """The `%mistral` commands of one `MistralMagics`; `run(line)` dispatches a command line."""

    def __init__(self, magics):
        self.magics = magics
        self.session = magics.session
        self.parsers = _command_parsers()

    def run(self, line: str):
        """Run one `%mistral` command line (already expanded); its result is the value shown."""
        words = line.strip().split(None, 1)
        if not words:
            raise UsageError(
                "%mistral needs a command: " + ", ".join(sorted(self.parsers))
                + " (a prompt goes in a %%mistral cell)"
            )
        name, rest = words[0], (words[1] if len(words) > 1 else "")
        if name not in self.parsers:
            import difflib

            near = difflib.get_close_matches(name, self.parsers, n=1)
            if near:
                raise UsageError(f"Unknown command {name!r}; did you mean %mistral {near[0]}?")
            raise UsageError(
                f"Unknown command {name!r}; use one of: {', '.join(sorted(self.parsers))}"
                " (a prompt goes in a %%mistral cell)"
            )
        parser = self.parsers[name]
        if parser is None:  # takes raw text
            args = rest
        else:
            args = parse(parser, rest)
            if "chat" in args and args.chat is None:
                args.chat = self.magics.chat
        return guard(self.magics.debug, lambda: getattr(self, f"cmd_{name}")(args))

    def cmd_history(self, args):
        from ..show import tables

        return tables.history_frame(self.session, args.chat)

    def cmd_chats(self, args):
        from ..show import tables

        return tables.chats_frame(self.session)

    def cmd_reset(self, args):
        if args.all:
            self.session.chats.clear()
            return Note("All chats cleared.")
        chat = self.session.chats.get(args.chat)
        count = len(chat)
        chat.reset()
        return Note(f"Chat `{args.chat}` reset ({count} turn{'' if count == 1 else 's'} removed).")

    def cmd_undo(self, args):
        chat = self.session.chats.get(args.chat)
        turn = chat.undo()
        if turn is None:
            return Note(f"Chat `{args.chat}` has no turns to undo.")
        preview = " ".join(turn.prompt.split())[:60]
        return Note(f"Removed the last turn of chat `{args.chat}`: “{preview}”.")

    def cmd_usage(self, args):
        from ..show import tables

        if args.all:
            return tables.usage_all_frame(self.session)
        return tables.usage_frame(self.session)

    def cmd_cache(self, args):
        """`%mistral cache [clear | export FILE [--all] | import FILE]`."""
        responses = self.session.responses
        if args.action is None:
            from ..show import tables

            return tables.cache_info(responses)
        if args.action == "clear":
            cleared = responses.clear()
            return Note(f"Cache cleared: {cleared:,} answer{'' if cleared == 1 else 's'} and every "
                        f"finished row forgotten in `{responses.store.path}` (the ledger stays).")
        if not args.file:
            raise UsageError(f"%mistral cache {args.action} needs a file, e.g. "
                             f"%mistral cache {args.action} answers.sqlite")
        if args.action == "import":
            added = responses.store.import_from(args.file)
            return Note(f"Imported {added:,} answer{'' if added == 1 else 's'} from `{args.file}` "
                        f"into `{responses.store.path}` (answers already there were kept); the "
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

    def cmd_models(self, args):
        from ..show import tables

        return tables.models_frame(self.session, self.session.backend.client.models.list())

    def cmd_config(self, args):
        from ..show import tables

        return tables.config_frame(self.magics)

    def cmd_backend(self, args):
        session = self.session
        spec = session.backend_spec()
        if spec.kind == "offline":
            backend = session.backend
            return Note(f"Backend: {spec.label}, at {backend.url}.")
        return Note(f"Backend: {spec.label}.")

    def cmd_key(self, args):
        if args.clear:
            self.session.set_key(None)
            return Note(f"Key cleared from memory. Backend: {self.session.backend_spec().label}.")
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
        self.session.set_key(key)
        return Note(f"Key set for this session. Backend: {self.session.backend_spec().label}.")

    def cmd_tokens(self, text: str):
        from ..money.tokens import count_text

        if not text.strip():
            raise UsageError("%mistral tokens needs text, e.g. %mistral tokens How long is this?")
        return count_text(text)

    def cmd_meter(self, args):
        from .. import widgets

        widgets.show_meter(self.session)

    def cmd_panel(self, args):
        from .. import widgets

        widgets.show_panel(self.magics)

    def cmd_chat(self, args):
        from .. import widgets

        widgets.show_chat(self.session, args.name or self.magics.chat)

    def cmd_batch(self, args):
        from ..rows import batch

        if args.action == "list":
            from ..rows.batch import Jobs

            return batch.jobs_frame(self.session.backend.client, Jobs(self.session).ids())
        if not args.job_id:
            raise UsageError(f"%mistral batch {args.action} needs a job id, e.g. %mistral batch {args.action} JOB_ID")
        job_id = args.job_id
        hints = {
            404: f"no batch job {job_id} on this backend; list jobs with %mistral batch list",
            422: f"{job_id!r} is not a batch job id (a UUID); list jobs with %mistral batch list",
        }
        if args.action == "status":
            return guard(self.magics.debug, lambda: batch.status(self.session.backend.client, job_id), hints)
        status = guard(self.magics.debug, lambda: batch.cancel(self.session.backend.client, job_id), hints)
        return Note(f"Batch job {job_id}: {status}.")

    def cmd_fix(self, args):
        from . import fix

        said = fix.run(self.magics, args.model)
        return None if said is None else Note(said)

    def cmd_moderate(self, text: str):
        from ..rows.engine import RowEngine
        from ..rows.labels import moderation_table

        if not text.strip():
            raise UsageError("%mistral moderate needs text, e.g. %mistral moderate You are an idiot")
        return moderation_table(RowEngine(self.session, progress=False), text)

    def cmd_ocr(self, args):
        from IPython.display import display

        from ..inputs.chunks import value_of
        from ..rows import ocr
        from ..show import render

        if args.schema and args.tables:
            raise UsageError("%mistral ocr takes --schema or --tables, not both")
        user_ns = self.magics.shell.user_ns
        result = ocr.read(self.session, value_of(args.source, user_ns), args.source,
                          pages=args.pages, schema=args.schema, model=args.model)
        value: object = result
        if args.schema:
            value = ocr.annotation_frame(result, args.schema, self.session)
            display(render.frame(value, result.footer), raw=True)
        elif args.tables:
            value = result.tables()
            for table in value:
                display(render.frame(table), raw=True)
            display(render.note(f"{len(value)} table{'' if len(value) == 1 else 's'} in "
                                f"{result.name} · {result.footer}"), raw=True)
        else:
            display(result)
        if args.output:
            user_ns[args.output] = value

    def cmd_schema(self, args):
        from ..structured.schema import SchemaSpec

        spec = SchemaSpec.from_spec(args.spec, self.magics.shell.user_ns)
        from ..show.render import fence

        body = json.dumps(spec.response_format(many=args.many), indent=2)
        return Note(fence(body, "json"))



def _command_parsers() -> dict[str, MagicArgumentParser | None]:
    def parser(name: str, *arguments) -> MagicArgumentParser:
        p = MagicArgumentParser(prog=f"%mistral {name}")
        for args, kwargs in arguments:
            p.add_argument(*args, **kwargs)
        return p

    chat = (("-c", "--chat"), {"default": None, "help": "chat name (default: MistralMagics.chat)"})
    return {
        "history": parser("history", chat),
        "chats": parser("chats"),
        "reset": parser("reset", chat, (("--all",), {"action": "store_true"})),
        "undo": parser("undo", chat),
        "usage": parser("usage", (("--all",), {"action": "store_true",
                                               "help": "every kernel's calls in this folder"})),
        "models": parser("models"),
        "config": parser("config"),
        "backend": parser("backend"),
        "key": parser("key", (("--clear",), {"action": "store_true"})),
        "tokens": None,
        "meter": parser("meter"),
        "panel": parser("panel"),
        "chat": parser("chat", (("name",), {"nargs": "?", "help": "chat name"})),
        "batch": parser(
            "batch", (("action",), {"choices": ["list", "status", "cancel"]}),
            (("job_id",), {"nargs": "?"}),
        ),
        "schema": parser("schema", (("spec",), {}), (("--many",), {"action": "store_true"})),
        "cache": parser(
            "cache", (("action",), {"nargs": "?", "choices": ["clear", "export", "import"]}),
            (("file",), {"nargs": "?"}),
            (("--all",), {"action": "store_true", "help": "export every answer, not this notebook's"}),
        ),
        "fix": parser("fix", (("-m", "--model"), {"default": None,
                                                   "help": "model (default: MistralMagics.model)"})),
        "moderate": None,
        "ocr": parser(
            "ocr", (("source",), {"help": "a path, an http(s) URL, or a name holding bytes or a path"}),
            (("--pages",), {"default": None, "help": "pages from 0, e.g. 0-2 or 0,3,5-7 (under a "
                                                     "budget, needed for a DOCX, text file or URL)"}),
            (("--schema",), {"default": None, "help": "fields to read into a typed one-row DataFrame"}),
            (("--tables",), {"action": "store_true", "help": "the pages' tables as DataFrames"}),
            (("-o", "--output"), {"default": None, "help": "keep the result in this variable"}),
            (("-m", "--model"), {"default": None, "help": "OCR model (default: mistral-ocr-latest)"}),
        ),
    }
