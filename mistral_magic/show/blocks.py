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


def finished(text: str) -> tuple[int, str]:
    """How many leading characters of Markdown `text` are finished top-level blocks (0: none),
    and their sanitised HTML (rendered from the same parse)."""
    complete = text[:text.rfind("\n") + 1]
    if not complete:
        return 0, ""
    tokens = render.parse(complete)
    tops = [i for i, token in enumerate(tokens) if token.level == 0 and token.nesting >= 0]
    if len(tops) < 2:
        return 0, ""
    last = tokens[tops[-1]]
    span = last.map or last.meta.get("lines")
    if span is not None:
        line, end = span[0], tops[-1]
    else:  # the last block's lines are not known: keep the blocks up to the last known one
        known = [i for i in tops[:-1] if (tokens[i].map or tokens[i].meta.get("lines"))]
        if not known:
            return 0, ""
        line = (tokens[known[-1]].map or tokens[known[-1]].meta["lines"])[1]
        end = tops[tops.index(known[-1]) + 1]
    cut = line_offset(complete, line)
    return (cut, render.tokens_html(tokens[:end])) if cut else (0, "")


def line_offset(text: str, line: int) -> int:
    """Where line number `line` (from 0) of `text` begins."""
    if line <= 0:
        return 0
    for number, match in enumerate(LINE_BREAK.finditer(text), 1):
        if number == line:
            return match.end()
    return len(text)
