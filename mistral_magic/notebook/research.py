"""A ``%%mistral`` cell that needs the Conversations API: built-in tools, ``--library``, ``--agent``.

    %%mistral --tools web_search -o found          # an answer with numbered sources
    %%mistral --tools web_search,describe_column   # built-in tools beside notebook functions
    %%mistral --tools code_interpreter             # code run on Mistral's servers, shown
    %%mistral --tools image_generation -o picture  # the picture shown; -o gets it (PIL)
    %%mistral --library reports                    # grounded in a document library
    %%mistral --agent tutor@stable                 # an agent at a version or alias

The cell reads like any other: ``{name}`` interpolation, ``-c`` chats (the notebook's chat
stays the history; the turn keeps the conversation it ended in), ``--new``,
``--no-history``, ``-t``, ``--max-tokens``, ``--seed``, ``--no-stream``, ``--dry-run``,
``--refresh``, ``--max-steps``, ``--approve`` and ``--tool-choice auto|any|none``. An
agent brings its own model, instructions and tools: ``-m``, ``-s`` and ``--tools`` go with a
model, not with ``--agent``. ``--json``, ``--schema``, ``--image``, ``--file`` and
``--think`` are not sent through the Conversations API here: such a cell is refused in one
line. Under a budget, built-in tools (priced per use, with no published price) need
``--allow-unpriced`` (`calls.uses`). A library's documents still processing are waited for,
up to ``MistralMagics.timeout_s``.
"""

from __future__ import annotations

from IPython.core.error import UsageError

from ..errors import Interrupted
from ..show import render


def wanted(args, defaults: list[str]) -> bool:
    """Whether this cell needs the Conversations API."""
    from ..agents import builtins

    spec = args.tools if args.tools is not None else (
        None if args.json or args.schema is not None else ",".join(defaults))
    return bool(args.agent or args.library or builtins.split(builtins.names_of(spec))[0])


def _refuse(args) -> None:
    for flag, on in (("--json", args.json), ("--schema", args.schema is not None), ("--image", args.image),
                     ("--file", args.file), ("--think", args.think), ("--keep-thinking", args.keep_thinking)):
        if on:
            raise UsageError(f"{flag} is not sent through the Conversations API, which built-in tools, "
                             "--library and --agent use; ask it in a cell without them")
    if args.agent and (args.model or args.system):
        raise UsageError("--agent answers with the agent's own model and instructions; leave out -m and "
                         "-s, or change the agent with %mistral agent update NAME")
    if args.tool_choice not in (None, "auto", "any", "none"):
        raise UsageError("--tool-choice takes auto, any or none in a cell with built-in tools, "
                         "--library or --agent")


def ask(magics, args, cell: str):
    """Run a conversation cell (see the module's doc)."""
    from ..agents import builtins
    from ..agents.libraries import Libraries
    from ..agents.registry import Agents
    from ..calls import uses
    from ..inputs.prompt import Filled, fill

    _refuse(args)
    session = magics.session
    spec = args.tools if args.tools is not None else ",".join(magics.tools)
    made, functions = builtins.split(builtins.names_of(spec))
    agent = Agents(session).resolve(args.agent) if args.agent else None
    if agent is not None:
        if made or functions or args.library:
            raise UsageError("an agent brings its own tools; change them with %mistral agent update "
                             f"{agent['name']} --tools ... (or ask without --agent)")
        model = agent["model"]
        tools = [t for t in agent["tools"] if t.get("type") != "function"]
        functions = [t["function"]["name"] for t in agent["tools"] if t.get("type") == "function"]
    else:
        model = args.model or magics.model
        session.capabilities.check(model, setting=None if args.model else "MistralMagics.model")
        tools = [builtins.tool(name) for name in made]
        if args.library:
            shelf = Libraries(session)
            found = [shelf.find(name) for name in args.library]
            tools.append(builtins.tool(builtins.LIBRARY, [lib.id for lib in found]))
    names = [t["type"] for t in tools]
    builtins.check(model, names)
    uses.require(session, names, allowed=args.allow_unpriced or magics.allow_unpriced)
    args.chat = args.chat or magics.chat
    prompt = cell.strip("\n")
    filled = Filled(prompt) if args.no_interpolate else fill(prompt, magics.shell.user_ns)
    toolbox = None
    if functions:
        from ..tools.functions import collect

        toolbox = collect(",".join(functions), magics.shell.user_ns)
    cell_id = None if args.no_history else session.cell_id
    request = session.build_request(
        filled.text, chat=args.chat, model=model, system=agent["instructions"] if agent else args.system,
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
        history=not args.no_history, new=args.new, cell_id=cell_id, think="none",
        tools=toolbox.definitions() if toolbox else None, tool_choice=args.tool_choice)
    for key in ("reasoning_effort", "prompt_mode"):  # not sent through conversations
        request.pop(key, None)
    request.update(api="conversations", builtins=tools)
    if agent is not None:
        request["agent"] = {k: agent[k] for k in ("id", "name", "version", "alias")}
    if args.dry_run:
        from .dryrun import dry_run

        return dry_run(magics, request, args.output, filled)
    try:
        if args.library and agent is None:
            _wait(magics, [t for t in tools if t["type"] == builtins.LIBRARY][0]["library_ids"])
        return _send(magics, args, request, toolbox, cell_id, filled.names, names)
    finally:
        session.responses.ran(session.cell_id)


def _wait(magics, library_ids: list[str]) -> None:
    """Wait (up to ``timeout_s``) for the libraries' documents still processing, saying so."""
    from IPython.display import display

    from ..agents.libraries import Libraries

    shelf = Libraries(magics.session)
    for library_id in library_ids:
        pending = [d for d in shelf.documents(library_id) if str(d.process_status) not in ("done", "error")]
        if not pending:
            continue
        display(render.note(f"Waiting for {len(pending)} document{'s' if len(pending) > 1 else ''} of the "
                            "library to be processed…"), raw=True)
        try:
            left = shelf.wait(library_id, magics.timeout_s)
        except KeyboardInterrupt:
            raise Interrupted("Stopped while the library's documents were being processed; nothing was "
                              "asked") from None
        if left:
            display(render.note(f"{len(left)} document{'s are' if len(left) > 1 else ' is'} still "
                                "processing: the answer can use only the documents done"), raw=True)


def _candidate(session, chat: str | None, cell_id: str | None):
    """The conversation the chat's last turn before this cell ended in (None: start anew)."""
    found = session.chats.find(chat) if chat is not None else None
    if found is None:
        return None
    turns = list(found.turns)
    index = next((i for i, t in enumerate(turns) if cell_id is not None and t.cell_id == cell_id), None)
    earlier = [t for t in (turns if index is None else turns[:index]) if t.in_context]
    return earlier[-1].conversation if earlier else None


def _send(magics, args, request: dict, toolbox, cell_id, interpolated, names: list[str]):
    from ..agents.loop import ResearchLoop
    from ..agents.result import value
    from ..show.display import StreamView

    session = magics.session
    if not args.no_history:
        session.apply_chat_settings(args.chat, system=args.system, new=args.new)
    chat = None if args.no_history else args.chat
    view = StreamView(magics.shell, args.format)
    view.provenance["interpolated"] = list(interpolated)
    loop = ResearchLoop.for_cell(
        session, request, toolbox, args, candidate=None if chat is None else _candidate(session, chat, cell_id),
        view=view, chat=chat, cell_id=cell_id, stream=magics.stream and not args.no_stream,
        reuse="replay" if args.refresh else "cell")
    try:
        answer = loop.run()
    except Interrupted as stopped:
        if args.output and stopped.partial is not None:
            magics.shell.user_ns[args.output] = stopped.partial.text
        raise
    if args.output:
        magics.shell.user_ns[args.output] = value(answer, names)
    return None
