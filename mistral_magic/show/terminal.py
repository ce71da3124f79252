"""Answers and tables in a terminal: Markdown rendered by rich, wrapped at the terminal's width.

Where output goes decides how an answer is written (`writer`): to a terminal (terminal
IPython), the Markdown is rendered by rich at the terminal's width, words kept whole; to
anything else (a pipe, a file, a test's capture), the text is written as it is.

A streamed answer is rendered block by block: each finished block (a paragraph, a list, a
table, a code block, ended by a blank line outside a code fence) is printed once, and the
block still arriving is shown in a small live region under it that rich redraws in place
(and clears at the end). The reasoning is shown dimmed while it streams and stays dimmed;
the footer is one dim line, wrapped at words.

`table_text` is a DataFrame as a rich table: the columns that matter, every row of a short
table, long cells wrapped within the terminal's width (`tables.Table` uses it for the
`%mistral` tables). Text from outside is data here too: control characters (terminal
escape sequences that could retitle the window, write the clipboard or move the cursor)
are removed before rich sees it, and rich renders Markdown, never its own markup.

rich is imported on first use, only when writing to a terminal.
"""

from __future__ import annotations

import re
import shutil
import sys
from typing import Any

DIM, UNDIM = "\x1b[2m", "\x1b[0m"
CURSOR = " ▍"
# Every C0 control but tab and newline, DEL and the C1 controls (ESC starts every sequence).
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)
REFRESH_CHARS = 24  # redraw the live block after this much new text (or at a block's end)
SHORT = 200  # rows a table shows in full


def clean(text: str) -> str:
    """Outside text made inert for a terminal: control characters removed."""
    return CONTROLS.sub("", text.replace("\r\n", "\n"))


def is_terminal(stream=None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or no isatty: not a terminal
        return False


def writer(fmt: str = "markdown"):
    """The writer for where output goes now: `RichWriter` for a terminal, else `PlainWriter`."""
    return RichWriter(fmt) if is_terminal() else PlainWriter()


def wrapped(text: str) -> str:
    """`text` wrapped at words to the terminal's width when output goes to one (else as is)."""
    if not is_terminal():
        return text
    import textwrap

    width = shutil.get_terminal_size().columns
    return "\n".join(textwrap.fill(line, width) if len(line) > width else line
                     for line in text.split("\n"))


def finished_blocks(text: str) -> int:
    """Where the finished blocks of streamed Markdown end: after the last blank line that is
    outside a code fence (0 when no block is finished yet)."""
    end, fence = 0, None
    position = 0
    for line in text.splitlines(keepends=True):
        opened = FENCE.match(line)
        if opened and (fence is None or opened[1][0] == fence[0] and len(opened[1]) >= len(fence)):
            fence = None if fence is not None else opened[1]
        elif fence is None and not line.strip() and line.endswith("\n") and position:
            end = position + len(line)
        position += len(line)
    return end


class PlainWriter:
    """Writes the text as it arrives (a pipe, a file, a capture): reasoning dimmed, then the answer."""

    def __init__(self):
        self.start()

    def start(self) -> None:
        self._written = self._thought = 0
        self._streamed = 0

    def feed(self, parts: list[str], thinking) -> None:
        if len(thinking) > self._thought:
            sys.stdout.write(DIM + "".join(thinking[self._thought:]) + UNDIM)
            self._thought = len(thinking)
        new = parts[self._written:]
        if new and self._thought and not self._written:
            sys.stdout.write("\n\n")
        for piece in new:
            sys.stdout.write(piece)
            self._streamed += len(piece)
        sys.stdout.flush()
        self._written = len(parts)

    def tools(self, plain: str) -> None:
        sys.stdout.write(f"\n{plain.splitlines()[-1]}\n" if plain else "")
        sys.stdout.flush()

    def finish(self, text: str, footer: str) -> None:
        # The streamed pieces are on screen already; only what follows them is new.
        sys.stdout.write(text[self._streamed:] + f"\n\n{footer}\n")
        sys.stdout.flush()

    def value(self, plain: str) -> None:
        sys.stdout.write("\n" + plain + "\n")

    def stop(self) -> None:
        """Nothing to undo: plain text has no live region."""


class RichWriter:
    """Renders a streamed answer's Markdown with rich: finished blocks printed, the one
    arriving redrawn in place, the footer dim; all wrapped at the terminal's width."""

    def __init__(self, fmt: str = "markdown"):
        from rich.console import Console

        self.fmt = fmt
        self.console = Console(file=sys.stdout, highlight=False)
        self._live = None
        self.start()

    def start(self) -> None:
        self.stop()
        self._printed = 0  # characters of the answer printed as finished blocks
        self._thought = ""  # the reasoning so far
        self._thought_shown = -1  # its length when last drawn
        self._thought_done = False  # printed for good (the answer started)
        self._shown_len = 0

    def _markdown(self, text: str):
        from rich.markdown import Markdown
        from rich.text import Text

        text = clean(text)
        if self.fmt == "text":
            return Text(text)
        if self.fmt == "code" and "```" not in text:
            from .render import fence

            text = fence(text)
        return Markdown(text, hyperlinks=False)

    def _dim(self, text: str):
        from rich.text import Text

        return Text(clean(text), style="dim")

    def _region(self, renderable) -> None:
        """Show `renderable` in the live region (started on first use), redrawn in place."""
        from rich.live import Live

        if self._live is None:
            self._live = Live(renderable, console=self.console, auto_refresh=False,
                              transient=True, redirect_stdout=False, redirect_stderr=False,
                              vertical_overflow="crop")
            self._live.start()
        self._live.update(renderable, refresh=True)

    def feed(self, parts: list[str], thinking) -> None:
        self._thought = thought = "".join(thinking)
        text = "".join(parts)
        if not text:
            if thought and len(thought) - self._thought_shown >= REFRESH_CHARS:
                self._thought_shown = len(thought)
                self._region(self._dim(thought + CURSOR))
            return
        self._keep_thought()
        done = self._printed + finished_blocks(text[self._printed:])
        if done > self._printed:
            self._print(self._markdown(text[self._printed:done]), gap=bool(self._printed))
            self._printed = done
        if len(text) - self._shown_len >= REFRESH_CHARS or done == len(text):
            self._shown_len = len(text)
            tail = text[self._printed:]
            if tail.strip():
                self._region(self._markdown(tail + CURSOR.strip()))

    def _keep_thought(self) -> None:
        """Print the reasoning for good, dimmed (once the answer starts, or at the end)."""
        if self._thought and not self._thought_done:
            self._print(self._dim(self._thought))
            self._thought_done = True

    def _print(self, renderable, gap: bool = False) -> None:
        """Print for good, above the live region; `gap`: a blank line first (between blocks)."""
        if self._live is not None:
            self._live.update("", refresh=True)
        if gap:
            self.console.print()
        self.console.print(renderable)

    def tools(self, plain: str) -> None:
        if plain:
            self._print(self._dim(plain.splitlines()[-1]))

    def finish(self, text: str, footer: str) -> None:
        """The rest of the answer (what no finished block held, and its end mark), then the footer."""
        self._keep_thought()
        self.stop()
        rest = text[self._printed:] if self._printed <= len(text) else text
        if rest.strip():
            if self._printed:
                self.console.print()
            self.console.print(self._markdown(rest))
        self.console.print()
        self.console.print(self._dim(footer))
        self._printed = len(text)

    def value(self, plain: str) -> None:
        self._keep_thought()
        self.stop()
        self.console.print(clean(plain), markup=False, highlight=False)

    def stop(self) -> None:
        """Clear the live region (always, so the terminal's cursor comes back)."""
        live, self._live = self._live, None
        if live is not None:
            live.update("", refresh=True)
            live.stop()


def table_text(frame, columns: list[str] | None = None, width: int | None = None) -> str:
    """`frame` as a rich table at the terminal's width: `columns` (the ones that matter; all
    when None) less those with no value at all, every row when it is short (head and tail
    otherwise), long text wrapped within its cell, and a line naming what was left out."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    width = width or shutil.get_terminal_size().columns
    wanted = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    shown = [c for c in wanted if columns is None or len(frame) == 0 or frame[c].notna().any()]
    left_out = [str(c) for c in frame.columns if c not in shown]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in shown:
        kind = frame[column].dtype.kind
        numeric = kind in "iufb" or str(frame[column].dtype) in ("Int64", "Float64", "boolean")
        # Numbers stay whole, as wide as their header; text (ids too) wraps within its cell.
        table.add_column(str(column), justify="right" if numeric and kind != "b" else "left",
                         no_wrap=numeric, min_width=len(str(column)) if numeric else None,
                         overflow="fold")
    rows = list(range(len(frame)))
    if len(rows) > SHORT:
        rows = rows[:10] + [None] + rows[-10:]
    for i in rows:
        if i is None:
            table.add_row(*["…"] * len(shown))
            continue
        table.add_row(*[_cell(frame[c].iloc[i]) for c in shown])
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, highlight=False,
                      force_terminal=False, legacy_windows=False)
    console.print(table)
    notes = [f"{len(frame):,} rows"] if len(frame) > SHORT else []
    if left_out:
        notes.append(f"{len(left_out)} more column{'' if len(left_out) == 1 else 's'}: "
                     f"{', '.join(left_out)}")
    if notes:
        console.print(" · ".join(notes), markup=False)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def _cell(value: Any) -> str:
    import numpy as np
    import pandas as pd

    try:
        if pd.isna(value):
            return "<NA>"
    except (TypeError, ValueError):  # a list or an array: not one missing value
        pass
    if isinstance(value, (float, np.floating)):
        # Positional, six significant digits: a cost reads 0.00009615, not 9.615e-05.
        return np.format_float_positional(value, precision=6, unique=True, fractional=False,
                                          trim="-")
    return clean(str(value))
