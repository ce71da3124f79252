"""StreamView: one display handle per answer, updated at a bounded, falling rate.

While text streams in, the handle is updated at most every `interval(len)` seconds,
an interval that grows with the text (0.1 s at first, one second per 1,500
characters later, at most 5 s), so the bytes sent to the front end stay bounded per
second and a small multiple of the answer at full speed. The final state is
rendered once: sanitised HTML made from the Markdown (or code) by `render`, which
partial updates go through too, with `text/plain` beside it and output metadata
with the answer's provenance. In a terminal, where a display cannot be updated,
the text is written as it arrives instead.
"""

from __future__ import annotations

import sys
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
        self.updates = 0
        self._handle = None
        self._shown_at = 0.0
        self._shown_len = 0
        self._written = 0  # pieces already written (terminal)
        self._streamed: list[str] = []

    def _partial(self, text: str) -> dict:
        if self.fmt == "text":
            return {"text/plain": text + CURSOR}
        from . import render

        return render.partial(text + CURSOR)

    def _final(self, text: str, footer: str) -> dict:
        plain = f"{text}\n\n{footer}"
        if self.fmt == "text":
            return {"text/plain": plain}
        from . import render

        shown = fence(text) if self.fmt == "code" and "```" not in text else text
        return render.markdown(shown, footer, plain=plain)

    def start(self, note: str = "") -> None:
        """Show the waiting note the answer will replace (again in place, for a re-ask)."""
        if not self.rich:
            return
        from IPython.display import display

        from . import render

        bundle = render.partial(note or "*…waiting for the first token…*")
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._shown_at, self._shown_len = self.clock(), 0

    def feed(self, parts: list[str]) -> None:
        """The answer so far, as its pieces; joined only when an update is due.

        Joining on every chunk would make a long stream quadratic in its length.
        """
        if not self.rich:
            for piece in parts[self._written:]:
                sys.stdout.write(piece)
            sys.stdout.flush()
            self._written = len(parts)
            self._streamed = parts
            return
        now = self.clock()
        if now - self._shown_at < update_interval(self._shown_len):
            return
        text = "".join(parts)
        self._show(self._partial(text))
        self._shown_at, self._shown_len = now, len(text)

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

    def finish(self, text: str, footer: str, metadata: dict[str, Any]) -> None:
        """Render the final answer once, with its footer and provenance metadata."""
        if not self.rich:
            # The streamed pieces are on screen already; only what follows them is new.
            streamed = len("".join(self._streamed)) if self._streamed else 0
            sys.stdout.write(text[streamed:] + f"\n\n{footer}\n")
            sys.stdout.flush()
            return
        self._show(self._final(text, footer), {"mistral_magic": metadata})

    def finish_value(self, value: Any, footer: str, metadata: dict[str, Any]) -> None:
        """Render a parsed result (a DataFrame or a dict) in place of the streamed JSON."""
        import json

        from . import render

        if hasattr(value, "_repr_html_"):
            bundle = render.frame(value, footer)
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            bundle = render.code(text, "json", footer)
        if not self.rich:
            sys.stdout.write("\n" + bundle["text/plain"] + "\n")
            return
        self._show(bundle, {"mistral_magic": metadata})
