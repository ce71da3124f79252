"""StreamView: a streamed answer shown as it arrives, at a cost linear in the answer.

While text streams in, the view updates the cell's output at most ten times a second
(`MIN_INTERVAL_S`) at first and once a second (`STREAM_INTERVAL_S`) once it has 1,500
characters, and only when its budget allows: the bytes it sends that the final
state does not keep (the waiting note, partial text that is shown again later, each
message's envelope) stay under `WASTE_START` plus `WASTE_SHARE` of the text received,
so a long answer costs the front end about its final state plus a quarter, at any pace.

A short answer (under `SPLIT_CHARS`), or one in another format, streams into one
output, updated in place while the budget allows and, beyond it, each time it has
doubled (`GROWTH`) since it was last shown: a slow answer never stands still for long,
and those updates add up to at most twice what they show. A longer Markdown answer is split as it streams: each
finished block (paragraph, list, code block, table: `blocks.finished`) is rendered once
into an output of its own, which stays as it is, and only the unfinished last block is shown again (with a cursor) when
the budget allows and it has a line of text (`TAIL_CHARS`). The final state is written once: the last output gets the rest of
the answer, the tool blocks and the footer, with the whole answer as `text/plain`
beside it and output metadata with its provenance (and what the cell adds to it,
`provenance`). The outputs together show what one output would: a link reference
("[x]: url") is the one thing a block can change in another, so an answer that may
define one has its pieces checked at the end against the whole answer rendered at
once, and where they differ the whole answer is written into the first output and the
others are emptied. Everything is rendered by `render`, the one safe
path. Where a display cannot be updated (terminal IPython), the answer is written as it
arrives by `terminal.writer`: rendered by rich at the terminal's width, or as plain text
to a pipe.

A thinking model's reasoning streams into a "Reasoning" block above the answer,
open while it streams alone and collapsed once the answer starts (in a split answer it
has the first output to itself; in a terminal it is written dimmed, and only its size
stays in the final text). A cell whose model calls tools keeps one view for all its
steps: `thinking_before` holds the earlier steps' reasoning and `tools` the blocks of
the calls run so far, shown under the answer.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

from .render import fence

CURSOR = " ▍"
MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 5.0
CHARS_PER_S = 1500
STREAM_INTERVAL_S = 1.0  # a cell's answer waits at most this long between updates
# Answers at least this long are split into outputs of finished blocks as they stream.
SPLIT_CHARS = 1500
# What updates may send beyond the final state, in bytes: this much, plus this share of
# the characters received. Each message costs about MESSAGE_BYTES besides its content.
WASTE_START = 1500
WASTE_SHARE = 0.25
# An answer in one output is shown whole again at least each time it grows by this factor.
GROWTH = 2.0
MESSAGE_BYTES = 160
# The unfinished last block of a split answer is shown once it has a line of text: a few
# words more would cost less than the message that carries them.
TAIL_CHARS = 80
EMPTY = {"text/plain": ""}


_KERNEL = secrets.token_hex(6)  # this process's outputs apart from any other kernel's
_OUTPUTS = itertools.count(1)


def new_display_id() -> str:
    """An output's display id: this kernel's random part and a count, half a uuid's size
    (each message that shows or updates an output carries it)."""
    return f"mm{_KERNEL}-{next(_OUTPUTS):x}"


def update_interval(length: int) -> float:
    """Seconds to wait between updates of a view showing `length` characters."""
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, length / CHARS_PER_S))


def can_update_displays(shell) -> bool:
    """Whether this shell's front end can replace an output in place (Jupyter can)."""
    from IPython.core.displaypub import DisplayPublisher

    publisher = getattr(shell, "display_pub", None)
    return publisher is not None and type(publisher) is not DisplayPublisher


class StreamView:
    """Renders one streamed answer into the outputs of the running cell."""

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
        self.updates = 0  # messages sent to the front end
        self._slots: list = []  # display handles, in their order in the cell
        self._blank: set[int] = set()  # slots emptied (kept, to be filled again in order)
        self._chunks: list[tuple[str, str]] = []  # finished blocks shown: (source, inner html)
        self._kept = 0  # leading slots that hold finished blocks (or the reasoning alone)
        self._cut = 0  # characters of the answer in them
        self._above_slot = False  # slot 0 holds the reasoning alone
        self._look_at = 0  # complete-line length of the rest to reach before parsing it again
        self._spent = 0  # bytes sent that the final state does not keep
        self._received = 0
        self._thought = 0  # characters of reasoning in `_received`
        self._whole = 0  # `_received` when the answer was last shown whole (one output)
        self._counted = (0, 0)  # pieces of the answer and of the reasoning in `_received`
        self._wait = MIN_INTERVAL_S  # seconds between updates, for `_received`
        self._shown_at = 0.0
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

        plain = self._plain(text, footer, tokens)
        if self.fmt == "text":
            return {"text/plain": plain}
        shown = fence(text) if self.fmt == "code" and "```" not in text else text
        return render.markdown(shown, footer, plain=plain, above=self._above(thinking, tokens),
                               below=self.tools[0])

    def _plain(self, text: str, footer: str, tokens: int | None) -> str:
        from . import render

        lines = [render.reasoning_plain(tokens), text, self.tools[1], footer]
        return "\n\n".join(line for line in lines if line)

    # -- the outputs ------------------------------------------------------------------------

    def _put(self, index: int, bundle: dict, metadata: dict | None = None) -> None:
        """Show `bundle` in slot `index` (a new output after the last one, or in place)."""
        from IPython.display import display

        self.updates += 1
        if index < len(self._slots):
            self._slots[index].update(bundle, raw=True, metadata=metadata or {})
        else:
            self._slots.append(display(bundle, raw=True, metadata=metadata or {},
                                       display_id=new_display_id()))
        self._blank.discard(index)

    def _reset(self, bundle: dict, metadata: dict | None = None) -> None:
        """Show `bundle` in the first slot alone: the others are emptied."""
        self._put(0, bundle, metadata)
        for index in range(1, len(self._slots)):
            if index not in self._blank:
                self._put(index, EMPTY)
                self._blank.add(index)
        self._chunks, self._kept, self._cut, self._above_slot, self._look_at = [], 0, 0, False, 0

    def _spend(self, bundle: dict, frame: int = 0) -> None:
        """Count what `bundle` sent beyond the final state, but for `frame` bytes: the tool
        blocks under a partial answer, sent again with each update (at most one a second),
        which the answer's budget does not pay for (a tool cell would otherwise stop moving)."""
        self._spent += MESSAGE_BYTES + sum(len(value) for value in bundle.values()) - frame

    # -- streaming --------------------------------------------------------------------------

    def start(self, note: str = "") -> None:
        """Show the waiting note the answer will replace (again in place, for a re-ask)."""
        self._spent, self._received, self._counted = 0, 0, (0, 0)
        self._wait = MIN_INTERVAL_S
        self._thought = self._whole = 0
        if not self.rich:
            self.terminal.start()
            return
        from . import render

        bundle = render.partial(note or "*…waiting for the first token…*", self._above(""),
                                self.tools[0])
        self._reset(bundle)
        self._spend(bundle)
        self._shown_at = self.clock()
        self.updates -= 1  # the note is not an update of the answer

    def feed(self, parts: list[str], thinking: list[str] = ()) -> None:
        """The answer so far, as its pieces (and the reasoning's); joined only when an update
        is due and affordable, so a long stream stays linear in its length.
        """
        if not self.rich:
            self.terminal.feed(parts, thinking)
            return
        now = self.clock()
        # A view waits longer the more it has received: the wait for what was counted at
        # the last look is enough to know that it is too early to look again.
        if now - self._shown_at < self._wait:
            return
        done, thought_done = self._counted
        thought_new = sum(map(len, thinking[thought_done:]))
        self._received += sum(map(len, parts[done:])) + thought_new
        self._thought += thought_new
        self._counted = (len(parts), len(thinking))
        self._wait = min(STREAM_INTERVAL_S, update_interval(self._received))
        if now - self._shown_at < self._wait:
            return
        budget = WASTE_START + WASTE_SHARE * self._received - self._spent
        if self.fmt == "markdown" and (self._kept or self._received - self._thought >= SPLIT_CHARS):
            if budget >= MESSAGE_BYTES:
                self._shown_at = now
                self._split("".join(parts), "".join(thinking), budget)
            return
        affordable = MESSAGE_BYTES + 1.1 * self._received <= budget
        if affordable or self._received >= GROWTH * self._whole:
            # Shown whole again: when the budget allows, and at least each time it has
            # doubled (those re-sends add up to at most twice what they show).
            self._shown_at, self._whole = now, self._received
            bundle = self._partial("".join(parts), "".join(thinking))
            self._put(0, bundle)
            if affordable:
                self._spend(bundle, frame=len(self.tools[0]))

    def _split(self, text: str, thought: str, budget: float) -> None:
        """Show the blocks finished since the last update once, then the rest if affordable."""
        from . import blocks, render

        rest = text[self._cut:]
        complete = rest.rfind("\n") + 1
        if complete >= self._look_at:
            cut, html = blocks.finished(rest)
            self._look_at = 0 if cut else complete + max(80, complete // 8)
            if cut:
                if not self._kept and thought:
                    # The reasoning gets the first output: it is shown again, counted, at the end.
                    self._put(0, {"text/html": render.CONTAINER.format(self._above(thought))})
                    self._kept, self._above_slot = 1, True
                    budget -= MESSAGE_BYTES + len(thought)
                    self._spent += MESSAGE_BYTES + len(thought)
                source, rest = rest[:cut], rest[cut:]
                self._put(self._kept, {"text/html": render.CONTAINER.format(html)})
                self._chunks.append((source, html))
                self._kept += 1
                self._cut += cut
                budget -= MESSAGE_BYTES
                self._spent += MESSAGE_BYTES
        if len(rest) >= TAIL_CHARS and MESSAGE_BYTES + 1.1 * len(rest) <= budget:
            bundle = render.partial(rest + CURSOR, "", self.tools[0])
            self._put(self._kept, bundle)
            self._spend(bundle, frame=len(self.tools[0]))

    def show_tools(self, html: str, plain: str, note: str) -> None:
        """Show the tool calls' blocks so far under `note` (between two steps)."""
        self.tools = (html, plain)
        if not self.rich:
            self.terminal.tools(plain)
            return
        from . import render

        self._reset(render.partial(note, self._above(""), html))

    def clear(self) -> None:
        """Remove the waiting note when a call failed before any text arrived."""
        for index in range(len(self._slots)):
            if index not in self._blank:
                self._put(index, EMPTY)
                self._blank.add(index)
        if self.terminal is not None:
            self.terminal.stop()

    # -- the final state --------------------------------------------------------------------

    def finish(self, text: str, footer: str, metadata: dict[str, Any], *, thinking: str = "",
               thinking_tokens: int | None = None) -> None:
        """Render the final answer once, with its reasoning, tool blocks, footer and provenance."""
        if not self.rich:
            self.terminal.finish(text, footer)
            return
        meta = {"mistral_magic": {**metadata, **self.provenance}}
        if not (self._kept and self._finish_split(text, footer, meta, thinking, thinking_tokens)):
            self._reset(self._final(text, footer, thinking, thinking_tokens), meta)

    def _finish_split(self, text: str, footer: str, meta: dict, thinking: str,
                      tokens: int | None) -> bool:
        """The rest of a split answer into its last output; False where the pieces would not
        show what the whole answer does (it is then written whole)."""
        from . import render

        shown = "".join(source for source, _ in self._chunks)
        if not text.startswith(shown):
            return False
        rest = text[self._cut:]
        # Only a link reference ("[x]: url", defined in one piece and used in another) makes
        # the pieces differ from the whole; where one may be, they are checked against it.
        if "]:" in text and ("".join(html for _, html in self._chunks)
                             + render.markdown_html(rest) != render.markdown_html(text)):
            return False
        if self._above_slot:
            self._put(0, {"text/html": render.CONTAINER.format(self._above(thinking, tokens))})
        bundle = render.markdown(rest, footer, plain=self._plain(text, footer, tokens),
                                 below=self.tools[0])
        self._put(self._kept, bundle, meta)
        return True

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
        self._reset(bundle, {"mistral_magic": {**metadata, **self.provenance}})
