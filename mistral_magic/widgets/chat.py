"""`ChatPanel`: a chat box on a named chat, streaming on the background loop.

A turn shows as the cell showed it: a thinking model's reasoning in a collapsed block
above the answer (streaming into it while it comes), the tool calls a ``--tools``
cell made as collapsed blocks under it.
"""

from __future__ import annotations

import asyncio
import threading
import time

from ..show import render
from ..show.display import CURSOR, update_interval
from .base import DEFAULT_CHAT, View


def _markdown(markdown: str, plain: str) -> dict:
    return render.output(render.markdown(markdown, plain=plain))


def _reply(who: str, answer: str, thinking: str = "", tokens: int | None = None,
           streaming: bool = False, tools=()) -> dict:
    """The assistant's output: its name, reasoning (collapsed), answer, then its tool calls."""
    above = render.markdown_html(f"**{who}**") + render.reasoning(thinking, tokens,
                                                                   open_=streaming)
    html, lines = render.tool_blocks(tools)
    plain = "\n".join(p for p in (render.reasoning_plain(tokens), f"{who}: {answer}", lines) if p)
    return render.output(render.markdown(answer, plain=plain, above=above, below=html))


def _turn_outputs(turn) -> list[dict]:
    """A turn as two outputs rendered from Markdown: the prompt, then the answer and its end."""
    from ..show.answer import FAILED_MARK, INTERRUPTED_MARK

    user = _markdown(f"**You**\n\n{turn.prompt}", f"You: {turn.prompt}")
    who = turn.model or "assistant"
    answer = f"{turn.banner}\n\n{turn.answer}" if turn.banner else turn.answer
    if turn.status == "interrupted":
        answer += INTERRUPTED_MARK
    elif turn.status == "error":
        answer = f"{answer}{FAILED_MARK}\n\n*{turn.error}*" if answer else f"*⚠ {turn.error}*"
    return [user, _reply(who, answer, turn.thinking, turn.thinking_tokens, tools=turn.tools)]


def chat_text(session, name: str, fallback: bool = False) -> str:
    """A chat's transcript as text."""
    turns = session.chats.get(name).turns if name in session.chats else []
    lines = [f"Chat {name!r}: {len(turns)} turns"]
    if fallback:
        lines[0] += f" (continue it with %%mistral -c {name})"
    for turn in turns:
        lines += [""] + [out["data"]["text/plain"] for out in _turn_outputs(turn)]
    return "\n".join(lines)


def chat_html(session, name: str) -> str:
    """A chat's transcript as rendered HTML (what a saved notebook shows of the panel)."""
    turns = session.chats.get(name).turns if name in session.chats else []
    head = render.line(f"{name} · {len(turns)} turn{'' if len(turns) == 1 else 's'}", lead="chat")
    return head + "".join(out["data"]["text/html"] for turn in turns
                          for out in _turn_outputs(turn))


def _status_line(session, answer) -> str:
    if answer.status == "error":
        return answer.error or "the request failed"
    footer = session.footer(answer)
    return f"interrupted · {footer}" if answer.status == "interrupted" else footer


class ChatPanel(View):
    """A chat box on the named chat: transcript, input, Send and Stop, a status line.

    `send(text)` returns a `concurrent.futures.Future` of the recorded `Turn` at
    once; `stop()` cancels the running request; `wait(timeout)` returns the Turn.
    Widgets: `history` and `live` (Output, rendered Markdown) in `transcript`, `input`
    (Textarea), `send_button`, `stop_button`, `status` (HTML).

    The transcript scrolls from its end (a flex column laid out from the bottom), so the
    newest question and answer stay in view as they come, unless the reader scrolled up.
    """

    def __init__(self, session, name: str = DEFAULT_CHAT):
        super().__init__()
        import ipywidgets as w

        self.session = session
        self.name = name
        self.future = None
        self._parts: list[str] = []
        self._thinking: list[str] = []
        self.last = None  # the last Answer the panel got
        self.updates = 0  # renders of the streaming answer
        self._task: asyncio.Task | None = None
        self._stop_requested = False
        self._state = threading.Lock()
        self._shown_at = 0.0
        self._shown_len = 0
        self._prompt = ""
        self._model = ""

        self.title = w.HTML(render.line(name, lead="chat"))
        self.history = w.Output()
        self.live = w.Output()
        # A column laid out from its end starts scrolled to the end and stays there as the
        # answer grows: the browser keeps the newest message in view, no script needed.
        # (The inner box must not shrink: a widget box scrolls by itself when it does.)
        self.transcript = w.Box(
            [w.VBox([self.history, self.live], layout=w.Layout(flex="0 0 auto"))],
            layout=w.Layout(max_height="32em", overflow="auto", display="flex",
                            flex_flow="column-reverse"))
        self.input = w.Textarea(placeholder="Ask… (Send, or panel.send(text))",
                                layout=w.Layout(width="100%"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.status = w.HTML()
        self.send_button.on_click(self._on_send)
        self.stop_button.on_click(lambda button: self.stop())
        self.widget = w.VBox([
            self.title, self.transcript, self.input,
            w.HBox([self.send_button, self.stop_button]), self.status,
        ])
        self.chat = None
        self._unsubscribe_chat = None
        self._attach()
        # A `%mistral reset --all` replaces the Chat object; each call re-checks it.
        self._cleanups.append(session.ledger.subscribe(lambda record: self._attach()))

    @property
    def busy(self) -> bool:
        future = self.future
        return future is not None and not future.done()

    def _attach(self) -> None:
        chat = self.session.chats.get(self.name)
        if chat is self.chat:
            return
        with self._lock:
            if self._unsubscribe_chat is not None:
                self._unsubscribe_chat()
            self.chat = chat
            self._unsubscribe_chat = chat.subscribe(lambda chat: self.refresh())
        self.refresh()

    def close(self) -> None:
        self.stop()
        if self._unsubscribe_chat is not None:
            self._unsubscribe_chat()
        super().close()

    # -- actions -------------------------------------------------------------------

    def send(self, text: str | None = None):
        """Ask `text` (default: the input box) in this chat; returns a Future of the Turn.

        Raises `BudgetExceeded` / `ConfigError` before sending, `ReplayMiss` when
        replaying a message with no stored answer, and `RuntimeError` while a request
        is running.
        """
        from_input = text is None
        prompt = (self.input.value if from_input else text).strip()
        if not prompt:
            raise ValueError("nothing to send: type a message first")
        if self.busy:
            raise RuntimeError(f"chat {self.name!r} is still answering; Stop it or wait")
        self._attach()
        session = self.session
        session.capabilities.check(session.settings.model, setting="MistralMagics.model")
        request = session.build_request(prompt, chat=self.name)
        # Each Send is a new question: only a replay answers it from the cache.
        cached = session.responses.serve(request, chat=self.name)
        if cached is not None:
            return self._answered(cached, request, from_input)
        # Resolved here, in the kernel's thread: the offline notice belongs to the cell,
        # and building the client imports the SDK (slow once).
        backend = session.backend
        _ = backend.client
        reservation = session.reserve(request, exact=backend.kind == "offline")
        if from_input:
            self.input.value = ""
        with self._state:
            self._stop_requested = False
        self._prompt, self._model, self._parts, self._thinking = prompt, request["model"], [], []
        self._render_live(waiting=True)
        self._set_busy(True)
        try:
            self.future = session.loop.submit(self._run(request, reservation, backend, prompt))
        except BaseException:
            reservation.release()
            raise
        # A task cancelled before it ran never settles: give the hold back then too.
        self.future.add_done_callback(lambda future: reservation.release())
        return self.future

    def _answered(self, answer, request, from_input: bool):
        """A cached answer: recorded at once; returns a finished Future of its Turn."""
        from concurrent.futures import Future

        if from_input:
            self.input.value = ""
        turn = self.session.record_turn(answer, request, self.name, None)
        self.last = answer
        self.future = Future()
        self.future.set_result(turn)
        self._idle(_status_line(self.session, answer))
        return self.future

    def stop(self) -> bool:
        """Cancel the running request; its partial answer is kept, marked interrupted."""
        if not self.busy:
            return False
        with self._state:
            self._stop_requested = True
            task = self._task
        if task is not None:
            self.session.loop.loop.call_soon_threadsafe(task.cancel)
        return True

    def wait(self, timeout: float | None = None):
        """Wait for the running (or last) request; returns its Turn (None if stopped unsent)."""
        future = self.future
        return None if future is None else future.result(timeout)

    async def _run(self, request, reservation, backend, prompt):
        with self._state:
            if self._stop_requested:  # stopped before it was sent: nothing to record
                reservation.release()
                self._idle("stopped before sending")
                return None
            self._task = asyncio.current_task()
        status, error = "the request failed unexpectedly (see the log)", True
        try:
            answer = await self.session.call_async(
                request, backend=backend, reservation=reservation, chat=self.name,
                on_text=self._on_text,
            )
            turn = self.session.record_turn(answer, request, self.name, None)
            self.last = answer
            status, error = _status_line(self.session, answer), answer.status == "error"
            return turn
        finally:
            with self._state:
                self._task = None
            self._idle(status, error=error)

    def _on_send(self, button) -> None:
        from ..errors import MistralMagicError

        try:
            self.send()
        except (MistralMagicError, ValueError, RuntimeError) as exc:
            self._status(str(exc), error=True)

    # -- rendering -------------------------------------------------------------------

    def refresh(self) -> None:
        """Render the chat's turns (called after every change to the chat)."""
        chat = self.chat
        outputs = [out for turn in list(chat.turns) for out in _turn_outputs(turn)]
        details = f"{self.name} · {len(chat.turns)} turns"
        if chat.system:
            details += f" · system: {chat.system[:120]}"
        with self._lock:
            self.history.outputs = tuple(outputs)
            self.title.value = render.line(details, lead="chat")
        self.changed()

    @property
    def partial(self) -> str:
        """The answer streamed so far by the running (or last) request."""
        return "".join(self._parts)

    def _on_text(self, parts: list[str], thinking: list[str] = ()) -> None:
        # On the loop thread, once per chunk: render at a bounded, falling rate, and
        # join the pieces only then (a join per chunk would be quadratic).
        self._parts, self._thinking = parts, thinking
        if time.monotonic() - self._shown_at >= update_interval(self._shown_len):
            self._render_live()

    def _render_live(self, waiting: bool = False) -> None:
        with self._lock:
            partial, thinking = self.partial, "".join(self._thinking)
            answer = "*…waiting for the first token…*" if waiting else partial + CURSOR
            if thinking and not partial:
                answer = ""  # the reasoning streams alone, in its open block
            self.live.outputs = (
                _markdown(f"**You**\n\n{self._prompt}", f"You: {self._prompt}"),
                _reply(self._model, answer, thinking, streaming=bool(thinking) and not partial),
            )
            self._shown_at, self._shown_len = time.monotonic(), len(partial) + len(thinking)
            if not waiting:
                self.updates += 1

    def _idle(self, status: str, error: bool = False) -> None:
        with self._lock:
            self.live.outputs = ()
            self._set_busy(False)
            self._status(status, error=error)

    def _set_busy(self, busy: bool) -> None:
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy

    def _status(self, text: str, error: bool = False) -> None:
        self.status.value = render.line(text, minor=True, tone="error" if error else "muted")

    def text(self) -> str:
        return chat_text(self.session, self.name)

    def html(self) -> str:
        return chat_html(self.session, self.name)

    def can_redraw(self) -> bool:
        # A redraw loses the reader's focus and scroll: not while answering or typing.
        return not self.busy and not self.input.value.strip()

