"""The Conversations API offline: start, append, restart, history, streamed as the spec's events.

A conversation keeps its entries (the spec's entry objects, with ids and times) and the
settings it started with: a model, or an agent at a version (`agents.Agents`), with
instructions, tools and completion arguments. Each call adds the inputs (a string is one
user message) and the outputs it answers with:

- for a user message, the built-in tools given run first (`builtins.plan`): each is a
  ``tool.execution`` entry, and the message that follows cites what they found;
- function tools are decided as chat completions decide them (`chat.complete` on the
  conversation as chat messages): ``function.call`` entries, answered by appending
  ``function.result`` entries; the answer then quotes the results and cites the searches
  of the same turn;
- otherwise the answer is the offline chat answer to the conversation.

`restart` starts a new conversation from the entries up to `from_entry_id` (kept with
their ids). Usage counts the conversation as the client counts it (chat messages and
function tools, `money.tokens`), the tools' findings as ``connector_tokens`` and the
calls per tool in ``connectors``. Streamed (``"stream": true``), the same outputs come as
``conversation.response.started``, ``tool.execution.started``/``done``,
``function.call.delta``, ``message.output.delta`` (a text piece or a reference/file chunk
each) and ``conversation.response.done`` events, paced like chat streams; a stored
conversation is kept (``"store": false`` keeps none, so it cannot be appended to).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid

from ..money import tokens
from . import builtins, chat, lengths
from .agent_wire import AppendRequest, RestartRequest, StartRequest
from .agents import not_found, now
from .endpoints import resolve_model
from .faults import FaultPlan
from .wire import ChatRequest, RequestError, error_body, parse


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def text_of(content) -> str:
    """A message's text: a string, or its text chunks joined (references and files left out)."""
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if c.get("type") == "text")


def function_tools(tools: list[dict]) -> list[dict]:
    """The function tools, as the client counts them (name, description, parameters)."""
    found = []
    for tool in tools:
        if tool.get("type", "function") == "function":
            fn = tool["function"]
            found.append({"type": "function", "function": {
                "name": fn["name"], "description": fn.get("description", ""), "parameters": fn["parameters"]}})
    return found


def as_messages(instructions: str | None, entries: list[dict]) -> list[dict]:
    """The conversation as chat messages (tool executions are not messages: they are read as
    connector tokens when they run)."""
    messages = [{"role": "system", "content": instructions}] if instructions else []
    names = {}
    for entry in entries:
        kind = entry["type"]
        if kind in ("message.input", "message.output"):
            messages.append({"role": entry.get("role", "assistant"), "content": text_of(entry["content"])})
        elif kind == "function.call":
            names[entry["tool_call_id"]] = entry["name"]
            arguments = entry["arguments"]
            call = {"id": entry["tool_call_id"], "type": "function", "function": {
                "name": entry["name"],
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function.result":
            messages.append({"role": "tool", "name": names.get(entry["tool_call_id"], "tool"),
                             "tool_call_id": entry["tool_call_id"], "content": entry["result"]})
    return messages


class Conversations:
    """Every stored conversation of an offline server; thread-safe."""

    def __init__(self, files, libraries, agents, seed: int = 0, repeats=None):
        self.files, self.libraries, self.agents = files, libraries, agents
        self.seed, self.repeats = seed, repeats
        self._conversations: dict[str, dict] = {}
        self._runs: dict[str, builtins.Run] = {}  # tool.execution entry id -> what it found
        self._lock = threading.Lock()

    # -- the calls -------------------------------------------------------------------------

    def start(self, data: object, plan: FaultPlan) -> tuple[bool, dict]:
        req = parse(StartRequest, data)
        if (req.model is None) == (req.agent_id is None):
            raise RequestError(400, error_body("Give either model or agent_id (one of them, not both)",
                                               "invalid_request_error", param="model"))
        conv = {"id": _id("conv"), "created_at": now(), "updated_at": now(), "entries": [],
                "name": req.name, "description": req.description, "metadata": req.metadata,
                "guardrails": req.guardrails, "store": req.store is not False}
        if req.agent_id is not None:
            self._agent_settings(conv, req.agent_id, req.agent_version)
        else:
            resolve_model(req.model, "completion_chat")
            tools = [t.model_dump(mode="json", exclude_none=True) for t in req.tools or []]
            from .agents import check_tools

            check_tools(req.model, req.tools, self.libraries)
            conv.update(model=req.model, instructions=req.instructions, tools=tools, completion_args={})
        return self._turn(conv, req, plan)

    def _agent_settings(self, conv: dict, agent_id: str, version) -> None:
        agent = self.agents.get(agent_id, version)
        conv.update(model=agent["model"], instructions=agent.get("instructions"), tools=agent.get("tools") or [],
                    completion_args=dict(agent.get("completion_args") or {}), agent_id=agent_id,
                    agent_version=agent["version"] if version is None or str(version).isdigit() else version)

    def append(self, conversation_id: str, data: object, plan: FaultPlan) -> tuple[bool, dict]:
        req = parse(AppendRequest, data)
        conv = self._conversation(conversation_id)
        return self._turn(conv, req, plan)

    def restart(self, conversation_id: str, data: object, plan: FaultPlan) -> tuple[bool, dict]:
        req = parse(RestartRequest, data)
        old = self._conversation(conversation_id)
        ids = [e["id"] for e in old["entries"]]
        if req.from_entry_id not in ids:
            raise RequestError(400, error_body(f"Entry {req.from_entry_id} is not in conversation "
                                               f"{conversation_id}", "invalid_request_error", param="from_entry_id"))
        conv = {**copy.deepcopy({k: v for k, v in old.items() if k != "entries"}), "id": _id("conv"),
                "created_at": now(), "updated_at": now(),
                "entries": copy.deepcopy(old["entries"][:ids.index(req.from_entry_id) + 1])}
        if req.agent_version is not None and old.get("agent_id"):
            self._agent_settings(conv, old["agent_id"], req.agent_version)
        if req.metadata is not None:
            conv["metadata"] = req.metadata
        return self._turn(conv, req, plan)

    def _conversation(self, conversation_id: str) -> dict:
        with self._lock:
            found = self._conversations.get(conversation_id)
        if found is None:
            raise not_found("Conversation", conversation_id)
        return found

    def _turn(self, conv: dict, req, plan: FaultPlan) -> tuple[bool, dict]:
        """Add the inputs, answer, keep the conversation; (streamed?, response body)."""
        with self._lock:
            entries = conv["entries"] + self._inputs(req.inputs)
        if not entries or entries[-1]["type"] not in ("message.input", "function.result"):
            raise RequestError(400, error_body("The inputs must end with a user message or function results",
                                               "invalid_request_error", param="inputs"))
        args = {**conv["completion_args"],
                **(req.completion_args.model_dump(mode="json", exclude_none=True) if req.completion_args else {})}
        outputs, usage = self._respond(conv, entries, args, plan)
        with self._lock:
            conv["entries"] = entries + outputs
            conv["updated_at"] = now()
            if conv.get("store", True) and req.store is not False:
                self._conversations[conv["id"]] = conv
        return bool(req.stream), {"object": "conversation.response", "conversation_id": conv["id"],
                                  "outputs": copy.deepcopy(outputs), "usage": usage, "guardrails": None}

    @staticmethod
    def _inputs(inputs) -> list[dict]:
        if isinstance(inputs, str):
            inputs = [{"type": "message.input", "role": "user", "content": inputs}]
        else:
            inputs = [e.model_dump(mode="json", exclude_none=True) for e in inputs]
        made = []
        for entry in inputs:
            entry = {**entry, "object": "entry", "id": _id({"function.result": "fr", "function.call": "fc"}
                                                           .get(entry["type"], "msg")),
                     "created_at": now(), "completed_at": now()}
            made.append(entry)
        return made

    # -- answering -------------------------------------------------------------------------

    def _respond(self, conv: dict, entries: list[dict], args: dict, plan: FaultPlan) -> tuple[list, dict]:
        model = conv["model"]
        messages = as_messages(conv.get("instructions"), entries)
        functions = function_tools(conv["tools"])
        req = parse(ChatRequest, {k: v for k, v in {
            "model": model, "messages": messages, "tools": functions or None,
            "tool_choice": args.get("tool_choice", "auto"), "random_seed": args.get("random_seed"),
            "temperature": args.get("temperature"), "max_tokens": args.get("max_tokens"),
            "stop": args.get("stop")}.items() if v is not None})
        from .tools import check_messages

        check_messages(req)
        prompt = tokens.count_messages(messages, functions or None)
        stamp = {"created_at": now(), "completed_at": now(), "agent_id": conv.get("agent_id"), "model": model}
        outputs: list[dict] = []
        runs: list[builtins.Run] = []
        question = text_of(entries[-1]["content"]) if entries[-1]["type"] == "message.input" else ""
        if question:
            library_ids = [i for t in conv["tools"] if t["type"] == "document_library" for i in t["library_ids"]]
            for name, arguments in builtins.plan(question, [t["type"] for t in conv["tools"]]):
                done = builtins.run(name, arguments, libraries=self.libraries, library_ids=library_ids,
                                    files=self.files)
                entry = {"object": "entry", "type": "tool.execution", **stamp, "id": _id("tex"), "name": name,
                         "arguments": builtins.entry_arguments(done), "info": done.info}
                outputs.append(entry)
                runs.append(done)
                with self._lock:
                    self._runs[entry["id"]] = done
        choice = chat.complete(chat.Context(req, model, plan), server_seed=self.seed, repeats=self.repeats)[0]
        if choice.tool_calls:
            outputs += [{"object": "entry", "type": "function.call", **stamp, "id": _id("fc"),
                         "tool_call_id": call["id"], "name": call["function"]["name"],
                         "arguments": call["function"]["arguments"]} for call in choice.tool_calls]
            completion = choice.completion_tokens()
        else:
            earlier = runs or self._turn_runs(entries)
            if earlier:
                tail = choice.content if entries[-1]["type"] == "function.result" else ""
                content = _cut(builtins.answer(model, question, earlier, tail), args.get("max_tokens"))
                completion = tokens.count_text(text_of(content))
            else:
                content = choice.content
                completion = tokens.count_text(content)
            outputs.append({"object": "entry", "type": "message.output", **stamp, "id": _id("msg"),
                            "role": "assistant", "content": content})
        connectors: dict[str, int] = {}
        for done in runs:
            connectors[done.name] = connectors.get(done.name, 0) + 1
        read = sum(done.connector_tokens() for done in runs)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion + read,
                 "connector_tokens": read if runs else None, "connectors": connectors or None}
        return outputs, usage

    def _turn_runs(self, entries: list[dict]) -> list[builtins.Run]:
        """The built-in tool runs since the last user message (their findings are cited again)."""
        found = []
        for entry in reversed(entries):
            if entry["type"] == "message.input" and entry.get("role") == "user":
                break
            if entry["type"] == "tool.execution":
                with self._lock:
                    done = self._runs.get(entry["id"])
                if done is not None:
                    found.append(done)
        return found[::-1]

    # -- reading -------------------------------------------------------------------------------

    def shown(self, conversation_id: str) -> dict:
        conv = self._conversation(conversation_id)
        base = {"object": "conversation", "id": conv["id"], "created_at": conv["created_at"],
                "updated_at": conv["updated_at"], "name": conv.get("name"),
                "description": conv.get("description"), "metadata": conv.get("metadata")}
        if conv.get("agent_id"):
            return {**base, "agent_id": conv["agent_id"], "agent_version": conv.get("agent_version")}
        return {**base, "model": conv["model"], "instructions": conv.get("instructions"),
                "tools": copy.deepcopy(conv["tools"]), "completion_args": dict(conv["completion_args"]),
                "guardrails": conv.get("guardrails")}

    def listing(self, page: int = 0, page_size: int = 100) -> list[dict]:
        with self._lock:
            ids = list(self._conversations)[::-1]
        return [self.shown(i) for i in ids[page * page_size:(page + 1) * page_size]]

    def delete(self, conversation_id: str) -> None:
        self._conversation(conversation_id)
        with self._lock:
            self._conversations.pop(conversation_id, None)

    def history(self, conversation_id: str) -> dict:
        conv = self._conversation(conversation_id)
        return {"object": "conversation.history", "conversation_id": conversation_id,
                "entries": copy.deepcopy(conv["entries"])}

    def messages(self, conversation_id: str) -> dict:
        conv = self._conversation(conversation_id)
        kept = [e for e in conv["entries"] if e["type"] in ("message.input", "message.output")]
        return {"object": "conversation.messages", "conversation_id": conversation_id,
                "messages": copy.deepcopy(kept)}


def _cut(chunks: list[dict], max_tokens: int | None) -> list[dict]:
    """The content within `max_tokens` answer tokens: text cut at the limit, later chunks dropped."""
    if max_tokens is None:
        return chunks
    kept, text = [], ""
    for chunk in chunks:
        if chunk["type"] != "text":
            kept.append(chunk)
            continue
        room = lengths.cut_tokens(text + chunk["text"], max_tokens)
        if len(room) < len(text) + len(chunk["text"]):
            if len(room) > len(text):
                kept.append({"type": "text", "text": room[len(text):]})
            return kept
        kept.append(chunk)
        text += chunk["text"]
    return kept


def events(body: dict) -> list[tuple[str, dict, bool]]:
    """The streamed form of a response: (event type, data, starts a token step), in order."""
    made = [("conversation.response.started", {"type": "conversation.response.started", "created_at": now(),
                                                "conversation_id": body["conversation_id"]}, False)]
    for index, entry in enumerate(body["outputs"]):
        common = {"created_at": entry["created_at"], "output_index": index, "id": entry["id"]}
        kind = entry["type"]
        if kind == "tool.execution":
            made.append(("tool.execution.started", {"type": "tool.execution.started", **common,
                                                    "model": entry["model"], "agent_id": entry["agent_id"],
                                                    "name": entry["name"], "arguments": entry["arguments"]}, True))
            made.append(("tool.execution.done", {"type": "tool.execution.done", **common, "name": entry["name"],
                                                 "info": entry["info"]}, False))
        elif kind == "function.call":
            made.append(("function.call.delta", {"type": "function.call.delta", **common, "model": entry["model"],
                                                 "agent_id": entry["agent_id"], "name": entry["name"],
                                                 "tool_call_id": entry["tool_call_id"],
                                                 "arguments": entry["arguments"]}, True))
        else:
            content = entry["content"]
            chunks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for position, chunk in enumerate(chunks):
                pieces = tokens.pieces(chunk["text"]) if chunk["type"] == "text" else [chunk]
                for piece in pieces:
                    made.append(("message.output.delta", {
                        "type": "message.output.delta", **common, "content_index": position,
                        "model": entry["model"], "agent_id": entry["agent_id"], "role": "assistant",
                        "content": piece}, True))
    made.append(("conversation.response.done", {"type": "conversation.response.done", "created_at": now(),
                                                "usage": body["usage"]}, False))
    return made


def frames(body: dict):
    """`events` as SSE frames for `sse.EventStream`: (bytes, starts a step)."""
    for kind, data, step in events(body):
        yield (b"event: " + kind.encode() + b"\ndata: "
               + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"), step
