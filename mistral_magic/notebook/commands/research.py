"""`%mistral library ...`, `%mistral agent ...` and `%mistral agents`: libraries and agents by name."""

from __future__ import annotations

from IPython.core.error import UsageError

from . import Note, command

LIBRARY_USE = ("%mistral library create NAME | %mistral library add NAME FILES... | "
               "%mistral library NAME [--wait]")
AGENT_USE = ("%mistral agent create NAME -m MODEL [-s INSTRUCTIONS] [--tools T,...] [--library L] | "
             "%mistral agent update NAME [...] | %mistral agent alias NAME ALIAS VERSION | "
             "%mistral agent delete NAME")


@command("library", (("words",), {"nargs": "+", "help": "create NAME | add NAME FILES... | NAME"}),
         (("-d", "--description"), {"default": None, "help": "what the library holds (create)"}),
         (("--wait",), {"action": "store_true", "help": "wait until every document is processed"}),
         (("--allow-unpriced",), {"action": "store_true",
                                  "help": "under a budget, allow document processing (no published price)"}))
def library(ctx, args):
    """Create a document library, add files to it, or list its documents (a DataFrame)."""
    from ...agents.libraries import Libraries

    shelf = Libraries(ctx.session)
    verb, rest = args.words[0], args.words[1:]
    if verb == "create":
        if len(rest) != 1:
            raise UsageError(f"usage: {LIBRARY_USE}")
        made, existed = shelf.create(rest[0], args.description)
        return Note(f"Library `{made.name}` {'exists already' if existed else 'created'} "
                    f"(id {made.id}); add files with `%mistral library add {made.name} FILES`.")
    if verb == "add":
        if len(rest) < 2:
            raise UsageError(f"usage: {LIBRARY_USE}")
        frame = shelf.add(rest[0], rest[1:], allowed=args.allow_unpriced or ctx.magics.allow_unpriced)
        return _waited(ctx, shelf, rest[0], frame) if args.wait else frame
    if rest:
        raise UsageError(f"usage: {LIBRARY_USE}")
    return _waited(ctx, shelf, verb, None) if args.wait else shelf.frame(verb)


def _waited(ctx, shelf, name: str, frame):
    left = shelf.wait(shelf.find(name).id, ctx.magics.timeout_s)
    if left:
        raise UsageError(f"{len(left)} document(s) of {name!r} are still processing after "
                         f"{ctx.magics.timeout_s:g} s; run %mistral library {name} --wait again")
    return shelf.frame(name)


@command("agent", (("words",), {"nargs": "+", "help": "create NAME | update NAME | alias NAME ALIAS VERSION"}),
         (("-m", "--model"), {"default": None, "help": "the agent's model"}),
         (("-s", "--system"), {"default": None, "help": "the agent's instructions"}),
         (("--tools",), {"default": None, "help": "built-in tools and notebook functions: web_search,f"}),
         (("--library",), {"action": "append", "default": None, "help": "a document library it searches"}),
         (("-d", "--description"), {"default": None, "help": "what the agent is for"}))
def agent(ctx, args):
    """Create an agent, change it (a new version), alias a version, or delete it."""
    from ...agents import builtins
    from ...agents.registry import Agents

    registry = Agents(ctx.session)
    verb, rest = args.words[0], args.words[1:]
    namespace = ctx.magics.shell.user_ns
    tools = None
    if args.tools is not None or args.library:
        tools = registry.tools(builtins.names_of(args.tools), args.library or [], namespace)
    if verb == "create" and len(rest) == 1:
        if not args.model:
            raise UsageError(f"an agent needs a model: %mistral agent create {rest[0]} -m MODEL")
        made, existed = registry.create(rest[0], args.model, args.system, tools or [], args.description)
        return Note(_said("exists already, the same" if existed else "created", made))
    if verb == "update" and len(rest) == 1:
        changed = registry.update(rest[0], model=args.model, instructions=args.system, tools=tools,
                                  description=args.description)
        return Note(_said("updated", changed))
    if verb == "alias" and len(rest) == 3 and rest[2].isdigit():
        made = registry.alias(rest[0], rest[1], int(rest[2]))
        return Note(f"Agent `{rest[0]}`: `{made.alias}` now names version {made.version}; ask it with "
                    f"`%%mistral --agent {rest[0]}@{made.alias}`.")
    if verb == "delete" and len(rest) == 1:
        registry.delete(rest[0])
        return Note(f"Agent `{rest[0]}` deleted.")
    raise UsageError(f"usage: {AGENT_USE}")


def _said(what: str, made) -> str:
    from ...agents.registry import tool_names

    tools = ", ".join(tool_names(made.tools)) or "no tools"
    return (f"Agent `{made.name}` {what}: version {made.version} of {made.model}, {tools} (id {made.id}); "
            f"ask it with `%%mistral --agent {made.name}`.")


@command("agents")
def agents(ctx, args):
    """Every agent on the backend: versions, aliases, tools (a DataFrame)."""
    from ...agents.registry import Agents

    return Agents(ctx.session).frame()
