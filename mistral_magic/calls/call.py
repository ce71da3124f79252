"""One call from its reservation to its ledger row: what every way of sending shares.

`Call` holds a request, its budget reservation and the `Answer` it becomes: it takes
stream chunks (text, reasoning and tool-call events) or a whole response, counts the
tokens the server did not report (an interrupt, a dropped stream), prices them (per
token, per page for OCR, per minute of audio heard, per character spoken, or per use of a
service such as a library's document processing; prompt tokens the server took from its
prompt cache at the cached price, `prompt_cache`) and settles the reservation with one
ledger row, exactly
once, whether the call finished, failed or was interrupted; a call never sent records
nothing. `run_async` runs a send on the background loop and settles it. The call path
(`calls.path`) and the row engine build on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import user_message
from ..show.answer import Answer
from .backend import close_error_response
from .events import ToolCalls, delta_events
from .prompt_cache import cached_tokens, keyed
from .sent import record as record_sent


class Call:
    """One call from its reservation to its ledger row: what every way of sending shares."""

    def __init__(self, session, request: dict, reservation, *, backend: str, chat=None,
                 kind: str = "chat", stream: bool = True, cache_as: str | None = None):
        self.session = session
        self.reservation = reservation
        self.kind = kind
        self.asked = request
        # The backend's `cache.identity` when the answer is kept in the response cache.
        self.cache_as = cache_as
        # A chat's calls carry its prompt_cache_key as sent; `asked` (the cache's key) does not.
        self.request = keyed(session, reservation.apply(request), chat)
        self.answer = Answer(text="", model=self.request["model"], chat=chat, status="ok",
                             request=self.request, backend=backend,
                             budget_capped=reservation.capped, streamed=stream)
        self.parts: list[str] = []
        self.thinking: list[str] = []
        self.calls = ToolCalls()
        self.failure: BaseException | None = None
        self.per_page = False  # priced per page (OCR): `expect_pages` was called
        self.per_use: str | None = None  # priced per use of this service: `expect_uses` was called
        self.use_count = 0
        self.paged = False  # the server reported the pages it read
        self.audio = False  # audio priced per minute: `expect_audio` was called
        self.heard = False  # the server reported the seconds it heard
        self.sent = False
        self.started = time.perf_counter()
        if self.kind != "transcribe" and "messages" in request:
            from ..inputs.audio import audio_chunks, seconds_in

            if audio_chunks(request["messages"]):  # a model that listens: minutes besides tokens
                self.expect_audio(seconds_in(request["messages"]))

    def sending(self) -> None:
        """The request goes now (again, after a 429): it counts from here."""
        self.sent = True
        self.started = time.perf_counter()

    def absorb(self, chunk) -> bool:
        """Take one stream chunk into the answer; True when it brought text or reasoning."""
        answer = self.answer
        if chunk.usage is not None:
            answer.prompt_tokens = chunk.usage.prompt_tokens
            answer.completion_tokens = chunk.usage.completion_tokens
            if self.audio:
                self.take_audio(audio_seconds(chunk.usage))
            answer.cached_tokens = cached_tokens(chunk.usage)
        brought = False
        for choice in chunk.choices:
            if choice.finish_reason:
                answer.finish_reason = str(choice.finish_reason)
            delta = choice.delta
            content = getattr(delta, "content", None)
            if type(content) is str and not getattr(delta, "tool_calls", None):
                # Most chunks are a piece of text and nothing else: taken here directly.
                if content:
                    if answer.ttft_s is None:
                        answer.ttft_s = time.perf_counter() - self.started
                    self.parts.append(content)
                    brought = True
                continue
            brought = self._events(delta) or brought
        return brought

    def _events(self, delta) -> bool:
        """Sort one delta's (or message's) events; True when it brought text or reasoning."""
        brought = False
        for event in delta_events(delta):
            if event.kind == "tool_call":
                self.calls.add(event)
                continue
            if self.answer.ttft_s is None:
                self.answer.ttft_s = time.perf_counter() - self.started
            (self.parts if event.kind == "text" else self.thinking).append(event.text)
            brought = True
        return brought

    def take(self, response) -> None:
        """Take a whole chat response (not streamed)."""
        answer = self.answer
        answer.ttft_s = time.perf_counter() - self.started
        choice = response.choices[0]
        self.parts = []
        self._events(choice.message)
        answer.finish_reason = str(choice.finish_reason) if choice.finish_reason else None
        self.take_usage(response.usage.prompt_tokens, response.usage.completion_tokens)
        if self.audio:
            self.take_audio(audio_seconds(response.usage))
        answer.cached_tokens = cached_tokens(response.usage)

    def take_usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """The usage the server reported (any endpoint)."""
        self.answer.prompt_tokens = prompt_tokens
        self.answer.completion_tokens = completion_tokens

    def expect_pages(self, pages: int | None, annotated: bool = False) -> None:
        """Price this call per page (OCR): `pages` stands until the server reports its own
        (what an interrupted call is taken to have read; None when unknown)."""
        self.answer.pages = pages
        self.answer.annotated = annotated
        self.per_page = True

    def take_pages(self, pages: int, annotated: bool = False) -> None:
        """The pages the server reports it read (OCR's ``usage_info.pages_processed``)."""
        self.expect_pages(pages, annotated)
        self.paged = True

    def expect_audio(self, seconds: float | None) -> None:
        """Price this call's audio per minute: `seconds` (measured here) stand until the server
        reports its own (what an interrupted call is taken to have heard; None: unknown)."""
        self.answer.audio_seconds = seconds
        self.audio = True

    def take_audio(self, seconds: float | None) -> None:
        """The seconds the server reports it heard (``usage.prompt_audio_seconds``)."""
        if seconds is not None:
            self.expect_audio(seconds)
            self.heard = True

    def expect_characters(self, characters: int) -> None:
        """Price this call per character spoken (speech): those it sends."""
        self.answer.characters = characters

    def expect_uses(self, service: str, count: int = 1) -> None:
        """Price this call per use of `service` (a library's document processing), not by tokens."""
        self.per_use, self.use_count = service, count

    def interrupted(self) -> None:
        self.answer.status = "interrupted"

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Around a synchronous send: an interrupt or an SDK, transport or server error is
        recorded on the answer (the caller raises it, as one line, after `settle`)."""
        try:
            yield
        except KeyboardInterrupt:
            self.interrupted()
        except Exception as exc:
            self.failed(exc)

    def failed(self, exc: BaseException) -> None:
        self.answer.status = "error"
        self.answer.error = user_message(exc, self.answer.model)
        self.failure = exc

    def settle(self) -> Answer:
        """Account for what the call used and put it in the ledger as its hold is given back."""
        answer = self.answer
        if not self.sent:  # stopped before it went: nothing was used, nothing is recorded
            self.reservation.release()
            return answer
        try:
            # Whatever arrived is the answer, also when an interrupt or error ended it.
            answer.text = "".join(self.parts)
            answer.thinking = "".join(self.thinking)
            answer.tool_calls = self.calls.calls()
            answer.latency_s = time.perf_counter() - self.started
            self._account()
        finally:
            self.reservation.settle(*self._records())
            record_sent(self)  # what left the kernel (`sent`): never a key or a signed URL
        if self.cache_as is not None and answer.status == "ok":
            self.session.responses.keep(self)
        return answer

    def _account(self) -> None:
        """Fill tokens the server did not report (interrupts, drops) from counts, then cost."""
        from ..money.tokens import THINK_MARKERS, count_text

        answer = self.answer
        if self.per_use is not None:
            if answer.status == "error":
                self.use_count = 0  # refused or failed: nothing was processed
            answer.prompt_tokens, answer.completion_tokens = 0, 0
            answer.cost = self.session.prices.use_cost(self.per_use, self.use_count)
            return
        if self.per_page:
            if answer.status == "error" and not self.paged:
                answer.pages = 0  # refused or failed before reading: nothing to pay for
            answer.prompt_tokens, answer.completion_tokens = 0, 0
            answer.cost = self.session.prices.page_cost(answer.model, answer.pages,
                                                        annotated=answer.annotated)
            return
        prices = self.session.prices
        if answer.characters is not None:
            if answer.status == "error":
                answer.characters = 0  # refused or failed: nothing was spoken
            answer.prompt_tokens, answer.completion_tokens = 0, 0
            answer.cost = prices.speech_cost(answer.model, answer.characters)
            return
        heard = None
        if self.audio:
            if answer.status == "error" and not self.heard:
                answer.audio_seconds = 0  # refused or failed before hearing: nothing to pay for
            heard = prices.audio_cost(answer.model, answer.audio_seconds)
            if prices.price(answer.model) is None:  # transcription: priced by the minute alone
                answer.prompt_tokens = answer.prompt_tokens or 0
                answer.completion_tokens = answer.completion_tokens or 0
                answer.cost = heard
                return
        if answer.thinking:
            # Reported usage does not split out the reasoning: it is counted here.
            answer.thinking_tokens = count_text(answer.thinking) + THINK_MARKERS
        if answer.status == "error" and not answer.text:
            answer.prompt_tokens = answer.prompt_tokens or 0
            answer.completion_tokens = answer.completion_tokens or 0
        if answer.prompt_tokens is None:
            answer.prompt_tokens = self.reservation.prompt_tokens
        if answer.completion_tokens is None:
            answer.completion_tokens = count_text(answer.text) + (answer.thinking_tokens or 0)
        answer.cost = prices.cost(answer.model, answer.prompt_tokens, answer.completion_tokens,
                                  cached_tokens=answer.cached_tokens)
        if answer.cached_tokens is not None:
            answer.cached_saved = prices.cached_saving(answer.model, answer.cached_tokens)
        if self.audio:  # a model that listens: its tokens, and its minutes on top
            answer.cost = None if answer.cost is None or heard is None else answer.cost + heard

    def _records(self) -> list:
        """The ledger rows of this call (a conversation adds its tools' uses)."""
        return [self._record()]

    def _record(self):
        from ..money.usage import CallRecord

        answer = self.answer
        return CallRecord(
            model=answer.model, chat=answer.chat, kind=self.kind,
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
            cost=answer.cost, latency_s=answer.latency_s, ttft_s=answer.ttft_s,
            status=answer.status, backend=answer.backend, error=answer.error, pages=answer.pages,
            audio_minutes=None if answer.audio_seconds is None else answer.audio_seconds / 60,
            characters=answer.characters,
            uses=self.use_count if self.per_use is not None else None,
            cached_tokens=answer.cached_tokens, cached_saved=answer.cached_saved,
        )


def audio_seconds(usage) -> int | None:
    """``usage.prompt_audio_seconds`` when the server reported a number (else None)."""
    value = getattr(usage, "prompt_audio_seconds", None)
    if isinstance(usage, dict):
        value = usage.get("prompt_audio_seconds")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def run_async(call: Call, send, pacing=None) -> Answer:
    """Run `send()` for `call` on the background loop (paced, when given), then settle it."""
    try:
        try:
            if pacing is None:
                call.sending()
                await send()
            else:
                await pacing.send(call, send)
        except asyncio.CancelledError:
            # The partial answer is the result; the task ends normally, so the ledger row
            # is written and the caller decides whether to stop (a row job) or not (Stop).
            call.interrupted()
        except Exception as exc:  # SDK, transport or server errors: recorded, one line
            call.failed(exc)
            await close_error_response(exc)
    finally:
        answer = call.settle()
    return answer
