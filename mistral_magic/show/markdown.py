"""How answers are read as Markdown: the parser, and where math is in a text.

`new_parser()` is CommonMark (tables, strikethrough, raw HTML off) with math as MathJax
reads it in a notebook: `$…$`, `$$…$$` (Pandoc's rule, so "$5 and $10" is not math),
`\\(…\\)`, `\\[…\\]` and `\\begin{…}` environments. The renderer (`render`) adds its
rules to one; `math_spans` is the one definition of math that prompt interpolation shares
(`inputs.prompt`); `first_code_block` reads an answer's code as Markdown does.
"""

from __future__ import annotations

import functools
import re

# What every kind of math starts with; text without any of these has none.
MATH_MARKS = re.compile(r"\$|\\[(\[]|\\begin\{")
# `\(…\)` and `\[…\]` as MathJax reads them in a notebook's Markdown: `\[…\]` within a
# paragraph too, and as a block only when nothing follows it on its closing line (the
# texmath plugin's own block rule drops the rest of that line).
_NOT_CLOSE = r"(?:(?!\\\])[\s\S])"
BRACKETS_INLINE = (
    {"name": "math_inline", "rex": re.compile(r"^\\\((.+?)\\\)"), "tag": "\\("},
    {"name": "math_inline_double", "rex": re.compile(rf"^\\\[({_NOT_CLOSE}+?)\\\]"), "tag": "\\["},
)
BRACKETS_BLOCK = (
    {"name": "math_block_eqno", "tag": "\\[",
     "rex": re.compile(rf"^\\\[({_NOT_CLOSE}+?)\\\][ \t]*\(([^)$\r\n]+?)\)[ \t]*(?=\n|$)")},
    {"name": "math_block", "rex": re.compile(rf"^\\\[({_NOT_CLOSE}+?)\\\][ \t]*(?=\n|$)"), "tag": "\\["},
)


def math_spans(text: str) -> tuple[tuple[int, int], ...]:
    """Where `text` has math, as the renderer reads it: (start, end) offsets, in order.

    The one definition of math (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`, `\\begin{…}`):
    prices such as "$5 and $10", an escaped `\\$` and text in code are not math.
    """
    if not MATH_MARKS.search(text):  # the parser costs a little; most prompts have no math
        return ()
    return _math_spans(text)


def first_code_block(text: str) -> str | None:
    """The code of an answer's first fenced code block, as Markdown reads it (a fence quoted
    inside a sentence is no block), or None when it has none."""
    for token in parser().parse(text):
        if token.type == "fence":
            return token.content.removesuffix("\n")
    return None


@functools.cache
def parser():
    """The shared parser, for reading (not rendering) Markdown."""
    return new_parser()


def new_parser():
    """A new parser: CommonMark with tables and strikethrough, raw HTML off, and math as MathJax
    reads it in a notebook (each math rule noting where it matched, for `math_spans`)."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.amsmath import amsmath_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.texmath.index import make_block_func, make_inline_func

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Pandoc's rule: `$` opens math only before a non-space and closes only after a
    # non-space not followed by a digit, so "$5 and $10" stays text.
    md.use(dollarmath_plugin, allow_labels=False, allow_space=False, allow_digits=False,
           double_inline=True)
    for rule in BRACKETS_INLINE:
        md.inline.ruler.before("escape", rule["name"], make_inline_func(rule))
    for rule in BRACKETS_BLOCK:
        md.block.ruler.before("fence", rule["name"], make_block_func(rule))
    md.use(amsmath_plugin)
    # Every math rule notes where it matched (`math_spans`); the parse is the same.
    for ruler, track in ((md.inline.ruler, _tracked), (md.block.ruler, _tracked_block)):
        for rule in ruler.__rules__:
            if rule.name.startswith("math") or rule.name == "amsmath":
                rule.fn = track(rule.fn)
        ruler.__cache__ = None
    return md


@functools.lru_cache(maxsize=64)  # a row job fills one template for every row
def _math_spans(text: str) -> tuple[tuple[int, int], ...]:
    # The parser reads "\r\n" as "\n": `kept[i]` is where its i-th character is in `text`.
    kept = [i for i, ch in enumerate(text) if not (ch == "\r" and text[i + 1:i + 2] == "\n")]
    source = "".join(text[i] for i in kept).replace("\r", "\n").replace("\0", "\ufffd")
    starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"] + [len(source) + 1]
    spans, cursors = [], {}
    for token in parser().parse(source):
        if "lines" in token.meta:
            first, last = token.meta["lines"]
            spans.append((starts[first], starts[min(last, len(starts) - 1)] - 1))
        elif token.type == "inline" and token.map:
            spans += _inline_spans(token, source, starts, cursors)
    ends = kept + [len(text)]
    return tuple((ends[a], ends[b]) for a, b in sorted(spans))


def _inline_spans(token, source: str, starts: list[int], cursors: dict) -> list[tuple[int, int]]:
    """The math spans of one inline token, from its content's offsets to the source's.

    Each line of the content is the tail of its source line (container marks and indent
    cut) or, in a table, a cell of it: found there from where the last one ended.
    """
    math = [child.meta["at"] for child in token.children or () if "at" in child.meta]
    if not math:
        return []
    where: list[int] = []  # the source offset of each content character
    for number, line in enumerate(token.content.split("\n")):
        row = token.map[0] + number
        if row + 1 >= len(starts):
            return [(starts[token.map[0]], starts[-1] - 1)]
        begin, end = starts[row], starts[row + 1] - 1
        body = line.lstrip(" \t")
        found = source.find(body, cursors.get(row, begin), end) if body else begin
        if found < 0:  # not where it should be: the whole lines count as math, to be safe
            return [(starts[token.map[0]], starts[min(token.map[1], len(starts) - 1)] - 1)]
        cursors[row] = found + len(body)
        indent = len(line) - len(body)
        where += [found] * indent + list(range(found, found + len(body))) + [found + len(body)]
    return [(where[a], where[b - 1] + 1) for a, b in math]


def _tracked_block(rule):
    """A block math rule that notes on its token the lines it took."""

    def track(state, start: int, end: int, silent: bool) -> bool:
        matched = rule(state, start, end, silent)
        if matched and not silent:
            state.tokens[-1].meta["lines"] = (start, state.line)
        return matched

    return track


def _tracked(rule):
    """An inline math rule that notes on its token where it matched in the inline content."""

    def track(state, silent: bool) -> bool:
        start = state.pos
        matched = rule(state, silent)
        if matched and not silent:
            state.tokens[-1].meta["at"] = (start, state.pos)
        return matched

    return track
