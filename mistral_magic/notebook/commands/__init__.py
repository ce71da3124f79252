"""`%mistral` commands: one function each, values not prints (`%mistral history|usage|...`).

A command is a function of this folder registered with `command`::

    @command("tokens", raw=True)                      # gets the rest of the line as text
    def tokens(ctx, text): ...

    @command("history", CHAT)                         # gets parsed arguments
    def history(ctx, args): ...

`ctx` is the `Commands` of one ``MistralMagics`` (``ctx.magics``, ``ctx.session``); each
argument is ``((flags...), {add_argument options})``. The modules here group commands by
what they act on; every module of this folder is loaded before the first command runs, so a
new one needs no other edit. Errors become one line in `errors.guard`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ...errors import guard

#: the chat option most commands share
CHAT = (("-c", "--chat"), {"default": None, "help": "chat name (default: MistralMagics.chat)"})


class Note(str):
    """A message that is a value: shown without quotes, as rendered Markdown in Jupyter."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from ...show.render import block

        return block(self)


@dataclass
class Command:
    """One `%mistral NAME` command: its function and its arguments (None: raw text)."""

    name: str
    run: Callable[[Any, Any], Any]
    arguments: tuple | None

    def parser(self) -> MagicArgumentParser | None:
        if self.arguments is None:
            return None
        parser = MagicArgumentParser(prog=f"%mistral {self.name}")
        for flags, options in self.arguments:
            parser.add_argument(*flags, **options)
        return parser


COMMANDS: dict[str, Command] = {}


def command(name: str, *arguments: tuple, raw: bool = False):
    """Register the decorated function as ``%mistral NAME`` (see the module's doc)."""

    def register(func):
        if name in COMMANDS:
            raise ValueError(f"%mistral {name} is registered twice")
        COMMANDS[name] = Command(name, func, None if raw else arguments)
        return func

    return register


def load_all() -> dict[str, Command]:
    """Every command, its module imported on first need."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return COMMANDS


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
        self._parsers: dict[str, MagicArgumentParser | None] = {}

    def parser(self, name: str) -> MagicArgumentParser | None:
        if name not in self._parsers:
            self._parsers[name] = COMMANDS[name].parser()
        return self._parsers[name]

    def run(self, line: str):
        """Run one `%mistral` command line (already expanded); its result is the value shown."""
        names = sorted(load_all())
        words = line.strip().split(None, 1)
        if not words:
            raise UsageError(
                "%mistral needs a command: " + ", ".join(names) + " (a prompt goes in a %%mistral cell)"
            )
        name, rest = words[0], (words[1] if len(words) > 1 else "")
        if name not in COMMANDS:
            import difflib

            near = difflib.get_close_matches(name, names, n=1)
            if near:
                raise UsageError(f"Unknown command {name!r}; did you mean %mistral {near[0]}?")
            raise UsageError(
                f"Unknown command {name!r}; use one of: {', '.join(names)}"
                " (a prompt goes in a %%mistral cell)"
            )
        parser = self.parser(name)
        if parser is None:  # takes raw text
            args = rest
        else:
            args = parse(parser, rest)
            if "chat" in args and args.chat is None:
                args.chat = self.magics.chat
        return guard(self.magics.debug, lambda: COMMANDS[name].run(self, args))
