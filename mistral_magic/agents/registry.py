"""Agents by name: create one, change it (a new version), alias a version, list them, resolve one.

    %mistral agent create tutor -m mistral-small-latest -s "Explain simply." --tools web_search
    %mistral agent update tutor -s "Explain with an example."    # version 1, now the active one
    %mistral agent alias tutor stable 0                           # `stable` names version 0
    %mistral agents                                               # name, versions, aliases, tools
    %%mistral --agent tutor@stable                                # NAME, NAME@VERSION, NAME@ALIAS

An agent's tools are Mistral's built-in tools (`builtins`), ``--library NAME`` (the
``document_library`` tool) and notebook functions, named as ``--tools`` names them: a function's
definition (schema from its signature and docstring) goes into the agent, and a cell asking the
agent runs the notebook's function of that name when the agent calls it.

`resolve` turns ``NAME[@VERSION|@ALIAS]`` into the agent as it is at that version (its model,
instructions and tools), so what a cell sends, counts, holds and caches is exact, and the
answer's provenance names the version that answered.
"""

from __future__ import annotations

import re

from ..errors import ConfigError
from . import builtins

SPEC = re.compile(r"(?P<name>[^@]+?)(?:@(?P<version>[A-Za-z0-9_.-]+))?")
COLUMNS = ["name", "id", "model", "version", "versions", "aliases", "tools", "instructions", "created"]


def tool_names(tools) -> list[str]:
    """An agent's tools by name: built-in tool types, ``library:ID``, function names."""
    names = []
    for tool in tools or []:
        kind = _field(tool, "type") or "function"
        if kind == "function":
            names.append(_field(_field(tool, "function"), "name"))
        elif kind == builtins.LIBRARY:
            names += [f"library:{i}" for i in _field(tool, "library_ids") or []]
        else:
            names.append(str(kind))
    return names


def _field(obj, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class Agents:
    """The backend's agents, by name."""

    def __init__(self, session):
        self.session = session

    @property
    def api(self):
        return self.session.backend.client.beta.agents

    def listing(self) -> list:
        found, token = [], None
        while True:
            page = self.api.list_pages(page_size=100, **({"page_token": token} if token else {}))
            if page is None:
                return found
            found += page.result.data or []
            token = page.result.next_page_token
            if not token:
                return found

    def find(self, name: str):
        found = [a for a in self.listing() if a.name == name]
        if not found:
            raise ConfigError(f"No agent named {name!r} on this backend; create it with "
                              f"%mistral agent create {name} -m MODEL -s \"instructions\"")
        if len(found) > 1:
            raise ConfigError(f"{len(found)} agents are named {name!r}; delete or rename one")
        return found[0]

    def tools(self, names: list[str], libraries: list[str], namespace: dict) -> list[dict]:
        """The tool objects of an agent: built-in ones, libraries by name, notebook functions."""
        from ..tools.functions import collect
        from .libraries import Libraries

        made, functions = builtins.split(names)
        tools = [builtins.tool(n) for n in made]
        if libraries:
            ids = [Libraries(self.session).find(n).id for n in libraries]
            tools.append(builtins.tool(builtins.LIBRARY, ids))
        if functions:
            tools += collect(",".join(functions), namespace).definitions()
        return tools

    def create(self, name: str, model: str, instructions: str | None, tools: list[dict],
               description: str | None = None) -> tuple[object, bool]:
        """(the agent, whether it existed): the same agent asked for again (a notebook run
        again) changes nothing; one set up otherwise is refused."""
        self.session.capabilities.check(model)
        builtins.check(model, [t["type"] for t in tools if t["type"] != "function"])
        same = [a for a in self.listing() if a.name == name]
        if same:
            agent = same[0]
            if (agent.model, agent.instructions, tool_names(agent.tools)) != (model, instructions,
                                                                            tool_names(tools)):
                raise ConfigError(f"An agent named {name!r} exists already, set up otherwise; change "
                                  f"it (a new version) with %mistral agent update {name} ...")
            return agent, True
        return self.api.create(model=model, name=name, instructions=instructions, tools=tools,
                               description=description), False

    def update(self, name: str, **changes):
        agent = self.find(name)
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            raise ConfigError("Nothing to change: give -m MODEL, -s INSTRUCTIONS, --tools or --library")
        if "model" in changes:
            self.session.capabilities.check(changes["model"])
        tools = changes.get("tools", agent.tools)
        builtins.check(changes.get("model", agent.model),
                       [n for n in tool_names(tools) if n in builtins.TOOLS or n.startswith("library:")])
        return self.api.update(agent_id=agent.id, **changes)

    def alias(self, name: str, alias: str, version: int):
        agent = self.find(name)
        return self.api.create_version_alias(agent_id=agent.id, alias=alias, version=version)

    def delete(self, name: str) -> None:
        self.api.delete(agent_id=self.find(name).id)

    def resolve(self, spec: str) -> dict:
        """``NAME[@VERSION|@ALIAS]`` as the agent is at that version (`ConfigError` if unknown)."""
        match = SPEC.fullmatch(spec.strip())
        if match is None:
            raise ConfigError(f"--agent {spec!r} is not NAME, NAME@VERSION or NAME@ALIAS")
        agent = self.find(match["name"].strip())
        wanted = match["version"]
        if wanted is not None:
            try:
                agent = self.api.get(agent_id=agent.id, agent_version=int(wanted) if wanted.isdigit()
                                     else wanted)
            except Exception as exc:  # SDK errors: a 404 names a version or alias it lacks
                from ..errors import is_api_error

                if is_api_error(exc) and getattr(exc, "status_code", None) == 404:
                    raise ConfigError(f"Agent {agent.name!r} has no version or alias {wanted!r}; "
                                      f"%mistral agents lists them") from None
                raise
        tools = [t.model_dump(mode="json", exclude_none=True) if hasattr(t, "model_dump") else t
                 for t in agent.tools or []]
        return {"id": agent.id, "name": agent.name, "version": agent.version,
                "alias": wanted if wanted is not None and not wanted.isdigit() else None,
                "model": agent.model, "instructions": agent.instructions, "tools": tools}

    def frame(self):
        """Every agent: name, id, model, active version, versions, aliases, tools, instructions."""
        import pandas as pd

        rows = []
        for agent in self.listing():
            aliases = self.api.list_version_aliases(agent_id=agent.id)
            rows.append({"name": agent.name, "id": agent.id, "model": agent.model,
                         "version": agent.version, "versions": list(agent.versions or []),
                         "aliases": {a.alias: a.version for a in aliases},
                         "tools": tool_names(agent.tools), "instructions": agent.instructions,
                         "created": agent.created_at})
        return pd.DataFrame(rows, columns=COLUMNS).astype({"version": "Int64"})
