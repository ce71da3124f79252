"""One call to the Conversations API through the call path: reserved, streamed, accounted, recorded.

`converse(session, request, ...)` is `calls.path.CallPath.call` for a conversation: the
response cache may answer it (`cache.Responses.serve`, which brings back its sources, tool
runs and pictures); otherwise the budget reserves the model's worst case (and refuses a
built-in tool without a price unless allowed, `calls.uses`), `threads.Threads.plan` says
whether it starts, appends to or restarts a conversation, and the SDK sends it
(``client.beta.conversations.start|append|restart``, ``*_stream`` when streaming).

`ConversationCall` is a `calls.call.Call` that reads the API's events (or a whole
response) as they are typed: ``message.output.delta`` text streams into the cell, a
``tool_reference`` chunk is a source cited where it came (`show.sources.Research.cite`), a
``tool_file`` a picture, ``tool.execution.*`` a tool run shown as it starts,
``function.call.delta`` a notebook function to call (gathered as chat tool calls are), and
``conversation.response.done`` the usage. Pictures are downloaded (``files.download``) before
the call settles, so the response cache keeps them. The ledger gets the model's row (the
tokens tools read, ``connector_tokens``, priced as the model's input tokens: Mistral does
not say how it bills them) and one row per built-in tool used, priced per use or unknown.
An interrupt keeps what arrived, as every call does.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..calls.call import Call
from ..calls.events import ToolCallDelta
from ..show.sources import Execution, Picture, Research, Source
from . import threads

MAX_PICTURE_BYTES = 20 * 1024 * 1024


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class ConversationCall(Call):
    """A `Call` that reads conversation events and entries (see the module's doc)."""

    def __init__(self, session, request: dict, reservation, **options):
        super().__init__(session, request, reservation, kind="conversation", **options)
        self.research = self.answer.research = Research(agent=request.get("agent"))
        self.conversation_id: str | None = None
        self.last_entry: str | None = None
        self.started_tools: Counter = Counter()
        self.reported_uses: dict | None = None

    # -- reading -------------------------------------------------------------------------

    def event(self, data) -> bool:
        """Take one streamed event; True when it brought text (or a tool run to show)."""
        kind = _field(data, "type")
        if kind == "conversation.response.started":
            self.conversation_id = _field(data, "conversation_id")
        elif kind == "message.output.delta":
            self.last_entry = _field(data, "id") or self.last_entry
            return self._content(_field(data, "content"))
        elif kind == "tool.execution.started":
            self.last_entry = _field(data, "id") or self.last_entry
            name = str(_field(data, "name"))
            self.started_tools[name] += 1
            self.research.executions.append(Execution(name, _field(data, "arguments") or "", {},
                                                      _field(data, "id")))
            return True
        elif kind == "tool.execution.delta":
            run = self._execution(_field(data, "id"))
            if run is not None:
                run.arguments += _field(data, "arguments") or ""
        elif kind == "tool.execution.done":
            run = self._execution(_field(data, "id"))
            if run is not None:
                run.info = dict(_field(data, "info") or {})
        elif kind == "function.call.delta":
            self.last_entry = _field(data, "id") or self.last_entry
            self.calls.add(ToolCallDelta(index=int(_field(data, "output_index") or 0),
                                         id=_field(data, "tool_call_id"), name=_field(data, "name"),
                                         arguments=_field(data, "arguments") or ""))
        elif kind == "conversation.response.done":
            self._usage(_field(data, "usage"))
        elif kind == "conversation.response.error":
            from ..errors import APIError

            raise APIError(f"The conversation failed: {_field(data, 'message')} "
                           f"(code {_field(data, 'code')})")
        return False

    def take_response(self, response) -> None:
        """Take a whole conversation response (not streamed)."""
        import time

        self.answer.ttft_s = time.perf_counter() - self.started
        self.conversation_id = _field(response, "conversation_id")
        for index, entry in enumerate(_field(response, "outputs") or []):
            kind = _field(entry, "type")
            self.last_entry = _field(entry, "id") or self.last_entry
            if kind == "message.output":
                self._content(_field(entry, "content"))
            elif kind == "tool.execution":
                name = str(_field(entry, "name"))
                self.started_tools[name] += 1
                self.research.executions.append(Execution(name, _field(entry, "arguments") or "",
                                                          dict(_field(entry, "info") or {}), _field(entry, "id")))
            elif kind == "function.call":
                arguments = _field(entry, "arguments")
                self.calls.add(ToolCallDelta(index=index, id=_field(entry, "tool_call_id"),
                                             name=_field(entry, "name"),
                                             arguments=arguments if isinstance(arguments, str)
                                             else json.dumps(arguments or {}, ensure_ascii=False)))
        self._usage(_field(response, "usage"))

    def _execution(self, entry_id) -> Execution | None:
        return next((r for r in reversed(self.research.executions) if r.id == entry_id), None)

    def _content(self, content) -> bool:
        """A piece of the message: text, a cited source, a picture (or reasoning)."""
        import time

        if not content:
            return False
        chunks = [content] if isinstance(content, str) or _field(content, "type") else content
        brought = False
        for chunk in chunks:
            kind = "text" if isinstance(chunk, str) else _field(chunk, "type")
            if kind == "text":
                text = chunk if isinstance(chunk, str) else _field(chunk, "text") or ""
                if text:
                    self.parts.append(text)
                    brought = True
            elif kind == "tool_reference":
                offset = sum(len(p) for p in self.parts)
                self.research.cite(Source(str(_field(chunk, "title") or ""), _field(chunk, "url"),
                                          str(_field(chunk, "tool") or ""), _field(chunk, "description")),
                                   offset)
            elif kind == "tool_file":
                self.research.pictures.append(Picture(str(_field(chunk, "file_id")), _field(chunk, "file_name"),
                                                      _field(chunk, "file_type"), str(_field(chunk, "tool") or "")))
            elif kind == "thinking":
                from ..calls.events import thinking_of

                self.thinking.append(thinking_of([chunk]))
        if brought and self.answer.ttft_s is None:
            self.answer.ttft_s = time.perf_counter() - self.started
        return brought

    def _usage(self, usage) -> None:
        if usage is None:
            return
        self.take_usage(_field(usage, "prompt_tokens"), _field(usage, "completion_tokens"))
        self.research.connector_tokens = int(_field(usage, "connector_tokens") or 0)
        connectors = _field(usage, "connectors")
        if connectors:
            self.reported_uses = {str(k): int(v) for k, v in dict(connectors).items()}

    def download(self, client) -> None:
        """Fetch the pictures' bytes (``files.download``), each at most `MAX_PICTURE_BYTES`."""
        for picture in self.research.pictures:
            if picture.data is None:
                response = client.files.download(file_id=picture.file_id)
                data = bytearray()
                try:
                    for piece in response.iter_bytes():
                        data += piece
                        if len(data) > MAX_PICTURE_BYTES:
                            break
                finally:
                    response.close()
                picture.data = bytes(data) if len(data) <= MAX_PICTURE_BYTES else None

    # -- accounting ----------------------------------------------------------------------

    def _account(self) -> None:
        answer, research = self.answer, self.research
        super()._account()
        research.uses = dict(self.reported_uses if self.reported_uses is not None else self.started_tools)
        if research.connector_tokens:
            answer.prompt_tokens = (answer.prompt_tokens or 0) + research.connector_tokens
            answer.cost = self.session.prices.cost(answer.model, answer.prompt_tokens, answer.completion_tokens)
        max_tokens = self.request.get("max_tokens")
        if answer.status == "ok":
            answer.finish_reason = "tool_calls" if len(self.calls) else (
                "length" if max_tokens and (answer.completion_tokens or 0) >= max_tokens else "stop")
        costs = [self.session.prices.use_cost(name, count) for name, count in research.uses.items()]
        research.token_cost = answer.cost
        research.tool_cost = None if None in costs else sum(costs)
        answer.cost = None if answer.cost is None or research.tool_cost is None else answer.cost + research.tool_cost
        if self.conversation_id and self.last_entry and answer.status == "ok":
            held = [*threads.body(self.request["messages"]), *self.said()]
            research.link = threads.link(self.request, self.cache_as or answer.backend, self.conversation_id,
                                         self.last_entry, held)
            self.session.threads.moved(self.conversation_id, self.last_entry)

    def said(self) -> list[dict]:
        """The answer as the chat keeps it: tool calls, or the reply."""
        from ..tools.loop import call_id

        calls = self.calls.calls()
        if calls:
            taken: set[str] = set()
            for index, call in enumerate(calls):
                call["id"] = call_id(call, 0, index, taken)
                taken.add(call["id"])
            return [{"role": "assistant", "content": "", "tool_calls": calls}]
        return [{"role": "assistant", "content": "".join(self.parts)}]

    def _records(self) -> list:
        from ..money.usage import CallRecord

        answer, research = self.answer, self.research
        model_row = self._record()
        model_row.cost = research.token_cost
        rows = [model_row]
        for name, count in research.uses.items():
            rows.append(CallRecord(model=name, chat=answer.chat, kind="tool", prompt_tokens=0,
                                   completion_tokens=0, uses=count, backend=answer.backend,
                                   cost=self.session.prices.use_cost(name, count), status=answer.status))
        return rows


def wire_tools(request: dict) -> list[dict]:
    """The tools a conversation starts with: built-in ones, then notebook functions."""
    return [*request.get("builtins", []), *request.get("tools", [])]


def completion_args(request: dict) -> dict:
    """The request's sampling settings as the Conversations API takes them."""
    args = {"temperature": request.get("temperature"), "max_tokens": request.get("max_tokens"),
            "random_seed": request.get("random_seed"), "tool_choice": request.get("tool_choice")}
    return {k: v for k, v in args.items() if v is not None}


def entries(messages: list[dict]) -> list[dict]:
    """Chat messages as a conversation's input entries (assistant tool calls as function calls)."""
    made = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            made.append({"type": "function.result", "tool_call_id": message["tool_call_id"],
                         "result": str(message.get("content") or "")})
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if c.get("type") == "text")
        if content or not message.get("tool_calls"):
            made.append({"type": "message.input", "role": role, "content": content or ""})
        for call in message.get("tool_calls") or []:
            made.append({"type": "function.call", "tool_call_id": call["id"],
                         "name": call["function"]["name"], "arguments": call["function"]["arguments"]})
    return made


def arguments(action: threads.Action, request: dict) -> tuple[str, dict]:
    """The SDK method (start, append or restart) and its arguments for `action`."""
    inputs = entries(action.messages)
    args = completion_args(request)
    if action.kind == "append":
        return "append", {"conversation_id": action.conversation_id, "inputs": inputs,
                          **({"completion_args": args} if args else {})}
    agent = request.get("agent")
    if action.kind == "restart":
        return "restart", {"conversation_id": action.conversation_id, "from_entry_id": action.from_entry_id,
                           "inputs": inputs, **({"completion_args": args} if args else {}),
                           **({"agent_version": agent["version"]} if agent else {})}
    system = next((m["content"] for m in request["messages"] if m.get("role") == "system"), None)
    start: dict = {"inputs": inputs, "store": True, **({"completion_args": args} if args else {})}
    if agent:
        start.update(agent_id=agent["id"], agent_version=agent["version"])
    else:
        start.update(model=request["model"], tools=wire_tools(request) or None, instructions=system)
    return "start", {k: v for k, v in start.items() if v is not None}


def _gone(exc: BaseException) -> bool:
    from ..errors import is_api_error

    return is_api_error(exc) and getattr(exc, "status_code", None) == 404


def converse(session, request: dict, *, candidate: dict | None, chat=None, view=None, stream=True,
             reuse="cell", on_tool=None):
    """Send one conversation request (or answer it from the cache); returns (answer, failure).

    `candidate` is the link this call may continue from (`threads`); `on_tool(call)` is told
    when a built-in tool starts (to show it). Raises `BudgetExceeded` before sending.
    """
    from ..calls import uses
    from ..calls.cache import identity

    cached = session.responses.serve(request, chat=chat, kind="conversation", reuse=reuse)
    if cached is not None:
        session.last = cached
        return cached, None
    reservation = session.reserve(request)
    try:
        backend = session.backend
        tools_hold = uses.hold(session, [t["type"] for t in request.get("builtins", [])])
    except BaseException:
        reservation.release()
        raise
    where = identity(backend.kind, backend.url)
    call = ConversationCall(session, request, reservation, backend=backend.kind, chat=chat, stream=stream,
                            cache_as=where)
    api = backend.client.beta.conversations
    try:
        if view is not None:
            view.start()
        call.sending()
        with call.recording():
            action = session.threads.plan(call.request, candidate, where)
            try:
                _send(call, api, action, view, stream, on_tool)
            except Exception as exc:  # a conversation the backend lost: start again, once
                if action.kind == "start" or not _gone(exc):
                    raise
                _send(call, api, threads.Action("start", threads.body(call.request["messages"])),
                      view, stream, on_tool)
            call.download(backend.client)
    finally:
        answer = call.settle()
        tools_hold.release()
    session.last = answer
    return answer, call.failure


def _send(call: ConversationCall, api, action: threads.Action, view, stream: bool, on_tool) -> None:
    method, args = arguments(action, call.request)
    if not stream:
        call.take_response(getattr(api, method)(**args))
        return
    with getattr(api, method + "_stream")(**args) as events:
        for event in events:
            brought = call.event(event.data)
            if not brought:
                continue
            if _field(event.data, "type") == "tool.execution.started" and on_tool is not None:
                on_tool(call)
            elif view is not None:
                view.feed(call.parts, call.thinking)
