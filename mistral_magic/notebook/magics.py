"""`%%mistral` and `%mistral`: settings (traits) and the cell magic's arguments; the manual is `manual.MANUAL`.

Each `%mistral` command is a function registered in `commands`; errors become one line in
`errors.guard`.
"""

from __future__ import annotations

import builtins
import keyword

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from IPython.core.magic_arguments import (
    argument,
    magic_arguments,
)
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, Unicode, observe

from ..errors import Interrupted, guard
from . import manual
from .commands import Commands, parse
from .dryrun import dry_run
from .manual import MANUAL

FORMATS = ("markdown", "text", "code")


class SecretUnicode(Unicode):
    """A text setting holding a key: its value's repr is masked (`%config MistralMagics`)."""

    def validate(self, obj, value):
        from ..show.masked import Secret

        value = super().validate(obj, value)
        return Secret(value) if value else None


def _with_doc(doc: str):
    """Give a function its docstring before magic_arguments appends the usage to it."""

    def apply(func):
        func.__doc__ = doc
        return func

    return apply


def _converted(text: str, convert, what: str):
    import argparse

    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _positive_int(text: str) -> int:
    import argparse

    value = _converted(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _temperature(text: str) -> float:
    import argparse

    value = _converted(text, float, "a number")
    if not 0 <= value <= 1.5:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 to 1.5")
    return value


def _identifier(text: str) -> str:
    import argparse

    if not text.isidentifier() or keyword.iskeyword(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid Python variable name")
    if text.startswith("_"):
        raise argparse.ArgumentTypeError(
            f"{text!r} starts with _, which IPython uses for its own names (_, __, _1, __builtins__); "
            "choose a name like answer"
        )
    if hasattr(builtins, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} would hide Python's built-in {text}; choose a name like answer"
        )
    return text


@magics_class
class MistralMagics(Magics):
    """Settings of the extension; `%config MistralMagics.<name> = value` changes them."""

    model = Unicode("mistral-small-latest", help="Model used when a cell gives no -m.").tag(
        config=True
    )
    temperature = Float(
        None, allow_none=True, help="Sampling temperature (0 to 1.5); None uses the model's default."
    ).tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Cap on answer tokens; None = no cap.").tag(
        config=True
    )
    backend = CaselessStrEnum(
        ["auto", "mistral", "offline"], default_value="auto",
        help="auto: La Plateforme when a key is set, else the offline server.",
    ).tag(config=True)
    server = CaselessStrEnum(
        ["global", "eu", "us"], default_value="global", help="La Plateforme region."
    ).tag(config=True)
    server_url = Unicode(
        None, allow_none=True, help="A self-hosted server speaking Mistral's API (e.g. vLLM)."
    ).tag(config=True)
    server_key = SecretUnicode(
        None, allow_none=True,
        help="Key sent to server_url (else MISTRAL_SERVER_KEY); the La Plateforme key goes "
        "only to Mistral's hosts.",
    ).tag(config=True)
    budget_usd = Float(
        None, allow_none=True,
        help="A hard cap on spend (USD): calls reserve their worst case, are capped, or refused.",
    ).tag(config=True)
    max_retries = Int(3, help="Retries on 429, 5xx and connection errors (Retry-After honoured).").tag(
        config=True
    )
    reasks = Int(
        1, help="Times a --json/--schema answer or an extraction row that does not parse is "
        "asked again, with what was wrong (0: never).",
    ).tag(config=True)
    timeout_s = Float(120.0, help="Seconds before a request times out.").tag(config=True)
    stream = Bool(True, help="Stream answers into the cell.").tag(config=True)
    debug = Bool(False, help="Re-raise errors with their full traceback.").tag(config=True)
    chat = Unicode("default", help="Chat used when a cell or command gives no -c.").tag(config=True)
    prices = Dict(
        help='Price overrides, USD per 1M tokens: {"model": {"input": 0.5, "output": 1.5}}.'
    ).tag(config=True)
    cache = CaselessStrEnum(
        ["on", "off", "replay"], default_value="on",
        help='Response cache. "on": a cell not yet run in this kernel whose exact request was '
        'answered before gets the stored answer at $0 (a re-run or --refresh asks again); '
        '"replay": never send, a cell with no stored answer is an error (no key needed); '
        '"off": the store is neither read nor written.',
    ).tag(config=True)
    tools = List(
        Unicode(), help="Tools every cell may call (names of notebook functions, or of lists or "
        "dicts of them), as if given with --tools.",
    ).tag(config=True)
    think = CaselessStrEnum(
        ["none", "low", "medium", "high"], default_value=None, allow_none=True,
        help="Reasoning effort of every cell and the chat panel, as --think; None leaves the "
        "model's default. A model that does not take the effort refuses it in one line.",
    ).tag(config=True)
    allow_unpriced = Bool(
        False, help="With budget_usd set, let cells use Mistral's built-in tools and libraries, "
        "priced per use with no published price (their cost is recorded as unknown and not "
        "held), as --allow-unpriced does for one cell.",
    ).tag(config=True)
    prompt_cache = Bool(
        True, help="Send each chat's prompt_cache_key (a hash of the folder, the notebook's name "
        "and the chat's name; never the key), so the history a cell resends is billed at 10 %.",
    ).tag(config=True)
    cache_path = Unicode(
        None, allow_none=True,
        help="The store (answers, finished rows, ledger): a file or a folder; None is "
        ".mistral_magic/store.sqlite in the working directory. Point it at an exported "
        "answers file to replay it.",
    ).tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        from ..core import Session

        self.session = Session(shell, self)
        self._commands = Commands(self)

    @observe("temperature")
    def _check_temperature(self, change):
        value = change["new"]
        if value is not None and not 0 <= value <= 1.5:
            self.temperature = change["old"]
            raise UsageError(f"temperature must be between 0 and 1.5, got {value}")

    @observe("reasks")
    def _check_reasks(self, change):
        if change["new"] < 0:
            self.reasks = change["old"]
            raise UsageError(f"reasks must be 0 or more, got {change['new']}; e.g. "
                             "%config MistralMagics.reasks = 2")

    # -- the magic -------------------------------------------------------------------

    # The cell's own {name} interpolation (prompt.py) happens later, so IPython must not
    # expand the %%mistral line; %mistral commands are expanded here, as IPython would.
    @no_var_expand
    @needs_local_scope
    @magic_arguments()
    @argument("-m", "--model", help="Model id or alias (default: MistralMagics.model).")
    @argument("-t", "--temperature", type=_temperature, help="Sampling temperature, 0 to 1.5.")
    @argument("--max-tokens", type=_positive_int, help="Cap on the answer's tokens.")
    @argument("--seed", type=_positive_int, help="Random seed, for reproducible answers.")
    @argument("-s", "--system", help="System prompt of the chat (kept for its later turns).")
    @argument("-c", "--chat", help="Name of the conversation (default: MistralMagics.chat).")
    @argument("--new", action="store_true", help="Start the chat afresh before this cell.")
    @argument("--no-history", action="store_true", help="Send only this cell; not kept in the chat.")
    @argument("-o", "--output", type=_identifier, metavar="VAR", help="Store the result in VAR.")
    @argument("--no-stream", action="store_true", help="Wait for the whole answer, then show it.")
    @argument("--format", choices=FORMATS, default="markdown",
              help="markdown (default), text, or code (also inserted as the next cell).")
    @argument("--json", action="store_true", help="JSON mode: the answer is parsed (DataFrame or dict).")
    @argument("--schema", metavar="SPEC",
              help='Structured output: a pydantic model, a JSON Schema dict, or "name, age int, ...".')
    @argument("--many", action="store_true", help="With --schema: a list of records, one row each.")
    @argument("--dry-run", action="store_true", help="Show the request and its estimate; send nothing.")
    @argument("--refresh", action="store_true",
              help="Send even if the answer is in the cache, and replace it there.")
    @argument("--no-interpolate", action="store_true", help="Send {braces} as they are.")
    @argument("--fim", action="store_true",
              help="Fill the cell's one <FILL> with Codestral; the completed code is the next cell.")
    @argument("--image", action="append", metavar="X",
              help="A picture to send (repeatable): a name holding a Figure, Axes, PIL image, "
              "array, bytes or IPython Image; plt (the current figure); a path; an http(s) URL.")
    @argument("--file", action="append", metavar="F",
              help="A document to send (repeatable): a PDF, DOCX, PPTX or text file, uploaded "
              "once and sent by signed URL.")
    @argument("--audio", action="append", metavar="X",
              help="A recording to send (repeatable) to a model that listens: a path, an http(s) "
              "URL, or a name holding bytes or an IPython Audio.")
    @argument("--speak", nargs="?", const="default", metavar="VOICE",
              help="Read the answer aloud (a player under it); a voice's id or slug.")
    @argument("--tools", metavar="NAMES",
              help="Notebook functions the model may call, and Mistral's built-in tools: f,web_search.")
    @argument("--tool-choice", metavar="C", help="auto, any, none or a tool's name.")
    @argument("--max-steps", type=_positive_int, help="Most model calls of a --tools cell (default 5).")
    @argument("--approve", action="store_true", help="Ask before each tool call runs.")
    @argument("--think", nargs="?", const="high", choices=("none", "low", "medium", "high"),
              help="Reasoning effort (--think alone: high).")
    @argument("--keep-thinking", action="store_true", help="Keep the reasoning in the history.")
    @argument("--library", action="append", metavar="NAME",
              help="Ground the answer in a document library, with citations (repeatable).")
    @argument("--agent", metavar="NAME[@V]", help="Ask an agent, at a version or alias.")
    @argument("--allow-unpriced", action="store_true",
              help="Under a budget, allow built-in tools that have no published price.")
    @line_cell_magic
    @_with_doc(MANUAL)
    def mistral(self, line: str = "", cell: str | None = None, local_ns: dict | None = None):
        if cell is None:
            return self._commands.run(self._expand(line, local_ns))
        args = parse(self.mistral.parser, line)
        if not cell.strip():
            raise UsageError("%%mistral needs a prompt in the cell body, below the %%mistral line")
        if args.fim and (args.image or args.file or args.audio):
            raise UsageError("--image, --file and --audio go with a chat cell, not --fim")
        if args.speak and (args.json or args.schema is not None or args.fim):
            raise UsageError("--speak reads a text answer aloud; it does not go with --json, "
                             "--schema or --fim")
        if args.fim:
            from . import fim

            return guard(self.debug, lambda: fim.run(self, args, cell))
        if args.many and args.schema is None:
            raise UsageError("--many goes with --schema SPEC, e.g. --schema 'name, age int' --many")
        if args.json and args.schema is not None:
            raise UsageError("use either --json or --schema, not both")
        if args.refresh and self.cache == "replay":
            raise UsageError("--refresh sends the request again, which MistralMagics.cache = "
                             "'replay' never does; %config MistralMagics.cache = 'on' first")
        if args.output in self.shell.user_ns_hidden:
            raise UsageError(
                f"-o {args.output} would replace IPython's own {args.output}; choose a name like answer"
            )
        return guard(self.debug, lambda: self._ask(args, cell))

    # The help (`%%mistral?`) is the plain manual, usage first; magic_arguments made it RST.
    mistral.__doc__ = manual.text(mistral.parser)

    def _expand(self, line: str, local_ns: dict | None) -> str:
        """`$name` and `{name}` in a command line, expanded as IPython does for line magics."""
        from IPython.utils.text import DollarFormatter

        namespace = dict(self.shell.user_ns)
        namespace.update(local_ns or {})
        try:
            return DollarFormatter().vformat(line, args=[], kwargs=namespace)
        except Exception:  # IPython's rule (InteractiveShell.var_expand): text it cannot fill stays
            return line

    def _ask(self, args, cell: str):
        from ..inputs.prompt import Filled, fill
        from . import research

        if research.wanted(args, self.tools):  # built-in tools, --library, --agent
            return research.ask(self, args, cell)
        if args.allow_unpriced:
            raise UsageError("--allow-unpriced goes with built-in tools (--tools web_search, ...), "
                             "--library or --agent")
        session = self.session
        session.capabilities.check(args.model or self.model,
                                   setting=None if args.model else "MistralMagics.model")
        args.chat = args.chat or self.chat
        prompt = cell.strip("\n")
        filled = Filled(prompt) if args.no_interpolate else fill(prompt, self.shell.user_ns)
        prompt = filled.text
        spec = None
        response_format = None
        if args.schema is not None:
            from ..structured.schema import SchemaSpec

            spec = SchemaSpec.from_spec(args.schema, self.shell.user_ns)
            response_format = spec.response_format(many=args.many)
        elif args.json:
            response_format = {"type": "json_object"}
        from ..tools.loop import from_arguments

        toolbox, choice = from_arguments(args, self.tools, self.shell.user_ns)
        cell_id = None if args.no_history else session.cell_id
        inputs = None
        if args.image or args.file or args.audio:
            from ..inputs.chunks import gather

            inputs = gather(session, args.image, args.file, self.shell.user_ns,
                            args.model or self.model, check=not args.dry_run, audio=args.audio)
        # Built without touching the chat, so that a dry run changes nothing.
        request = session.build_request(
            prompt, chat=args.chat, model=args.model, system=args.system,
            temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
            history=not args.no_history, new=args.new, response_format=response_format,
            cell_id=cell_id, images=inputs.chunks() if inputs else None, think=args.think,
            tools=toolbox.definitions() if toolbox else None, tool_choice=choice,
        )
        if inputs:
            inputs.show()
        if args.dry_run:
            return dry_run(self, request, args.output, filled,
                                 None if args.no_history else args.chat)
        from ..calls.sent import origin

        try:
            with origin(filled.frames, [p.name for p in inputs.pictures] if inputs else ()):
                return self._send(args, request, spec, cell_id, toolbox, filled.names)
        finally:
            # Answered (or tried): running this cell again in this kernel asks again.
            session.responses.ran(session.cell_id)

    def _send(self, args, request: dict, spec, cell_id: str | None, toolbox=None,
              interpolated: tuple[str, ...] = ()):
        """Send a cell's request (or answer it from the cache), render it, fill -o VAR."""
        from ..show.display import StreamView

        session = self.session
        reuse = "replay" if args.refresh else "cell"
        if not args.no_history:
            session.apply_chat_settings(args.chat, system=args.system, new=args.new)
        structured = "response_format" in request
        view = StreamView(self.shell, "code" if structured else args.format)
        view.provenance["interpolated"] = list(interpolated)
        stream = self.stream and not args.no_stream
        chat = None if args.no_history else args.chat
        try:
            if toolbox is not None:
                from ..tools.loop import ToolLoop

                answer = ToolLoop.for_cell(session, request, toolbox, args, view=view, chat=chat,
                                           cell_id=cell_id, stream=stream, reuse=reuse).run()
            elif structured:
                answer = session.ask_structured(
                    request, spec=spec, many=args.many, chat=chat, view=view, stream=stream,
                    cell_id=cell_id, reuse=reuse, keep_thinking=args.keep_thinking,
                )
            else:
                answer = session.ask(request, chat=chat, view=view, stream=stream,
                                     cell_id=cell_id, reuse=reuse,
                                     keep_thinking=args.keep_thinking)
        except Interrupted as stopped:
            # The partial text is worth keeping in -o VAR; a partial JSON answer is not a value.
            if args.output and not structured and stopped.partial is not None:
                self.shell.user_ns[args.output] = stopped.partial.reply
            raise
        # The value is the answer, without the offline server's label line (shown above it).
        result = answer.value if structured else answer.reply
        if args.format == "code" and not structured and answer.status == "ok":
            from ..show.markdown import first_code_block
            from .labcomm import next_cell

            block = first_code_block(answer.text)
            next_cell(self.shell, answer.text.strip() if block is None else block, "code",
                      session.cell_id)
        if args.output:
            self.shell.user_ns[args.output] = result
        if args.speak:
            from .commands.audio import speak_answer

            speak_answer(self, answer, args.speak)
        return None
