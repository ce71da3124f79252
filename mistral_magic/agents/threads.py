"""A named chat mapped onto server-side conversations: each call starts, appends or restarts one.

The notebook's chat stays the history (`chat.Chat`: turns keyed by cell, re-run in place,
undone); the Conversations API keeps its own. Each answer ends with a *link*: the
conversation it was made in, its last entry, the backend, the setup (model or agent,
instructions, tools) and a hash of the messages the conversation then holds. A call
continues from the link of the step before it (a tool step), or of the chat's last turn:

- the link fits (same backend and setup, and the messages it holds are exactly the start
  of this request's) and nothing was added to that conversation since: **append** the
  messages after them (the new prompt, or the tool results);
- it fits but the conversation went on (the cell is re-run, or a later turn was undone):
  **restart** from its last entry, which makes a new conversation holding just that history;
- nothing fits (a first cell, a changed tool list or model, a turn made by a chat cell, an
  interrupted one): **start** a conversation with the chat's history as its input entries.

A conversation the backend no longer has (a 404: another server, a restarted kernel's
offline server, a deleted conversation) is started again from the history, once.

The last conversation of each chat is also kept in the folder's store (``store.records``,
under ``"conversations"``: the chat, the notebook and the link), beside the turns that keep
theirs (``%mistral chats`` shows the last one).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

JOB = "conversations"


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()[:32]


def body(messages: list[dict]) -> list[dict]:
    """The messages a conversation holds as entries (the system prompt is its instructions)."""
    return [m for m in messages if m.get("role") != "system"]


def setup(request: dict) -> str:
    """What a conversation is fixed to when it starts: model or agent, instructions, tools."""
    system = next((m["content"] for m in request["messages"] if m.get("role") == "system"), None)
    return _hash([request.get("agent") or request["model"], system, request.get("tools"),
                  request.get("builtins")])


def link(request: dict, backend: str, conversation_id: str, last: str, held: list[dict]) -> dict:
    """The link an answer ends with: the conversation holds `held` (the request's messages and
    the answer's own) up to entry `last`."""
    return {"id": conversation_id, "last": last, "backend": backend, "setup": setup(request),
            "count": len(held), "hash": _hash(held)}


@dataclass
class Action:
    """How a call goes: ``start`` (all `messages` as entries), ``append`` or ``restart``."""

    kind: str
    messages: list[dict]  # the messages to send as input entries
    conversation_id: str | None = None
    from_entry_id: str | None = None


class Threads:
    """Which conversation each call continues; the latest entry of each conversation (its head)."""

    def __init__(self, session):
        self.session = session
        self._heads: dict[str, str] = {}
        self._lock = threading.Lock()

    def plan(self, request: dict, candidate: dict | None, backend: str) -> Action:
        """How to send `request`, continuing from `candidate` (a link) when it fits."""
        messages = body(request["messages"])
        if candidate and self.fits(candidate, request, backend):
            new = messages[candidate["count"]:]
            with self._lock:
                head = self._heads.get(candidate["id"])
            if head == candidate["last"]:
                return Action("append", new, candidate["id"])
            return Action("restart", new, candidate["id"], candidate["last"])
        return Action("start", messages)

    @staticmethod
    def fits(candidate: dict, request: dict, backend: str) -> bool:
        messages = body(request["messages"])
        count = candidate.get("count")
        return (candidate.get("backend") == backend and candidate.get("setup") == setup(request)
                and isinstance(count, int) and 0 < count < len(messages)
                and candidate.get("hash") == _hash(messages[:count]))

    def moved(self, conversation_id: str, last: str) -> None:
        """The conversation now ends at entry `last` (after a call made in it)."""
        with self._lock:
            self._heads[conversation_id] = last

    def remember(self, chat: str | None, answer_link: dict | None) -> None:
        """Keep the chat's conversation in the folder's store (not with the cache off)."""
        responses = self.session.responses
        if chat is None or answer_link is None or responses.mode != "on":
            return
        key = _hash([answer_link["backend"], responses.notebook, chat])
        record = {"chat": chat, "notebook": responses.notebook, **answer_link}
        responses.guarded(lambda store: store.records.put(JOB, {key: record}), 0, write=True)
