"""StreamView: one display handle per answer, updated at a bounded, falling rate.

While text streams in, the handle is updated at most every `interval(len)` seconds,
an interval that grows with the text (0.1 s at first, one second per 1,500
characters later, at most 5 s), so the bytes sent to the front end stay bounded per
second and a small multiple of the answer at full speed. The final state is
rendered once: sanitised HTML made from the Markdown (or code) by `render`, which
partial updates go through too, with `text/plain` beside it and output metadata
with the answer's provenance (and what the cell adds to it, `provenance`). Where a
display cannot be updated (terminal IPython), the answer is written as it arrives by
`terminal.writer`: rendered by rich at the terminal's width, or as plain text to a pipe.

A thinking model's reasoning streams into a "Reasoning" block above the answer,
open while it streams alone and collapsed once the answer starts (in a terminal it
is written dimmed, and only its size stays in the final text). A cell whose model
calls tools keeps one view for all its steps: `thinking_before` holds the earlier
steps' reasoning and `tools` the blocks of the calls run so far, shown under the
answer.
"""

from __future__ import annotations

import time
from typing import Any

from .render import fence

CURSOR = " ▍"
MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 5.0
CHARS_PER_S = 1500


def update_interval(length: int) -> float:
    """Seconds to wait between updates when the shown text has `length` characters."""
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, length / CHARS_PER_S))


def can_update_displays(shell) -> bool:
    """Whether this shell's front end can replace an output in place (Jupyter can)."""
    from IPython.core.displaypub import DisplayPublisher

    publisher = getattr(shell, "display_pub", None)
    return publisher is not None and type(publisher) is not DisplayPublisher


class StreamView:
    """Renders one streamed answer into one output of the running cell."""

    def __init__(self, shell, fmt: str = "markdown", clock=time.monotonic):
        self.shell = shell
        self.fmt = fmt
        self.clock = clock
        self.rich = can_update_displays(shell)
        # Where displays cannot be updated, the writer for where output goes (`terminal`).
        self.terminal = None
        if not self.rich:
            from . import terminal

            self.terminal = terminal.writer(fmt)
        self.updates = 0
        self._handle = None
        self._shown_at = 0.0
        self._shown_len = 0
        self.thinking_before = ""  # earlier steps' reasoning (a tool exchange)
        self.tools: tuple[str, str] = ("", "")  # the tool calls' blocks so far: (html, plain)
        # What the cell adds to the answer's provenance (the names its prompt filled in).
        self.provenance: dict[str, Any] = {}

    def _above(self, thinking: str, tokens: int | None = None, streaming: bool = False) -> str:
        from . import render

        shown = "\n\n".join(t for t in (self.thinking_before, thinking) if t)
        return render.reasoning(shown, tokens, open_=streaming)

    def _partial(self, text: str, thinking: str = "") -> dict:
        if self.fmt == "text":
            return {"text/plain": text + CURSOR}
        from . import render

        # The reasoning is open while it streams alone, and folds once the answer starts.
        above = self._above(thinking, streaming=bool(thinking) and not text)
        return render.partial(text + CURSOR if text or not thinking else "", above, self.tools[0])

    def _final(self, text: str, footer: str, thinking: str, tokens: int | None) -> dict:
        from . import render

        lines = [render.reasoning_plain(tokens), text, self.tools[1], footer]
        plain = "\n\n".join(line for line in lines if line)
        if self.fmt == "text":
            return {"text/plain": plain}
        shown = fence(text) if self.fmt == "code" and "```" not in text else text
        return render.markdown(shown, footer, plain=plain, above=self._above(thinking, tokens),
                               below=self.tools[0])

    def start(self, note: str = "") -> None:
        """Show the waiting note the answer will replace (again in place, for a re-ask)."""
        if not self.rich:
            self.terminal.start()
            return
        from IPython.display import display

        from . import render

        bundle = render.partial(note or "*…waiting for the first token…*", self._above(""),
                                self.tools[0])
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._shown_at, self._shown_len = self.clock(), 0

    def feed(self, parts: list[str], thinking: list[str] = ()) -> None:
        """The answer so far, as its pieces (and the reasoning's); joined only when an update
        is due. Joining on every chunk would make a long stream quadratic in its length.
        """
        if not self.rich:
            self.terminal.feed(parts, thinking)
            return
        now = self.clock()
        if now - self._shown_at < update_interval(self._shown_len):
            return
        text, thought = "".join(parts), "".join(thinking)
        self._show(self._partial(text, thought))
        self._shown_at, self._shown_len = now, len(text) + len(thought)

    def show_tools(self, html: str, plain: str, note: str) -> None:
        """Show the tool calls' blocks so far under `note` (between two steps)."""
        self.tools = (html, plain)
        if not self.rich:
            self.terminal.tools(plain)
            return
        from . import render

        self._show(render.partial(note, self._above(""), html))

    def _show(self, bundle: dict, metadata: dict | None = None) -> None:
        from IPython.display import display

        self.updates += 1
        if self._handle is None:
            self._handle = display(bundle, raw=True, metadata=metadata or {}, display_id=True)
        else:
            self._handle.update(bundle, raw=True, metadata=metadata or {})

    def clear(self) -> None:
        """Remove the waiting note when a call failed before any text arrived."""
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
        if self.terminal is not None:
            self.terminal.stop()

    def finish(self, text: str, footer: str, metadata: dict[str, Any], *, thinking: str = "",
               thinking_tokens: int | None = None) -> None:
        """Render the final answer once, with its reasoning, tool blocks, footer and provenance."""
        if not self.rich:
            self.terminal.finish(text, footer)
            return
        self._show(self._final(text, footer, thinking, thinking_tokens),
                   {"mistral_magic": {**metadata, **self.provenance}})

    def finish_value(self, value: Any, footer: str, metadata: dict[str, Any], *,
                     thinking: str = "", thinking_tokens: int | None = None) -> None:
        """Render a parsed result (a DataFrame or a dict) in place of the streamed JSON."""
        import json

        from . import render

        above = self._above(thinking, thinking_tokens)
        if hasattr(value, "_repr_html_"):
            bundle = render.frame(value, footer, above)
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            bundle = render.code(text, "json", footer, above=above)
        if not self.rich:
            self.terminal.value(bundle["text/plain"])
            return
        self._show(bundle, {"mistral_magic": {**metadata, **self.provenance}})
