"""The Session: everything a loaded extension owns (backend, chats, ledger, prices, caches).

It lives in `core` so that `mistral_magic.session()` stays a function.

This module is the Session's state: the settings it reads live, the backend and
prices they select, its chats, ledger, budget, background loop and caches, and the
request bodies a call would send (`build_request`, what a dry run shows) with their
estimates and budget reservations. Sending them is the call path (`calls.path.CallPath`,
mixed in): `Session.ask` is the whole life of a `%%mistral` cell after argument
parsing.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from .calls.backend import (
    Backend,
    BackgroundLoop,
    key_from_environment,
    resolve,
    server_key_from_environment,
)
from .calls.cache import Responses
from .calls.path import CallPath
from .chat import DEFAULT_CHAT, Chats
from .show.answer import Answer

_loaded: Session | None = None


def loaded() -> Session:
    """The Session of the loaded extension (`mistral_magic.session()`, the ``df.mistral``
    accessor)."""
    if _loaded is None:
        from .errors import ConfigError

        raise ConfigError(
            "mistral_magic is not loaded (or was unloaded); run %load_ext mistral_magic first"
        )
    return _loaded


def attach(session: Session | None) -> None:
    """Make `session` the loaded extension's (None: unloaded)."""
    global _loaded
    _loaded = session


class Session(CallPath):
    """Everything one loaded extension owns. Settings are read live from `settings`."""

    def __init__(self, shell, settings):
        self.shell = shell
        self.settings = settings
        self.chats = Chats()
        from .calls.budget import Budget
        from .money.usage import Ledger

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
        # The response cache, the finished rows of row jobs, the ledger across kernels and
        # the batch jobs this folder started, in the folder's store (opened on first use,
        # so loading stays cheap).
        self.responses = Responses(self)
        self.ledger.subscribe(self.responses.persist)
        # Budget holds of batch jobs not yet read back, by job id: they outlive an interrupt
        # and go with the kernel.
        self.batch_holds: dict[str, Any] = {}

    # -- settings-derived state -------------------------------------------------

    @cached_property
    def uploads(self):
        """Documents sent by reference: uploaded once per content and backend, signed when sent
        (`uploads.Uploads`)."""
        from .inputs.uploads import Uploads

        return Uploads(self)

    @cached_property
    def sent(self):
        """What left this kernel, one record per call sent (`calls.sent`, ``%mistral sent``)."""
        from .calls.sent import Sent

        return Sent()

    @cached_property
    def threads(self):
        """Which server-side conversation each conversation call continues (`agents.threads`)."""
        from .agents.threads import Threads

        return Threads(self)

    @cached_property
    def capabilities(self):
        """What each model of the backend can do, from its model cards (`capabilities`)."""
        from .calls.capabilities import Capabilities

        return Capabilities(self)

    @property
    def cache(self):
        """Finished rows of row jobs by request key (get/get_many/put/put_many), so the same
        call again, also after a restart, pays only for the rest (`cache.StoredRows`)."""
        return self.responses.rows

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
        from .money.prices import load_prices

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

        from .show.render import markdown
        from .show.terminal import wrapped

        display(markdown(f"*{text}*", plain=wrapped(text)), raw=True)

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
        think: str | None = None,
        tools: list[dict] | None = None,
        tool_choice: str | dict | None = None,
    ) -> dict:
        """The exact request body a call would send (what --dry-run shows); changes no state.

        `system` and `new` shape this request only; `apply_chat_settings` makes them
        the chat's when the request is really sent. `think` (else `MistralMagics.think`)
        adds the model's reasoning controls (`reasoning.controls`); `tools` the tools'
        definitions and `tool_choice` how the model must use them. `images` are the chunks
        that follow the prompt (`inputs.chunks.CellInputs.chunks`: pictures, and documents by
        reference, which are signed only when the request is sent).
        """
        from .tools.reasoning import controls

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
        model = model or s.model
        request = chat_request(
            model, messages,
            temperature=temperature if temperature is not None else s.temperature,
            max_tokens=max_tokens if max_tokens is not None else s.max_tokens,
            seed=seed, response_format=response_format,
        )
        request.update(controls(model, think if think is not None else s.think))
        if tools:
            request["tools"] = tools
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        return request

    def apply_chat_settings(self, chat: str, *, system: str | None = None, new: bool = False):
        """Make a cell's `--new` / `-s` the chat's own, once its request is really sent."""
        conversation = self.chats.get(chat)
        if new:
            conversation.reset()
        if system is not None:
            conversation.system = system
        return conversation

    def estimate(self, request: dict, batch: bool = False):
        from dataclasses import replace

        from .calls.estimates import estimate_call

        found = estimate_call(
            self.prices, request["model"], request["messages"], tools=request.get("tools"),
            max_tokens=request.get("max_tokens"), batch=batch,
            prompt_tokens=self._attachment_tokens(request),
        )
        heard = self._audio_cost(request, hold=False)
        if heard == 0:
            return found

        def add(cost: float | None) -> float | None:
            return None if cost is None or heard is None else cost + heard

        return replace(found, worst_cost=add(found.worst_cost), prompt_cost=add(found.prompt_cost))

    def _audio_cost(self, request: dict, *, hold: bool = True) -> float | None:
        """What the recordings a chat request carries cost by the minute (0 without any); None
        when unknown. `hold`: under a budget, their length must be known (`BudgetExceeded`)."""
        from .inputs.audio import audio_chunks, billable, seconds_in

        messages = request.get("messages") or []
        if not audio_chunks(messages):
            return 0.0
        seconds = seconds_in(messages)
        if seconds is None and hold and self.budget.limit_usd is not None:
            from .errors import BudgetExceeded

            raise BudgetExceeded("Refused: a recording in this chat (a URL, WEBM or M4A) has a "
                                 "length not known here, so its cost cannot be held under "
                                 "MistralMagics.budget_usd; send it as a FLAC, MP3, OGG or WAV file")
        return None if seconds is None else self.prices.audio_cost(
            request["model"], billable(seconds) + 1 if hold else seconds)

    def _attachment_tokens(self, request: dict, exact: bool = True) -> int | None:
        """The prompt's count when it carries documents or picture URLs (`inputs.chunks.count_prompt`:
        their bounds), else None: the messages are counted as they are."""
        from .inputs.chunks import count_prompt, has_attachments

        if not has_attachments(request["messages"]):
            return None
        return count_prompt(self, request["messages"], request.get("tools"), exact=exact)

    def reserve(self, request: dict, *, exact: bool | None = None, batch: bool = False,
                default_cap: int | None = None, prompt_tokens: int | None = None,
                max_tokens: int | None = None):
        """Hold this request's worst case against the budget (`BudgetExceeded` if it cannot
        afford a useful answer); send `reservation.apply(request)`, then settle it.

        `exact`: the server counts prompts with our tokenizer (the offline server);
        otherwise the prompt is held with a margin. `prompt_tokens` skips a recount;
        `max_tokens` stands in for the request's own (0 for an endpoint that writes none).
        """
        return self.budget.reserve(**self._reservation_args(
            request, exact, batch, default_cap, prompt_tokens, max_tokens))

    async def reserve_async(self, request: dict, *, exact: bool | None = None,
                            batch: bool = False, default_cap: int | None = None,
                            prompt_tokens: int | None = None, max_tokens: int | None = None):
        """`reserve` on the background loop: waits while running calls hold what it needs."""
        return await self.budget.reserve_async(**self._reservation_args(
            request, exact, batch, default_cap, prompt_tokens, max_tokens))

    def _reservation_args(self, request, exact, batch, default_cap, prompt_tokens,
                          max_tokens) -> dict:
        from .calls.estimates import prompt_bound
        from .money.tokens import bound_messages, count_messages

        fixed = self._audio_cost(request)
        if fixed is None and self.budget.limit_usd is not None:
            from .calls.budget import _unpriced

            raise _unpriced(request["model"], self.budget.limit_usd, self.ledger.spent)
        if prompt_tokens is None and self.budget.limit_usd is None:
            # Nothing is held without a limit: the count only stands in for usage the
            # server does not report, so it is taken then, not before the first send.
            def count() -> int:
                counted = self._attachment_tokens(request, exact is not False)
                return (count_messages(request["messages"], request.get("tools"))
                        if counted is None else counted)

            return dict(
                prices=self.prices, model=request["model"], prompt_tokens=count,
                max_tokens=request.get("max_tokens") if max_tokens is None else max_tokens,
                batch=batch, n=request.get("n") or 1, default_cap=default_cap,
                fixed_cost=fixed or 0.0,
            )
        if exact is None:
            exact = self.backend_spec().kind == "offline"
        if prompt_tokens is None:
            prompt_tokens = self._attachment_tokens(request, exact)
        args = dict(prices=self.prices, model=request["model"],
                    max_tokens=request.get("max_tokens") if max_tokens is None else max_tokens,
                    batch=batch, n=request.get("n") or 1, default_cap=default_cap,
                    fixed_cost=fixed or 0.0)
        bound = None if prompt_tokens is not None else bound_messages(request["messages"],
                                                                       request.get("tools"))
        if bound is not None:
            # Held at a bound from the prompt's bytes; counted (the vocabulary loaded) only
            # when that bound would refuse or cap the call, else after it, if ever needed.
            def exact_count() -> int:
                return count_messages(request["messages"], tools=request.get("tools"))

            def recount() -> tuple[int, int]:
                counted = exact_count()
                return prompt_bound(counted, exact), counted

            return {**args, "prompt_tokens": prompt_bound(bound, exact),
                    "exact_prompt": exact_count, "recount": recount}
        if prompt_tokens is None:
            prompt_tokens = count_messages(request["messages"], tools=request.get("tools"))
        return {**args, "prompt_tokens": prompt_bound(prompt_tokens, exact),
                "exact_prompt": prompt_tokens}

    def close(self) -> None:
        """Close the backend's connections, stop the background loop, close the store."""
        if self._backend is not None:
            self._backend.close(self.loop)
            self._backend = None
        self.loop.stop()
        self.responses.close()


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
        if text.startswith("data:") and "," in text[:100] and len(text) > 200:
            # A picture's base64 says nothing to a reader: its type and length do.
            keep = text.index(",") + 1
            return f"{text[:keep]}… [{len(text) - keep:,} characters hidden]"
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
