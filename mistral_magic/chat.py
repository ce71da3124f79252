"""Named conversations whose turns follow the notebook's cells.

A `Chat` is an ordered list of `Turn`s. A turn is keyed by the id of the cell that
made it, so re-running a cell replaces its turn in place instead of appending a
copy, and the history sent for it is the turns before it. Turns that finished
(`status == "ok"`) are sent back to the model as context, and so is the partial answer
of an interrupted turn, so that "please continue" works; a failed turn is not, nor an
interrupted one that had no text yet (it is not kept at all).

A turn is the whole exchange of its cell: when the model called tools, the
assistant's tool calls and the tool results sit between the prompt and the reply
(`exchange`), so a later cell can follow up and undoing or re-running the cell
removes or replaces all of it. A thinking model's reasoning is kept for showing
(`thinking`) but sent back only when the cell asked (`kept_thinking`). A turn made through
the Conversations API keeps the conversation it ended in (`conversation`), so the next cell
continues it; the chat's own turns stay the history.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_CHAT = "default"

_turn_ids = itertools.count(1)


@dataclass
class Turn:
    """One exchange: the user's prompt and the assistant's answer, with what it cost."""

    prompt: str
    answer: str = ""
    cell_id: str | None = None
    status: str = "pending"  # ok | error | interrupted | pending
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    images: list[dict] = field(default_factory=list)
    thinking: str = ""  # the reasoning shown with the answer
    thinking_tokens: int | None = None
    kept_thinking: str = ""  # the reply's reasoning, sent back in the history (--keep-thinking)
    exchange: list[dict] = field(default_factory=list)  # tool calls and results before the reply
    tools: list = field(default_factory=list)  # the `tools.functions.ToolRun`s, for showing
    conversation: dict | None = None  # the server-side conversation it ended in (`agents.threads`)
    banner: str = ""  # the offline server's label line, shown above the answer, never sent back
    footer: str = ""  # the line shown under the answer when it came
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    id: int = field(default_factory=lambda: next(_turn_ids))

    @property
    def in_context(self) -> bool:
        """Whether the turn is sent back to the model: finished, or interrupted with text."""
        return self.status == "ok" or (self.status == "interrupted" and bool(self.answer))

    def messages(self) -> list[dict]:
        user: Any = self.prompt
        if self.images:
            user = [{"type": "text", "text": self.prompt}, *self.images]
        reply: Any = self.answer
        if self.kept_thinking:
            reply = [thinking_chunk(self.kept_thinking), {"type": "text", "text": self.answer}]
        return [{"role": "user", "content": user}, *self.exchange,
                {"role": "assistant", "content": reply}]


def thinking_chunk(text: str) -> dict:
    """Reasoning as the API's thinking chunk, for an assistant message sent back."""
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


class Chat:
    """A named conversation: a system prompt and turns in notebook order."""

    def __init__(self, name: str, system: str | None = None):
        self.name = name
        self.system = system
        self.turns: list[Turn] = []
        self._lock = threading.RLock()
        self._listeners: list = []

    def subscribe(self, callback):
        """Call `callback(chat)` after every change; returns a function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _changed(self) -> None:
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a broken view must not break the conversation
                import logging

                logging.getLogger(__name__).exception("chat listener failed")

    def __repr__(self) -> str:
        return f"<Chat {self.name!r}: {len(self.turns)} turns>"

    def __len__(self) -> int:
        return len(self.turns)

    def _index(self, cell_id: str | None) -> int | None:
        if cell_id is None:
            return None
        for i, turn in enumerate(self.turns):
            if turn.cell_id == cell_id:
                return i
        return None

    def context(self, cell_id: str | None = None, system: str | None = None) -> list[dict]:
        """Messages to send before a new prompt from `cell_id`: system, then finished turns.

        For a cell that already has a turn, only the turns before it count, so a
        re-run sees the conversation as it was when the cell first ran. `system`
        stands in for the chat's own system prompt (a cell's `-s`, not yet applied).
        """
        with self._lock:
            index = self._index(cell_id)
            earlier = self.turns if index is None else self.turns[:index]
            messages: list[dict] = []
            system = system if system is not None else self.system
            if system:
                messages.append({"role": "system", "content": system})
            for turn in earlier:
                if turn.in_context:
                    messages.extend(turn.messages())
            return messages

    def record(self, turn: Turn) -> Turn:
        """Add a turn, replacing the one from the same cell if there is one."""
        with self._lock:
            index = self._index(turn.cell_id)
            if index is None:
                self.turns.append(turn)
            else:
                self.turns[index] = turn
        self._changed()
        return turn

    def forget(self, cell_id: str | None) -> Turn | None:
        """Remove and return the turn of `cell_id` (None: no such turn)."""
        with self._lock:
            index = self._index(cell_id)
            turn = None if index is None else self.turns.pop(index)
        if turn is not None:
            self._changed()
        return turn

    def undo(self) -> Turn | None:
        """Remove and return the last turn."""
        with self._lock:
            turn = self.turns.pop() if self.turns else None
        self._changed()
        return turn

    def reset(self) -> None:
        with self._lock:
            self.turns.clear()
        self._changed()

    def last_answer(self) -> str | None:
        with self._lock:
            for turn in reversed(self.turns):
                if turn.in_context:
                    return turn.answer
            return None

    def rows(self, preview: int = 80) -> list[dict]:
        """History rows: one per message (user, each tool call, assistant) of every turn."""

        def cut(text: str) -> str:
            flat = " ".join(text.split())
            return flat if len(flat) <= preview else flat[: preview - 1] + "…"

        rows = []
        with self._lock:
            for n, turn in enumerate(self.turns, 1):
                common = {"chat": self.name, "turn": n, "cell": turn.cell_id, "status": turn.status}
                rows.append(
                    {**common, "role": "user", "text": cut(turn.prompt),
                     "tokens": turn.prompt_tokens, "cost": None, "model": turn.model}
                )
                for run in turn.tools:
                    rows.append({**common, "role": "tool", "text": cut(run.plain()), "tokens": None,
                                 "cost": None, "model": turn.model})
                rows.append(
                    {**common, "role": "assistant", "text": cut(turn.answer),
                     "tokens": turn.completion_tokens, "cost": turn.cost, "model": turn.model}
                )
        return rows

    def export(self) -> list[dict]:
        """The conversation as plain messages, for saving or for another tool."""
        with self._lock:
            messages = [{"role": "system", "content": self.system}] if self.system else []
            for turn in self.turns:
                if turn.in_context:
                    messages.extend(turn.messages())
            return messages


class Chats:
    """All chats of a session, by name; `get` creates on first use."""

    def __init__(self):
        self._chats: dict[str, Chat] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Chat:
        with self._lock:
            if name not in self._chats:
                self._chats[name] = Chat(name)
            return self._chats[name]

    def find(self, name: str) -> Chat | None:
        """The chat called `name`, or None; unlike `get`, never creates one."""
        with self._lock:
            return self._chats.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._chats)

    def __contains__(self, name: str) -> bool:
        return name in self._chats

    def __iter__(self):
        return iter(list(self._chats.values()))

    def drop(self, name: str) -> None:
        with self._lock:
            self._chats.pop(name, None)

    def clear(self) -> None:
        """Empty every chat (views subscribed to a chat see it empty) and forget them."""
        with self._lock:
            chats = list(self._chats.values())
            self._chats.clear()
        for chat in chats:
            chat.reset()
