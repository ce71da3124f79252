"""The call path: send → stream → account → record, the same for every chat-shaped request.

A cell (`ask`, `ask_structured` and its re-asks), the chat panel (`call_async`) and
each row of a row job (`mistral_magic.rows.engine`) go one way:

1. *reserve*: `Session.reserve` holds the call's worst case against the budget (or
   refuses it) and may cap its ``max_tokens``;
2. *send*: through the SDK, streamed or not, in the kernel's thread (`call`) or on
   the background loop (`call_async`, where a `limiter.Pacing` adds the rate limiter
   and the waits a 429 asks for);
3. *account*: tokens the server did not report (an interrupt, a dropped stream) are
   counted, and the cost is priced (prompt tokens the server took from its prompt cache
   at the cached price: a chat's calls carry its ``prompt_cache_key``, `prompt_cache`);
4. *record*: the ledger row is written as the reservation settles, exactly once,
   whether the call finished, failed or was interrupted; a call never sent records
   nothing. A chat call that succeeded is kept in the response cache
   (`cache.Responses.keep`). The turn goes into its chat (`record_turn`) and the
   footer under the answer (`answer.footer`).

Chunks are read as typed events (`events`): text, reasoning (counted with the
tokenizer for the footer; out of the chat's history unless kept) and tool-call pieces
(`answer.tool_calls`). Each step of a ``--tools`` cell is a call (`tools.loop`).

Before all that, a call the response cache may answer (`cache.Responses.serve`: a
cell not yet run in this kernel, or anything while replaying) is answered from it:
no reservation, nothing sent, a ledger row marked cached at $0.

`Call` (`calls.call`) is the part every sender shares; `CallPath` is mixed into
`core.Session`.
`call` and `ask` also send to FIM (``endpoint="fim"``), whose completions stream
and read like chat's; such a request has no messages, so its caller gives its
``prompt_tokens``.
An interrupt in the kernel's thread, or cancelling a task on the loop (the panel's
Stop, an interrupted row job), ends a call as "interrupted" with its partial text;
an SDK, transport or server error ends it as "error" with a one-line message. A cell
then ends as interrupted (`stop_if_interrupted` raises `errors.Interrupted`), after its
partial answer is shown, recorded in the ledger and kept in its chat; the panel's Stop
ends only the panel's answer.
"""

from __future__ import annotations

from ..chat import DEFAULT_CHAT, Turn
from ..errors import APIError, Interrupted
from ..show.answer import Answer, footer, provenance
from .backend import sdk_request
from .cache import Reuse, identity
from .call import Call, run_async


class CallPath:
    """The call path of `core.Session`: `call`/`call_async` send, `ask*` also render and record."""

    def call(self, request: dict, *, chat=None, view=None, stream=True, kind="chat",
             reuse: Reuse = "replay", endpoint: str = "chat", prompt_tokens: int | None = None):
        """Reserve, send one request, and settle it in the ledger; returns (answer, failure).

        `reuse` says when the response cache answers instead (`cache.Responses.serve`).
        Raises `BudgetExceeded` before sending when the budget cannot afford it; with a
        budget the request sent carries the budget's `max_tokens` (`answer.request`).
        `endpoint` is the SDK's "chat" or "fim"; `prompt_tokens` skips counting messages.
        """
        cached = self.responses.serve(request, chat=chat, kind=kind, reuse=reuse)
        if cached is not None:
            self.last = cached
            return cached, None
        reservation = self.reserve(request, prompt_tokens=prompt_tokens)
        try:
            backend = self.backend
        except BaseException:
            reservation.release()
            raise
        call = Call(self, request, reservation, backend=backend.kind, chat=chat, kind=kind,
                    stream=stream, cache_as=identity(backend.kind, backend.url))
        try:
            # Documents are uploaded (once) and signed before anything is shown as sent.
            args = (sdk_request(self.uploads.resolve(call.request, backend)) if endpoint == "chat"
                    else call.request)
            if view is not None:
                view.start()
            call.sending()
            api = getattr(backend.client, endpoint)
            with call.recording():
                if stream:
                    with api.stream(**args) as events:
                        for event in events:
                            if call.absorb(event.data) and view is not None:
                                view.feed(call.parts, call.thinking)
                else:
                    call.take(api.complete(**args))
        finally:
            answer = call.settle()
        self.last = answer
        return answer, call.failure

    async def call_async(self, request: dict, *, backend, reservation, chat=None, on_text=None,
                         kind: str = "chat", stream: bool = True, pacing=None) -> Answer:
        """`call` for the background loop (the chat panel, row jobs), settled once.

        `reservation` is this request's, taken by the caller (the panel takes it in the
        kernel's thread, so that a refusal is raised there). `on_text(parts, thinking)` sees
        the pieces so far. The caller records the turn.
        """
        call = Call(self, request, reservation, backend=backend.kind, chat=chat, kind=kind,
                    stream=stream, cache_as=identity(backend.kind, backend.url))
        options = {} if pacing is None else {"retries": pacing.retries}

        async def send() -> None:
            sent = await self.uploads.resolve_async(call.request, backend)
            args = {**sdk_request(sent), **options}
            if not stream:
                call.take(await backend.client.chat.complete_async(**args))
                return
            events = await backend.client.chat.stream_async(**args)
            async with events:
                async for event in events:
                    if call.absorb(event.data) and on_text is not None:
                        on_text(call.parts, call.thinking)

        return await run_async(call, send, pacing)

    def ask(self, request: dict, *, chat: str | None = DEFAULT_CHAT, view=None,
            stream: bool = True, record_turn: bool = True, cell_id: str | None = None,
            kind: str = "chat", reuse: Reuse = "cell", endpoint: str = "chat",
            prompt_tokens: int | None = None, keep_thinking: bool = False) -> Answer:
        """Send one chat (or FIM) request, render it into `view`, and record it exactly once.

        A cell not yet run in this kernel may be answered from the response cache
        (`reuse="replay"`: only when replaying, as ``--refresh`` asks). Raises `APIError`
        (one line) after recording a failed call; an interrupt ends the call cleanly
        with the partial answer kept and marked. `keep_thinking` keeps the model's reasoning
        in the chat's history (it is left out by default).
        """
        answer, failure = self.call(request, chat=chat, view=view, stream=stream, kind=kind,
                                    reuse=reuse, endpoint=endpoint, prompt_tokens=prompt_tokens)
        if record_turn:
            self.record_turn(answer, request, chat, cell_id, keep_thinking=keep_thinking)
        if view is not None:
            self._finish_text(view, answer)
        self._raise(failure, answer)
        stop_if_interrupted(answer, chat if record_turn else None)
        return answer

    def ask_structured(self, request: dict, *, spec=None, many: bool = False,
                       chat: str | None = DEFAULT_CHAT, view=None, stream: bool = True,
                       cell_id: str | None = None, reuse: Reuse = "cell",
                       keep_thinking: bool = False) -> Answer:
        """JSON mode or a schema: parse the answer; one that does not parse is re-asked with
        the validation error, up to `MistralMagics.reasks` times.

        `answer.value` is a DataFrame (a schema's records, typed by it; JSON records), or
        a dict for JSON that is not records. When the last answer is not valid either,
        `StructuredOutputError` keeps the raw text.
        """
        from ..errors import BudgetExceeded, StructuredOutputError
        from ..structured.frames import json_value
        from ..structured.reask import Reasks

        def parse(text: str):
            return json_value(text) if spec is None else spec.to_frame(spec.parse(text, many=many))

        loop = Reasks(request, parse, self.settings.reasks)
        answer, failure = self.call(request, chat=chat, view=view, stream=stream, reuse=reuse)
        error = None
        while failure is None and answer.status == "ok":
            try:
                retry = loop.after(answer.text)
            except StructuredOutputError as exc:
                error = exc
                answer.status, answer.error = "error", str(exc)
                break
            if retry is None:
                answer.value = loop.value
                break
            try:
                answer, failure = self.call(retry, chat=chat, view=view, stream=stream,
                                            reuse=reuse)
            except BudgetExceeded:
                # The re-ask is a call like any other: refused, the answer before it stays.
                answer.status, answer.error = "error", str(loop.error)
                self.record_turn(answer, request, chat, cell_id, keep_thinking=keep_thinking)
                if view is not None:
                    self._finish_text(view, answer, f"\n\n*⚠ {loop.error}; the re-ask was refused*")
                raise
        self.record_turn(answer, request, chat, cell_id, keep_thinking=keep_thinking)
        self.last = answer
        if view is not None:
            if answer.status == "ok":
                view.finish_value(answer.value, self.footer(answer), provenance(answer),
                                  thinking=answer.thinking, thinking_tokens=answer.thinking_tokens)
            else:
                invalid = f"\n\n*⚠ still not valid {loop.said}: {error}*" if error else None
                self._finish_text(view, answer, invalid)
        if error is not None:
            raise StructuredOutputError(
                f"{error} ({loop.said}; raw text in mistral_magic.session().last.text)",
                raw=answer.text,
            )
        self._raise(failure, answer)
        stop_if_interrupted(answer, chat)
        return answer

    def record_turn(self, answer: Answer, request: dict, chat: str | None, cell_id, *,
                    keep_thinking: bool = False):
        """Put a call's turn in its chat (replacing the cell's earlier turn); returns it.

        The turn holds the whole exchange (tool calls and results before the reply), and
        the reply's reasoning only with `keep_thinking`.
        """
        if chat is None:
            return None
        if answer.status == "interrupted" and not answer.text:
            # Stopped before any text: nothing to continue from, so the cell keeps no turn.
            found = self.chats.find(chat)
            if found is not None:
                found.forget(cell_id)
            return None
        user = _user_message(request)["content"]
        prompt, images = (user, []) if isinstance(user, str) else _split_content(user)
        final = answer.thinking if answer.final_thinking is None else answer.final_thinking
        return self.chats.get(chat).record(
            Turn(
                prompt=prompt, answer=answer.reply, cell_id=cell_id, status=answer.status,
                model=answer.model, prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens, cost=answer.cost,
                error=answer.error, images=images, thinking=answer.thinking,
                thinking_tokens=answer.thinking_tokens,
                kept_thinking=final if keep_thinking else "",
                exchange=list(answer.exchange), tools=list(answer.tool_runs),
                banner=answer.banner, footer=self.footer(answer),
            )
        )

    def footer(self, answer: Answer) -> str:
        """The line under an answer, with the session's totals and the budget left."""
        return footer(answer, self.ledger.totals(), self.budget.remaining())

    def provenance(self, answer: Answer) -> dict:
        """Output metadata: where the answer came from. Never a key."""
        return provenance(answer)

    def _finish_text(self, view, answer: Answer, mark: str | None = None) -> None:
        """The final render: the answer, or what arrived before an interrupt or failure."""
        if answer.status == "error" and not answer.text:
            view.clear()
            return
        mark = answer.mark if mark is None else mark
        view.finish(answer.text + mark, self.footer(answer), provenance(answer),
                    thinking=answer.thinking, thinking_tokens=answer.thinking_tokens)

    def _raise(self, failure: BaseException | None, answer: Answer) -> None:
        if failure is None:
            return
        if self.settings.debug:
            raise failure
        raise APIError(answer.error, getattr(failure, "status_code", None)) from failure


def stop_if_interrupted(answer: Answer, chat: str | None) -> None:
    """After the kernel's interrupt, with the partial answer shown and recorded: end the cell
    as interrupted (`Interrupted`), in one line saying what was kept."""
    if answer.status != "interrupted":
        return
    from ..money.usage import format_tokens

    if not answer.text:
        kept = f"; nothing was kept in chat {chat!r}" if chat is not None else ""
        raise Interrupted(f"Stopped before any answer arrived{kept}", partial=answer)
    arrived = f"Stopped after {format_tokens(answer.completion_tokens or 0)} answer tokens"
    if chat is None:
        raise Interrupted(f"{arrived}; the partial answer is shown above", partial=answer)
    raise Interrupted(f"{arrived}; the partial answer is kept in chat {chat!r}, marked "
                      "interrupted, so a next cell can ask to continue", partial=answer)


def _user_message(request: dict) -> dict:
    """The cell's own message: the last user message (a tool step's request ends with tools)."""
    return next(m for m in reversed(request["messages"]) if m.get("role") == "user")


def _split_content(chunks: list) -> tuple[str, list[dict]]:
    """A user message's text, and what came with it (pictures, documents) for the turn to keep."""
    text = "".join(c.get("text", "") for c in chunks if c.get("type") == "text")
    attached = [c for c in chunks if c.get("type") != "text"]
    return text, attached
