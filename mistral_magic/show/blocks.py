"""Where a streamed Markdown answer's finished blocks end.

A top-level block (a paragraph, a list, a code block, a table) is finished once another
one has begun after it on a complete line: what comes later joins only the last block,
so the finished ones render now as they will in the whole answer. Only complete lines
are read: a line still arriving can begin a block that its next characters undo ("#"
is an empty heading until "#x" makes it text). The one thing a later block can change
in an earlier one is a link reference ("[x]: url" defined after "[x]" is used): the
streamed view checks its pieces against the whole answer once, at the end.

A paragraph, heading, rule or table followed by a blank line is finished too, with no
block after it yet: nothing that follows a blank line joins one of those (a list could
still become loose, a code fence or a quote go on, so they wait for the next block).
A model writes each paragraph as one long line, so this shows a paragraph as soon as it
ends rather than when the next one has ended its first line.
"""

from __future__ import annotations

import re

from . import render

LINE_BREAK = re.compile(r"\r\n?|\n")  # what the parser reads as the end of a line
# Top-level blocks that nothing after a blank line can join.
CLOSED_BY_BLANK = frozenset({"paragraph_open", "heading_open", "hr", "table_open"})


def finished(text: str) -> tuple[int, str]:
    """How many leading characters of Markdown `text` are finished top-level blocks (0: none),
    and their sanitised HTML (rendered from the same parse)."""
    complete = text[:text.rfind("\n") + 1]
    if not complete:
        return 0, ""
    tokens = render.parse(complete)
    tops = [i for i, token in enumerate(tokens) if token.level == 0 and token.nesting >= 0]
    if tops and tokens[tops[-1]].type in CLOSED_BY_BLANK and not complete.rsplit("\n", 2)[-2].strip():
        return len(complete), render.tokens_html(tokens)
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
