"""Where a streamed Markdown answer's finished blocks end.

A top-level block (a paragraph, a list, a code block, a table) is finished once another
one has begun after it on a complete line: what comes later joins only the last block,
so the finished ones render now as they will in the whole answer. Only complete lines
are read: a line still arriving can begin a block that its next characters undo ("#"
is an empty heading until "#x" makes it text). The one thing a later block can change
in an earlier one is a link reference ("[x]: url" defined after "[x]" is used): the
streamed view checks its pieces against the whole answer once, at the end.
"""

from __future__ import annotations

import re

from . import render

LINE_BREAK = re.compile(r"\r\n?|\n")  # what the parser reads as the end of a line


def finished(text: str) -> int:
    """How many leading characters of Markdown `text` are finished top-level blocks (0: none)."""
    complete = text[:text.rfind("\n") + 1]
    if not complete:
        return 0
    spans = render.top_blocks(complete)
    if len(spans) < 2:
        return 0
    if spans[-1] is not None:
        line = spans[-1][0]
    else:  # the last block's lines are not known: keep up to the end of the last known one
        ends = [span[1] for span in spans[:-1] if span is not None]
        if not ends:
            return 0
        line = ends[-1]
    return line_offset(complete, line)


def line_offset(text: str, line: int) -> int:
    """Where line number `line` (from 0) of `text` begins."""
    if line <= 0:
        return 0
    for number, match in enumerate(LINE_BREAK.finditer(text), 1):
        if number == line:
            return match.end()
    return len(text)
