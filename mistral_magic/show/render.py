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

Words to check (OCR's low-confidence words) come between `MARK_OPEN` and `MARK_CLOSE` and
become ``<mark>`` before sanitising; an outside HTML table keeps only table markup (`document`).

A model's reasoning and the tool calls of a cell are collapsed blocks (`details`,
the only element with state, and its `summary`): the reasoning above the answer
(`reasoning`), each tool call under it (`tool_block`). Their summaries are escaped
and their bodies are Markdown made safe like any answer; the block is sanitised
again as a whole, so no `ontoggle` or other handler can ride on it. The reasoning is
then given our own fixed style (muted and indented, as a terminal dims it), so that an
opened block does not read as the answer.

Headings in outside text are demoted by two levels (`#` is an `h3`), so an answer's
title sits below the notebook's own title and sections.

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
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "small",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div", "details", "summary", "mark",
})
# What an outside HTML table (`document`) may keep.
TABLE_TAGS = frozenset({"table", "thead", "tbody", "tfoot", "caption", "tr", "th", "td", "br",
                        "p", "em", "strong", "b", "i", "sub", "sup", "code", "mark"})
# Around a word to mark (`marked_html`): private-use characters no text means anything by.
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
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
# An answer's `# Title` becomes an h3: below a notebook's own title (h1) and sections (h2).
HEADING_SHIFT = 2
# Fixed, ours (never from outside text): an opened reasoning block reads as an aside.
REASONING_STYLE = ("color:var(--jp-content-font-color2,#616161);margin:.25em 0 .75em 1.5em;"
                   "padding-left:.75em;border-left:3px solid var(--jp-border-color2,#e0e0e0)")


# -- what other modules call --------------------------------------------------------------


def escape(text: Any) -> str:
    """Text as HTML text: every `<`, `>`, `&` and quote escaped."""
    return html.escape(str(text))


def markdown_html(text: str) -> str:
    """Markdown as sanitised HTML, without the container."""
    return _cleaner().clean(_markdown().render(text))


def marked_html(text: str) -> str:
    """`markdown_html`, the words between `MARK_OPEN` and `MARK_CLOSE` marked (``<mark>``)."""
    # Made before sanitising and without attributes: a mark inside an attribute stays text.
    rendered = _markdown().render(text).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")
    return _cleaner().clean(rendered)


def document(parts: Sequence[tuple[str, str]], footer: str = "", *, plain: str = "") -> dict:
    """A bundle of pieces each made safe its way: ``("markdown", text)`` (with marks, as
    `marked_html`) or ``("html", markup)``: an outside HTML table, of which only table
    markup and inline emphasis survive (`TABLE_TAGS`, cell spans as numbers)."""
    body = "".join(marked_html(text) if kind == "markdown" else _table_cleaner().clean(text)
                   for kind, text in parts)
    return {"text/html": CONTAINER.format(body + _footer(footer)),
            "text/plain": f"{plain}\n\n{footer}" if footer else plain}


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
    block = details(summary, thinking, kind="mistral-reasoning", open_=open_)
    # After sanitising (which drops every style attribute): the style is our own markup.
    return block.replace('<details class="mistral-reasoning"',
                         f'<details class="mistral-reasoning" style="{REASONING_STYLE}"', 1)


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


def sources(items: Sequence[tuple[str, str | None, str]]) -> tuple[str, str]:
    """Numbered sources (title, address, tool) as an HTML list and text lines: a title links
    to its address only when that is an http(s) address; anything else stays text."""
    if not items:
        return "", ""
    rows, lines = [], []
    for number, (title, url, tool) in enumerate(items, 1):
        web = _web_address(url)
        shown = escape(title or url or "source")
        if web:
            shown = f'<a href="{escape(url)}">{shown}</a> <small>{escape(web)}</small>'
        rows.append(f"<li>{shown} <small>· {escape(tool)}</small></li>")
        lines.append(f"({number}) {title}" + (f" — {url}" if web else "") + f" · {tool}")
    markup = f'<p><strong>Sources</strong></p><ol>{"".join(rows)}</ol>'
    return _cleaner().clean(markup), "Sources:\n" + "\n".join(lines)


def _web_address(url: str | None) -> str | None:
    """The host of an http(s) address (what a source shows beside its title), else None."""
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return parts.hostname if parts.scheme in ("http", "https") and parts.hostname else None


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


def code_span(text: str) -> str:
    """Text as one Markdown code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(text: str, language: str = "") -> str:
    """Text inside a Markdown code fence long enough not to be closed by the text."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"


def parse(text: str) -> list:
    """Markdown `text` as the renderer's tokens (for `tokens_html`, or to see its blocks)."""
    return _markdown().parse(text, {})


def tokens_html(tokens: list) -> str:
    """Sanitised HTML of tokens from `parse` (a run of whole top-level blocks), no container."""
    md = _markdown()
    return _cleaner().clean(md.renderer.render(tokens, md.options, {}))


# -- the renderer and the sanitiser -----------------------------------------------------------


def _footer(footer: str) -> str:
    return f"\n<p>{small(footer)}</p>" if footer else ""


@functools.cache
def _markdown():
    from .markdown import new_parser

    md = new_parser()
    for name in ("math_inline", "math_single", "math_inline_double"):
        md.add_render_rule(name, _inline_math)
    for name in ("math_block", "math_block_label", "math_block_eqno"):
        md.add_render_rule(name, _display_math)
    md.add_render_rule("amsmath", _environment)
    md.add_render_rule("image", _image)
    md.add_render_rule("heading_open", _heading)
    md.add_render_rule("heading_close", _heading)
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


def _heading(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    token.tag = f"h{min(int(token.tag[1:]) + HEADING_SHIFT, 6)}"
    return self.renderToken(tokens, idx, options, env)


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
def _table_cleaner():
    import nh3

    span = {"colspan", "rowspan"}  # cell spans, as numbers, are the only attributes kept
    return nh3.Cleaner(tags=set(TABLE_TAGS), clean_content_tags={"script", "style"},
                       attributes={"th": span, "td": span}, url_schemes=set(), strip_comments=True,
                       attribute_filter=lambda tag, name, v: v if v.isdigit() and len(v) < 4 else None)


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
