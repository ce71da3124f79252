"""The Session: everything a loaded extension owns (backend, chats, ledger, prices, cache).

It lives in `core` so that `mistral_magic.session()` stays a function.

`Session.ask` is the whole life of a `%%mistral` cell after argument parsing: build
the messages, estimate and check the budget, send through the SDK (streamed or
not), render, and then record the turn and the ledger row exactly once, whether the
call finished, failed or was interrupted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .backend import (
    Backend,
    BackgroundLoop,
    key_from_environment,
    resolve,
    sdk_request,
    server_key_from_environment,
)
from .chat import Chats, Turn
from .errors import APIError, user_message

DEFAULT_CHAT = "default"
INTERRUPTED_MARK = "\n\n*⏹ interrupted — partial answer*"
FAILED_MARK = "\n\n*⚠ the answer broke off — partial answer, not kept as context*"


@dataclass
class Answer:
    """The result of one call: text, usage, cost, timings and how it ended."""

    text: str
    model: str
    chat: str | None
    status: str  # ok | error | interrupted
    request: dict
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str | None = None
    backend: str = "offline"
    error: str | None = None
    budget_capped: bool = False  # max_tokens was the budget's cap, not the user's
    value: Any = None  # the parsed result in --json / --schema modes
    raw: dict = field(default_factory=dict)
    streamed: bool = True

    def __str__(self) -> str:
        return self.text

    @property
    def tokens_per_s(self) -> float | None:
        # Without a stream the whole answer arrives at once: there is no speed to measure.
        if not self.streamed or not self.completion_tokens or self.latency_s is None:
            return None
        generating = self.latency_s - (self.ttft_s or 0.0)
        return self.completion_tokens / generating if generating > 0 else None


class Session:
    """Everything one loaded extension owns. Settings are read live from `settings`."""

    def __init__(self, shell, settings):
        self.shell = shell
        self.settings = settings
        self.chats = Chats()
        from .budget import Budget
        from .usage import Ledger

        self.ledger = Ledger()
        # The hard cap every call reserves against; the limit is read live from the settings.
        self.budget = Budget(lambda: self.settings.budget_usd, self.ledger)
        self.loop = BackgroundLoop()
        self.cell_id: str | None = None
        self.last: Answer | None = None
        self._key: str | None = None
        self._backend: Backend | None = None
        self._backend_for: tuple | None = None
        self._prices = None
        self._prices_for: Any = None
        self._notices: set[str] = set()
        # Extraction results by request, so re-running an extraction pays only for the rest.
        self.cache: dict[str, dict] = {}
        self.batch_jobs: dict[str, str] = {}
        # Budget holds of batch jobs not yet read back, by job id (they outlive an interrupt).
        self.batch_holds: dict[str, Any] = {}

    # -- settings-derived state -------------------------------------------------

    @property
    def key(self) -> str | None:
        return self._key or key_from_environment()

    @property
    def server_key(self) -> str | None:
        """A self-hosted server's key: MistralMagics.server_key, else MISTRAL_SERVER_KEY."""
        return self.settings.server_key or server_key_from_environment()

    def set_key(self, key: str | None) -> None:
        """Keep a key in memory only (from `%mistral key`); the backend follows."""
        self._key = key.strip() if key else None

    def __repr__(self) -> str:
        chats = ", ".join(self.chats.names()) or "none"
        return f"<mistral_magic Session backend={self.backend_spec().kind} chats=[{chats}]>"

    def backend_spec(self):
        s = self.settings
        return resolve(s.backend, s.server, s.server_url, self.key)

    @property
    def backend(self) -> Backend:
        """The backend the settings select, rebuilt when a setting or the key changes."""
        s = self.settings
        spec = self.backend_spec()
        server_key = self.server_key
        wanted = (spec, self.key, server_key, s.max_retries, s.timeout_s)
        if self._backend is None or self._backend_for != wanted:
            if self._backend is not None:
                self._backend.close(self.loop)
            self._backend = Backend(spec, self.key, s.max_retries, s.timeout_s,
                                    server_key=server_key)
            self._backend_for = wanted
            if self._backend.kind == "offline":
                self.notice(
                    "offline",
                    "mistral_magic: no Mistral API key found, so answers come from the built-in "
                    "offline server (local, deterministic, free). Set one with `%mistral key` "
                    "or `MISTRAL_API_KEY` to use La Plateforme.",
                )
        return self._backend

    @property
    def prices(self):
        from .prices import load_prices

        overrides = dict(self.settings.prices or {})
        if self._prices is None or self._prices_for != overrides:
            self._prices = load_prices(overrides)
            self._prices_for = overrides
        return self._prices

    def notice(self, name: str, text: str) -> None:
        """Show a one-line notice once per session."""
        if name in self._notices:
            return
        self._notices.add(name)
        from IPython.display import display

        from .render import markdown

        display(markdown(f"*{text}*", plain=text), raw=True)

    # -- requests ----------------------------------------------------------------

    def build_request(
        self,
        prompt: str,
        *,
        chat: str = DEFAULT_CHAT,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        history: bool = True,
        new: bool = False,
        images: list[dict] | None = None,
        response_format: dict | None = None,
        cell_id: str | None = None,
    ) -> dict:
        """The exact request body a call would send (what --dry-run shows); changes no state.

        `system` and `new` shape this request only; `apply_chat_settings` makes them
        the chat's when the request is really sent.
        """
        s = self.settings
        conversation = self.chats.find(chat)
        if system is None and conversation is not None:
            system = conversation.system
        if history and not new and conversation is not None:
            messages = conversation.context(cell_id, system=system)
        else:
            messages = [{"role": "system", "content": system}] if system else []
        content: Any = prompt
        if images:
            content = [{"type": "text", "text": prompt}, *images]
        messages.append({"role": "user", "content": content})
        return chat_request(
            model or s.model, messages,
            temperature=temperature if temperature is not None else s.temperature,
            max_tokens=max_tokens if max_tokens is not None else s.max_tokens,
            seed=seed, response_format=response_format,
        )

    def apply_chat_settings(self, chat: str, *, system: str | None = None, new: bool = False):
        """Make a cell's `--new` / `-s` the chat's own, once its request is really sent."""
        conversation = self.chats.get(chat)
        if new:
            conversation.reset()
        if system is not None:
            conversation.system = system
        return conversation

    def estimate(self, request: dict, batch: bool = False):
        from .estimates import estimate_call

        return estimate_call(
            self.prices, request["model"], request["messages"], tools=request.get("tools"),
            max_tokens=request.get("max_tokens"), batch=batch,
        )

    def reserve(self, request: dict, *, exact: bool | None = None, batch: bool = False,
                default_cap: int | None = None, prompt_tokens: int | None = None):
        """Hold this request's worst case against the budget (`BudgetExceeded` if it cannot
        afford a useful answer); send `reservation.apply(request)`, then settle it.

        `exact`: the server counts prompts with our tokenizer (the offline server);
        otherwise the prompt is held with a margin. `prompt_tokens` skips a recount.
        """
        return self.budget.reserve(**self._reservation_args(request, exact, batch, default_cap,
                                                            prompt_tokens))

    async def reserve_async(self, request: dict, *, exact: bool | None = None,
                            batch: bool = False, default_cap: int | None = None,
                            prompt_tokens: int | None = None):
        """`reserve` on the background loop: waits while running calls hold what it needs."""
        return await self.budget.reserve_async(
            **self._reservation_args(request, exact, batch, default_cap, prompt_tokens))

    def _reservation_args(self, request, exact, batch, default_cap, prompt_tokens) -> dict:
        from .estimates import prompt_bound
        from .tokens import count_messages

        if prompt_tokens is None:
            prompt_tokens = count_messages(request["messages"], tools=request.get("tools"))
        if exact is None:
            exact = self.backend_spec().kind == "offline"
        return dict(
            prices=self.prices, model=request["model"],
            prompt_tokens=prompt_bound(prompt_tokens, exact), exact_prompt=prompt_tokens,
            max_tokens=request.get("max_tokens"), batch=batch, n=request.get("n") or 1,
            default_cap=default_cap,
        )

    def ask(
        self,
        request: dict,
        *,
        chat: str | None = DEFAULT_CHAT,
        view=None,
        stream: bool = True,
        record_turn: bool = True,
        cell_id: str | None = None,
        kind: str = "chat",
    ) -> Answer:
        """Send one chat request, render it into `view`, and record it exactly once.

        Raises `APIError` (one line) after recording a failed call; an interrupt ends
        the call cleanly with the partial answer kept and marked.
        """
        answer, failure = self.call(request, chat=chat, view=view, stream=stream, kind=kind)
        if record_turn:
            self.record_turn(answer, request, chat, cell_id)
        if view is not None:
            self._finish_text(view, answer)
        self._raise(failure, answer)
        return answer

    def _finish_text(self, view, answer: Answer, mark: str | None = None) -> None:
        """The final render: the answer, or what arrived before an interrupt or failure."""
        if answer.status == "error" and not answer.text:
            view.clear()
            return
        if mark is None:
            mark = {"interrupted": INTERRUPTED_MARK, "error": FAILED_MARK}.get(answer.status, "")
        view.finish(answer.text + mark, self.footer(answer), self.provenance(answer))

    def ask_structured(
        self,
        request: dict,
        *,
        spec=None,
        many: bool = False,
        chat: str | None = DEFAULT_CHAT,
        view=None,
        stream: bool = True,
        cell_id: str | None = None,
    ) -> Answer:
        """JSON mode or a schema: parse the answer, re-ask once with the validation error.

        `answer.value` is a DataFrame (a schema's records, typed by it; JSON records), or
        a dict for JSON that is not records. When
        the second answer is not valid either, `StructuredOutputError` keeps the raw text.
        """
        from .errors import BudgetExceeded, StructuredOutputError
        from .structured import json_value, reask_request

        def parse(text: str):
            if spec is not None:
                return spec.to_frame(spec.parse(text, many=many))
            return json_value(text)

        answer, failure = self.call(request, chat=chat, view=view, stream=stream)
        error = None
        if failure is None and answer.status == "ok":
            try:
                answer.value = parse(answer.text)
            except StructuredOutputError as exc:
                retry = reask_request(request, answer.text, exc)
                try:
                    answer, failure = self.call(retry, chat=chat, view=view, stream=stream)
                except BudgetExceeded:
                    # The re-ask is a call like any other: refused, the first answer stays.
                    answer.status, answer.error = "error", str(exc)
                    self.record_turn(answer, request, chat, cell_id)
                    if view is not None:
                        self._finish_text(view, answer, f"\n\n*⚠ {exc}; the re-ask was refused*")
                    raise
                if failure is None and answer.status == "ok":
                    try:
                        answer.value = parse(answer.text)
                    except StructuredOutputError as again:
                        error = again
                        answer.status, answer.error = "error", str(again)
        self.record_turn(answer, request, chat, cell_id)
        self.last = answer
        if view is not None:
            if answer.status == "ok":
                view.finish_value(answer.value, self.footer(answer), self.provenance(answer))
            else:
                invalid = f"\n\n*⚠ still not valid after one re-ask: {error}*" if error else None
                self._finish_text(view, answer, invalid)
        if error is not None:
            raise StructuredOutputError(
                f"{error} (after one re-ask; raw text in mistral_magic.session().last.text)",
                raw=answer.text,
            )
        self._raise(failure, answer)
        return answer

    def call(self, request: dict, *, chat=None, view=None, stream=True, kind="chat"):
        """Reserve, send one request, and settle it in the ledger; returns (answer, failure).

        Raises `BudgetExceeded` before sending when the budget cannot afford it; with a
        budget the request sent carries the budget's `max_tokens` (`answer.request`).
        """
        reservation = self.reserve(request)
        try:
            backend = self.backend
        except BaseException:
            reservation.release()
            raise
        request = reservation.apply(request)
        answer = Answer(
            text="", model=request["model"], chat=chat, status="ok", request=request,
            backend=backend.kind, budget_capped=reservation.capped,
        )
        failure: BaseException | None = None
        try:
            if view is not None:
                view.start()
            started = time.perf_counter()
            try:
                if stream:
                    self._stream(backend, request, answer, view, started)
                else:
                    self._complete(backend, request, answer)
            except KeyboardInterrupt:
                answer.status = "interrupted"
            except Exception as exc:  # SDK, transport or server errors: recorded, then one line
                answer.status = "error"
                answer.error = user_message(exc, request["model"])
                failure = exc
            answer.latency_s = time.perf_counter() - started
            self._account(answer, reservation.prompt_tokens)
        finally:
            reservation.settle(self._call_record(answer, chat, kind))
        self.last = answer
        return answer, failure

    def _raise(self, failure: BaseException | None, answer: Answer) -> None:
        if failure is None:
            return
        if self.settings.debug:
            raise failure
        raise APIError(answer.error, getattr(failure, "status_code", None)) from failure

    def _stream(self, backend, request, answer, view, started) -> None:
        parts: list[str] = []
        try:
            with backend.client.chat.stream(**sdk_request(request)) as events:
                for event in events:
                    if _absorb(event.data, answer, parts, started) and view is not None:
                        view.feed(parts)
        finally:
            # Whatever arrived is the answer, also when an interrupt or error ends the stream.
            answer.text = "".join(parts)

    async def call_async(self, request: dict, *, backend, reservation, chat=None, on_text=None,
                         kind: str = "chat") -> Answer:
        """`call` for the background loop (chat panel): the SDK's async stream, settled once.

        `reservation` is this request's, taken by the caller in the kernel's thread (so
        a refusal is raised there); it is settled here whatever happens. `on_text(parts)`
        sees the pieces so far. Cancelling the task (Stop) ends the call as interrupted
        with its partial text; an error ends it as "error" with a one-line message.
        The caller records the turn.
        """
        request = reservation.apply(request)
        started = time.perf_counter()
        answer = Answer(text="", model=request["model"], chat=chat, status="ok", request=request,
                        backend=backend.kind, budget_capped=reservation.capped)
        parts: list[str] = []
        try:
            try:
                stream = await backend.client.chat.stream_async(**sdk_request(request))
                async with stream as events:
                    async for event in events:
                        if _absorb(event.data, answer, parts, started) and on_text is not None:
                            on_text(parts)
            except asyncio.CancelledError:
                # Stop: the partial answer is the result; the task ends normally so the turn
                # and the ledger row are written and the caller's Future gets them.
                answer.status = "interrupted"
            except Exception as exc:  # SDK, transport or server errors: recorded, one line
                answer.status = "error"
                answer.error = user_message(exc, request["model"])
                await close_error_response(exc)
            answer.text = "".join(parts)
            answer.latency_s = time.perf_counter() - started
            self._account(answer, reservation.prompt_tokens)
        finally:
            reservation.settle(self._call_record(answer, chat, kind))
        return answer

    def _complete(self, backend, request, answer) -> None:
        started = time.perf_counter()
        answer.streamed = False
        response = backend.client.chat.complete(**sdk_request(request))
        answer.ttft_s = time.perf_counter() - started
        choice = response.choices[0]
        answer.text = _text_of(choice.message.content)
        answer.finish_reason = str(choice.finish_reason) if choice.finish_reason else None
        answer.prompt_tokens = response.usage.prompt_tokens
        answer.completion_tokens = response.usage.completion_tokens

    def _account(self, answer: Answer, prompt_tokens: int) -> None:
        """Fill tokens the server did not report (interrupts, drops) from counts, then cost."""
        from .tokens import count_text

        if answer.status == "error" and not answer.text:
            answer.prompt_tokens = answer.prompt_tokens or 0
            answer.completion_tokens = answer.completion_tokens or 0
        if answer.prompt_tokens is None:
            answer.prompt_tokens = prompt_tokens
        if answer.completion_tokens is None:
            answer.completion_tokens = count_text(answer.text)
        answer.cost = self.prices.cost(
            answer.model, answer.prompt_tokens, answer.completion_tokens
        )

    def _call_record(self, answer: Answer, chat: str | None, kind: str):
        from .usage import CallRecord

        return CallRecord(
            model=answer.model, chat=chat, kind=kind, prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens, cost=answer.cost,
            latency_s=answer.latency_s, ttft_s=answer.ttft_s, status=answer.status,
            backend=answer.backend, error=answer.error,
        )

    def record_turn(self, answer: Answer, request: dict, chat: str | None, cell_id):
        """Put a call's turn in its chat (replacing the cell's earlier turn); returns it."""
        if chat is None:
            return None
        user = request["messages"][-1]["content"]
        prompt, images = (user, []) if isinstance(user, str) else _split_content(user)
        return self.chats.get(chat).record(
            Turn(
                prompt=prompt, answer=answer.text, cell_id=cell_id, status=answer.status,
                model=answer.model, prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens, cost=answer.cost,
                error=answer.error, images=images,
            )
        )

    # -- what users see ------------------------------------------------------------

    def footer(self, answer: Answer) -> str:
        from .usage import format_cost, format_tokens

        totals = self.ledger.totals()
        parts = [
            answer.model,
            f"{format_tokens(answer.prompt_tokens)} in / {format_tokens(answer.completion_tokens)} out",
            format_cost(answer.cost),
        ]
        if answer.ttft_s is not None:
            parts.append(f"first token {answer.ttft_s:.2f} s")
        if answer.tokens_per_s:
            parts.append(f"{answer.tokens_per_s:,.0f} tok/s")
        parts.append(answer.backend)
        if answer.chat:
            parts.append(f"chat {answer.chat}")
        session = f"session {format_cost(totals['cost'])}"
        if answer.cost is None and not totals.get("cost_known", True):
            # Said on the call whose price is unknown; later footers do not repeat it
            # (the meter and %mistral usage keep the full account).
            session += " + unknown"
        calls = totals['calls']
        parts.append(f"{session} over {calls} call{'' if calls == 1 else 's'}")
        if answer.finish_reason == "length":
            if answer.budget_capped:
                left = self.budget.remaining()
                parts.append(f"cut by budget ({format_cost(left or 0.0)} left)")
            else:
                parts.append("cut at max_tokens")
        return " · ".join(parts)

    def provenance(self, answer: Answer) -> dict:
        """Output metadata: where the answer came from. Never a key."""
        request = answer.request
        params = {k: request[k] for k in ("temperature", "max_tokens", "random_seed") if k in request}
        return {
            "model": answer.model,
            "params": params,
            "seed": request.get("random_seed"),
            "chat": answer.chat,
            "status": answer.status,
            "finish_reason": answer.finish_reason,
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            },
            "cost_usd": answer.cost,
            "latency_s": round(answer.latency_s or 0.0, 4),
            "ttft_s": None if answer.ttft_s is None else round(answer.ttft_s, 4),
            "backend": answer.backend,
            "version": __version__,
        }

    def close(self) -> None:
        """Close the backend's connections, then stop the background loop."""
        if self._backend is not None:
            self._backend.close(self.loop)
            self._backend = None
        self.loop.stop()


def chat_request(model: str, messages: list[dict], *, temperature=None, max_tokens=None,
                 seed=None, response_format=None) -> dict:
    """A chat request body; parameters left as None are not sent (the model's defaults apply)."""
    request: dict[str, Any] = {"model": model, "messages": messages}
    optional = {"temperature": temperature, "max_tokens": max_tokens, "random_seed": seed,
                "response_format": response_format}
    request.update({k: v for k, v in optional.items() if v is not None})
    return request


PREVIEW_HEAD = 1500
PREVIEW_TAIL = 500


def preview_request(request: dict, head: int = PREVIEW_HEAD, tail: int = PREVIEW_TAIL) -> dict:
    """A copy of a request for showing: each long text keeps its head and tail, the rest counted."""

    def cut(text: str) -> str:
        hidden = len(text) - head - tail
        if hidden <= 0:
            return text
        return f"{text[:head]}\n… [{hidden:,} characters hidden] …\n{text[-tail:]}"

    def bound(value: Any) -> Any:
        if isinstance(value, str):
            return cut(value)
        if isinstance(value, list):
            return [bound(v) for v in value]
        if isinstance(value, dict):
            return {k: bound(v) for k, v in value.items()}
        return value

    messages = [{**m, "content": bound(m.get("content"))} for m in request["messages"]]
    return {**request, "messages": messages}


def _absorb(chunk, answer: Answer, parts: list[str], started: float) -> bool:
    """Take one stream chunk into the answer; True when it brought text."""
    if chunk.usage is not None:
        answer.prompt_tokens = chunk.usage.prompt_tokens
        answer.completion_tokens = chunk.usage.completion_tokens
    brought = False
    for choice in chunk.choices:
        if choice.finish_reason:
            answer.finish_reason = str(choice.finish_reason)
        piece = _text_of(choice.delta.content)
        if piece:
            if answer.ttft_s is None:
                answer.ttft_s = time.perf_counter() - started
            parts.append(piece)
            brought = True
    return brought


async def close_error_response(exc: BaseException) -> None:
    """Close the response an SDK error left open, so it is not finalised after the loop ends."""
    response = getattr(exc, "raw_response", None)
    if response is not None:
        try:
            await response.aclose()
        except Exception:  # already broken: nothing more to release
            pass


def _text_of(content: Any) -> str:
    """Text of a message or delta content: a string, or chunks (thinking chunks skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for chunk in content:
        kind = getattr(chunk, "type", None) or (chunk.get("type") if isinstance(chunk, dict) else None)
        if kind == "text":
            out.append(getattr(chunk, "text", None) or chunk.get("text", ""))
    return "".join(out)


def _split_content(chunks: list) -> tuple[str, list[dict]]:
    text = "".join(c.get("text", "") for c in chunks if c.get("type") == "text")
    images = [c for c in chunks if c.get("type") == "image_url"]
    return text, images
