"""Agents offline: created, updated into new versions, switched between versions, aliased.

An agent is a model with instructions, tools and completion arguments, under a name.
`POST /v1/agents` makes version 0; each `PATCH /v1/agents/{id}` makes the next version
(and makes it the active one); `PATCH .../version?version=N` switches the active
version; `GET /v1/agents/{id}?agent_version=N|ALIAS` reads one. Aliases
(`PUT|GET|DELETE .../aliases`) name a version, their names as the spec's pattern
allows. Its model must be a chat model of the catalogue, and its built-in tools one
that has them (`builtins.require`). Ids look like the hosted API's (``ag_`` and hex).
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from datetime import datetime, timezone

from . import builtins
from .agent_wire import CreateAgent, UpdateAgent
from .endpoints import resolve_model
from .wire import RequestError, error_body, parse

ALIAS = re.compile(r"[a-z]([a-z0-9_-]*[a-z0-9])?")
ALIAS_MAX = 64


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def not_found(what: str, name: str) -> RequestError:
    return RequestError(404, error_body(f"{what} {name} not found", "not_found", "3404"))


def check_tools(model: str, tools: list | None, libraries) -> None:
    """The model takes the built-in tools given, and every library they name exists."""
    builtins.require(model, [t.type for t in tools or []])
    for tool in tools or []:
        if tool.type == "connector":
            raise RequestError(400, error_body(
                "Connectors are not available offline (custom MCP connectors need the network)",
                "invalid_request_error"))
        if tool.type == "document_library":
            for library_id in tool.library_ids:
                libraries.library(library_id)


class Agents:
    """Every agent of an offline server, with its versions and aliases; thread-safe."""

    def __init__(self, libraries):
        self.libraries = libraries
        self._agents: dict[str, dict] = {}  # id -> {"versions": [...], "active": n, "aliases": {}}
        self._lock = threading.Lock()

    def _find(self, agent_id: str) -> dict:
        found = self._agents.get(agent_id)
        if found is None:
            raise not_found("Agent", agent_id)
        return found

    def create(self, data: object) -> dict:
        req = parse(CreateAgent, data)
        resolve_model(req.model, "completion_chat")
        check_tools(req.model, req.tools, self.libraries)
        stamp = now()
        agent = {
            **req.model_dump(mode="json", exclude_none=True),
            "tools": [t.model_dump(mode="json", exclude_none=True) for t in req.tools or []],
            "completion_args": (req.completion_args.model_dump(mode="json", exclude_none=True)
                                if req.completion_args else {}),
            "object": "agent", "id": "ag_" + uuid.uuid4().hex, "version": 0, "versions": [0],
            "created_at": stamp, "updated_at": stamp, "deployment_chat": False, "source": "api",
        }
        with self._lock:
            self._agents[agent["id"]] = {"versions": [agent], "active": 0, "aliases": {}}
        return copy.deepcopy(agent)

    def update(self, agent_id: str, data: object) -> dict:
        req = parse(UpdateAgent, data)
        with self._lock:
            found = self._find(agent_id)
            base = copy.deepcopy(found["versions"][found["active"]])
        changes = req.model_dump(mode="json", exclude_none=True)
        if req.tools is not None:
            changes["tools"] = [t.model_dump(mode="json", exclude_none=True) for t in req.tools]
        base.update(changes)
        resolve_model(base["model"], "completion_chat")
        check_tools(base["model"], parse(UpdateAgent, {"tools": base.get("tools") or []}).tools,
                    self.libraries)
        with self._lock:
            found = self._find(agent_id)
            number = len(found["versions"])
            base.update(version=number, updated_at=now())
            found["versions"].append(base)
            found["active"] = number
            for version in found["versions"]:
                version["versions"] = list(range(number + 1))
            return copy.deepcopy(base)

    def get(self, agent_id: str, version: str | int | None = None) -> dict:
        """The agent at `version` (a number or an alias; None: the active version)."""
        with self._lock:
            found = self._find(agent_id)
            number = found["active"] if version is None else self._number(found, version)
            return copy.deepcopy(found["versions"][number])

    def _number(self, found: dict, version: str | int) -> int:
        text = str(version)
        if text.lstrip("-").isdigit():
            number = int(text)
            if not 0 <= number < len(found["versions"]):
                raise not_found("Agent version", text)
            return number
        alias = found["aliases"].get(text)
        if alias is None:
            raise not_found("Agent alias", text)
        return alias["version"]

    def switch(self, agent_id: str, version: int) -> dict:
        with self._lock:
            found = self._find(agent_id)
            found["active"] = self._number(found, version)
            return copy.deepcopy(found["versions"][found["active"]])

    def versions(self, agent_id: str, page: int = 0, page_size: int = 20) -> list[dict]:
        with self._lock:
            found = self._find(agent_id)
            return copy.deepcopy(found["versions"][page * page_size:(page + 1) * page_size])

    def listing(self, name: str | None = None, search: str | None = None) -> list[dict]:
        """Every agent at its active version, oldest first (filtered by name or search text)."""
        with self._lock:
            agents = [copy.deepcopy(a["versions"][a["active"]]) for a in self._agents.values()]
        if name:
            agents = [a for a in agents if a["name"] == name]
        if search:
            agents = [a for a in agents if search.lower() in (a["name"] + " " + (a.get("description") or "")).lower()]
        return agents

    def delete(self, agent_id: str) -> None:
        with self._lock:
            self._find(agent_id)
            del self._agents[agent_id]

    def set_alias(self, agent_id: str, alias: str, version: int) -> dict:
        if len(alias) > ALIAS_MAX or not ALIAS.fullmatch(alias):
            raise RequestError(422, {"detail": [{
                "type": "string_pattern_mismatch", "loc": ["query", "alias"], "input": alias,
                "msg": "String should match pattern '^[a-z]([a-z0-9_-]*[a-z0-9])?$' (at most 64 characters)"}]})
        with self._lock:
            found = self._find(agent_id)
            number = self._number(found, version)
            stamp = now()
            kept = found["aliases"].get(alias)
            found["aliases"][alias] = {"alias": alias, "version": number,
                                       "created_at": kept["created_at"] if kept else stamp, "updated_at": stamp}
            return dict(found["aliases"][alias])

    def aliases(self, agent_id: str) -> list[dict]:
        with self._lock:
            return [dict(a) for a in self._find(agent_id)["aliases"].values()]

    def delete_alias(self, agent_id: str, alias: str) -> None:
        with self._lock:
            found = self._find(agent_id)
            if found["aliases"].pop(alias, None) is None:
                raise not_found("Agent alias", alias)
