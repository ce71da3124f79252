"""The one place where outside text becomes front-end output.

Text from a model, a prompt, a tool or a file is data: it reaches the front end
only through the functions below. Markdown is parsed by markdown-it-py with raw
HTML off (tables, strikethrough, `$…$` / `$$…$$` / `\\(…\\)` / `\\[…\\]` math), and
the HTML it makes is sanitised by nh3 against an allow-list: no script, style,
iframe, svg, form or img elements, no event handlers or `style` attributes, and
links only to http, https, mailto or relative addresses. A Markdown image becomes a
link to the picture, so no answer makes the browser fetch anything by itself.

Output is a `text/html` bundle with `text/plain` beside it. The answer sits in a
`mathjax_ignore` container so that prices such as "$5 and $10" stay text; each
real formula is marked `mathjax_process` and written with `\\(…\\)` / `\\[…\\]`, so
JupyterLab typesets it and nothing else.

Text that is ours but may carry outside pieces (footers, notes, widget labels and
tables with model and chat names) is escaped here too, never elsewhere.

A model's reasoning and the tool calls of a cell are collapsed blocks (`details`,
the only element with state, and its `summary`): the reasoning above the answer
(`reasoning`), each tool call under it (`tool_block`). Their summaries are escaped
and their bodies are Markdown made safe like any answer; the block is sanitised
again as a whole, so no `ontoggle` or other handler can ride on it.

markdown-it-py, its plugins and nh3 are imported on the first render, not on load.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from typing import Any

CONTAINER = '<div class="mistral-magic mathjax_ignore">{}</div>'
MATH_CLASS = "math mathjax_process"

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "del",
    "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div", "details", "summary",
})
# Our own classes on the collapsed blocks (the only classes kept besides math and code).
BLOCK_CLASSES = frozenset({"mistral-reasoning", "mistral-tool", "mistral-tool error"})
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# A fence's info string is the model's text: only a plain language name becomes a class.
LANGUAGE_CLASS = re.compile(r"language-[\w+#.-]{1,40}")
# MathJax macros that make links, set attributes or load code: shown as code instead.
UNSAFE_TEX = re.compile(r"\\(?:href|url|class|cssId|style|data|attr|require|mmlToken|bbox|html\w*)"
                        r"(?![A-Za-z])")
LOOKS_LIKE_SCHEME = re.compile(r"[^/?#]*:")
ALIGNMENTS = frozenset({"left", "center", "right"})
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


# -- what other modules call --------------------------------------------------------------


def escape(text: Any) -> str:
    """Text as HTML text: every `<`, `>`, `&` and quote escaped."""
    return html.escape(str(text))


def markdown_html(text: str) -> str:
    """Markdown as sanitised HTML, without the container."""
    return _cleaner().clean(_markdown().render(text))


def markdown(text: str, footer: str = "", *, plain: str | None = None, above: str = "",
             below: str = "") -> dict:
    """The bundle of a Markdown answer (or note) with an optional cost footer under it.

    `above` and `below` are blocks made here (`reasoning`, `tool_blocks`), shown around it.
    """
    if plain is None:
        plain = f"{text}\n\n{footer}" if footer else text
    return {"text/html": block(text, footer, above, below), "text/plain": plain}


def block(text: str, footer: str = "", above: str = "", below: str = "") -> str:
    """A Markdown answer and its footer as one sanitised HTML block (the bundle's text/html)."""
    return CONTAINER.format(above + markdown_html(text) + below + _footer(footer))


def partial(text: str, above: str = "", below: str = "") -> dict:
    """A streamed answer so far; HTML only, so each update stays small."""
    return {"text/html": CONTAINER.format(above + markdown_html(text) + below)}


def details(summary: str, body: str, *, kind: str, open_: bool = False) -> str:
    """A collapsed block: an escaped one-line `summary` over `body` rendered as safe Markdown."""
    state = " open" if open_ else ""
    markup = (f'<details class="{escape(kind)}"{state}><summary>{escape(summary)}</summary>'
              f"{markdown_html(body)}</details>")
    return _cleaner().clean(markup)


def reasoning(thinking: str, tokens: int | None = None, *, open_: bool = False) -> str:
    """A model's reasoning as a collapsed "Reasoning" block (open while it streams alone)."""
    if not thinking:
        return ""
    summary = "Reasoning…" if tokens is None else f"Reasoning · {tokens:,} tokens"
    return details(summary, thinking, kind="mistral-reasoning", open_=open_)


def reasoning_plain(tokens: int | None) -> str:
    """The line a terminal (or text/plain) shows for the reasoning: its size, not its text."""
    return "" if not tokens else f"[Reasoning · {tokens:,} tokens, hidden]"


def tool_blocks(runs: Sequence[Any]) -> tuple[str, str]:
    """Tool runs (`tools.functions.ToolRun`) as collapsed blocks, and as text lines for text/plain."""
    html_blocks, lines = [], []
    for run in runs:
        kind = "mistral-tool error" if run.error else "mistral-tool"
        html_blocks.append(details(run.summary(), run.details(), kind=kind))
        lines.append(run.plain())
    return "".join(html_blocks), "\n".join(lines)


def code(text: str, language: str = "", footer: str = "", *, plain: str | None = None,
         above: str = "") -> dict:
    """Text shown verbatim as a code block (a request body, a schema), with a footer."""
    cls = f' class="language-{language}"' if LANGUAGE_CLASS.fullmatch(f"language-{language}") else ""
    body = f"<pre><code{cls}>{escape(text)}</code></pre>"
    if plain is None:
        plain = f"{text}\n\n{footer}" if footer else text
    return {"text/html": CONTAINER.format(above + body + _footer(footer)), "text/plain": plain}


def frame(value, footer: str = "", above: str = "") -> dict:
    """A DataFrame (pandas escapes every cell, index and column name) with a footer."""
    return {
        "text/html": CONTAINER.format(above + value._repr_html_() + _footer(footer)),
        "text/plain": f"{value!r}\n\n{footer}" if footer else repr(value),
    }


def note(text: str) -> dict:
    """A one-line italic note (an extraction plan, a notice): plain text, prices kept as text."""
    return {"text/html": CONTAINER.format(f"<p><em>{escape(text)}</em></p>"), "text/plain": text}


def small(text: str) -> str:
    """A footer line as HTML, its `$` prices kept out of MathJax."""
    return f"<sub class='mathjax_ignore'>{escape(text)}</sub>"


def output(bundle: dict) -> dict:
    """A bundle as a `display_data` output, for an `Output` widget's `outputs`."""
    return {"output_type": "display_data", "metadata": {}, "data": bundle}


def line(text: str, *, lead: str = "", minor: bool = False, tone: str | None = None) -> str:
    """One line of a widget's HTML value: an optional bold lead, then escaped text.

    ipywidgets puts an `HTML` widget's value into the page as it is, so everything
    outside the fixed markup is escaped. `minor` sets it in small type; `tone` is
    "error" or "muted".
    """
    color = {"error": "#b00", "muted": "#666"}.get(tone or "")
    style = f' style="color:{color}"' if color else ""
    shown = escape(text)
    if minor:
        shown = f"<small{style}>{shown}</small>"
    elif style:
        shown = f"<span{style}>{shown}</span>"
    if lead:
        shown = f"<b>{escape(lead)}</b> {shown}"
    return f'<span class="mathjax_ignore">{shown}</span>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A small HTML table with every cell escaped; the first column left-aligned."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} style="text-align:{"left" if i == 0 else "right"};padding:0 .6em">'
            f"{escape(value)}</{tag}>"
            for i, value in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return (f'<table class="mathjax_ignore"><thead><tr>{cells("th", header)}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def fence(text: str, language: str = "") -> str:
    """Text inside a Markdown code fence long enough not to be closed by the text."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"


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
    for token in _markdown().parse(text):
        if token.type == "fence":
            return token.content.removesuffix("\n")
    return None


def parse(text: str) -> list:
    """Markdown `text` as the renderer's tokens (for `tokens_html`, or to see its blocks)."""
    return _markdown().parse(text, {})


def tokens_html(tokens: list) -> str:
    """Sanitised HTML of tokens from `parse` (a run of whole top-level blocks), no container."""
    md = _markdown()
    return _cleaner().clean(md.renderer.render(tokens, md.options, {}))


# -- where the math is -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # a row job fills one template for every row
def _math_spans(text: str) -> tuple[tuple[int, int], ...]:
    # The parser reads "\r\n" as "\n": `kept[i]` is where its i-th character is in `text`.
    kept = [i for i, ch in enumerate(text) if not (ch == "\r" and text[i + 1:i + 2] == "\n")]
    source = "".join(text[i] for i in kept).replace("\r", "\n").replace("\0", "\ufffd")
    starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"] + [len(source) + 1]
    spans, cursors = [], {}
    for token in _markdown().parse(source):
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


# -- the renderer and the sanitiser -----------------------------------------------------------


def _footer(footer: str) -> str:
    return f"\n<p>{small(footer)}</p>" if footer else ""


@functools.cache
def _markdown():
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
    for name in ("math_inline", "math_single", "math_inline_double"):
        md.add_render_rule(name, _inline_math)
    for name in ("math_block", "math_block_label", "math_block_eqno"):
        md.add_render_rule(name, _display_math)
    md.add_render_rule("amsmath", _environment)
    md.add_render_rule("image", _image)
    md.add_render_rule("th_open", _cell_open)
    md.add_render_rule("td_open", _cell_open)
    return md


def _inline_math(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    if UNSAFE_TEX.search(token.content):
        return f"<code>{escape(token.content)}</code>"
    # `$$…$$` within a line is display math, still inside its paragraph.
    opening, closing = ("\\[", "\\]") if token.type == "math_inline_double" else ("\\(", "\\)")
    return f'<span class="{MATH_CLASS}">{opening}{escape(token.content)}{closing}</span>'


def _display_math(self, tokens, idx, options, env) -> str:
    tex = tokens[idx].content.strip("\n")
    if UNSAFE_TEX.search(tex):
        return f"<pre><code>{escape(tex)}</code></pre>\n"
    return f'<div class="{MATH_CLASS}">\\[{escape(tex)}\\]</div>\n'


def _environment(self, tokens, idx, options, env) -> str:
    tex = tokens[idx].content.strip("\n")
    if UNSAFE_TEX.search(tex):
        return f"<pre><code>{escape(tex)}</code></pre>\n"
    return f'<div class="{MATH_CLASS}">{escape(tex)}</div>\n'


def _image(self, tokens, idx, options, env) -> str:
    # A picture from a model would be fetched as the answer renders (a way to send
    # the conversation to any server): it becomes a link the reader may follow.
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "picture"
    return f'<a href="{escape(token.attrGet("src") or "")}">image: {escape(alt)}</a>'


def _cell_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    style = str(token.attrGet("style") or "")
    align = style.partition(":")[2].strip()
    return f'<{token.tag} align="{align}">' if align in ALIGNMENTS else f"<{token.tag}>"


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    if name != "class":
        return value
    if tag == "code":
        return value if LANGUAGE_CLASS.fullmatch(value) else None
    if tag == "details":
        return value if value in BLOCK_CLASSES else None
    return value if value == MATH_CLASS else None


def _keep_relative(url: str) -> str | None:
    # "java%09script:x" is no scheme to nh3, so it counts as relative; a relative
    # address with a colon before any "/", "?" or "#" is no address anyone meant.
    return None if LOOKS_LIKE_SCHEME.match(url) else url


@functools.cache
def _cleaner():
    import nh3

    return nh3.Cleaner(
        tags=set(TAGS),
        clean_content_tags={"script", "style"},
        attributes={"a": {"href", "title"}, "ol": {"start"}, "code": {"class"},
                    "span": {"class"}, "div": {"class"}, "details": {"class", "open"}},
        tag_attribute_values={"th": {"align": set(ALIGNMENTS)}, "td": {"align": set(ALIGNMENTS)}},
        attribute_filter=_keep_attribute,
        url_schemes=set(URL_SCHEMES),
        url_relative=_keep_relative,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
