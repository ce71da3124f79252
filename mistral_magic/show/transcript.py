"""A chat as a document to hand out: Markdown, or a notebook of `%%mistral` cells with outputs.

`markdown(chat)` writes each turn as the prompt, the answer (with the offline label it was
shown with), its reasoning as a quote, its tool calls, what went with the prompt (sources:
documents by name, pictures by kind) and its footer. `notebook(chat)` makes a new notebook
that loads the extension, then one ``%%mistral -c NAME`` cell per turn (the first with the
chat's ``-s`` system prompt) whose output is the answer rendered as the cell showed it.

What goes out is for other people: no key (the keys in use are redacted wherever they
appear), no signed or data URL (a source is named, never linked), no local path (the home
folder is written ``~``, the working folder ``.``). Text from the model stays data: the
notebook's outputs come from `render`, the Markdown is the model's own Markdown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import render


def scrubber(keys: Callable[[], Any] | None = None) -> Callable[[str], str]:
    """A function that takes the keys in use and the local folders out of text."""
    from ..store.secrets import Scrubber

    secrets = Scrubber(keys).secrets()
    places = sorted(((str(Path.cwd()), "."), (str(Path.home()), "~")), key=lambda p: -len(p[0]))

    def scrub(text: str) -> str:
        text = Scrubber.text(text or "", secrets)
        for place, shown in places:
            if len(place) > 1:  # never "/" itself
                text = text.replace(place + os.sep, shown + os.sep).replace(place, shown)
        return text

    return scrub


def sources(turn) -> list[str]:
    """What went with a turn's prompt, named (documents) or described (pictures); no URL."""
    named = []
    for chunk in turn.images:
        if chunk.get("type") == "document_url":
            named.append(f"document: {Path(str(chunk.get('document_name') or 'a file')).name}")
            continue
        url = str(chunk.get("image_url") or "")
        if url.startswith("data:"):
            named.append(f"picture ({url[5:].split(';', 1)[0] or 'image'})")
        elif url.startswith(("http://", "https://")):
            named.append(f"picture from {urlsplit(url).hostname}")
        else:
            named.append("picture (uploaded)")
    return named


def _footer(turn) -> str:
    if turn.footer:
        return turn.footer
    from ..money.usage import format_cost, format_tokens

    return (f"{turn.model} · {format_tokens(turn.prompt_tokens)} in / "
            f"{format_tokens(turn.completion_tokens)} out · {format_cost(turn.cost)}")


def _answer(turn) -> str:
    from .answer import FAILED_MARK, INTERRUPTED_MARK

    text = f"{turn.banner}\n\n{turn.answer}" if turn.banner else turn.answer
    if turn.status == "interrupted":
        text += INTERRUPTED_MARK
    elif turn.status == "error":
        text = f"{text}{FAILED_MARK}" if text else f"*⚠ {turn.error or 'the request failed'}*"
    return text


def markdown(chat, scrub: Callable[[str], str]) -> str:
    """The chat as one Markdown document."""
    parts = [f"# Chat {render.code_span(scrub(chat.name))}", ""]
    if chat.system:
        parts += [f"*System prompt:* {scrub(chat.system)}", ""]
    for number, turn in enumerate(chat.turns, 1):
        parts += [f"## {number}. You", "", scrub(turn.prompt), ""]
        if turn.images:
            parts += ["*Sent with it:* " + ", ".join(scrub(s) for s in sources(turn)), ""]
        parts += [f"## {number}. {scrub(turn.model or 'assistant')}", ""]
        if turn.thinking:
            size = f" · {turn.thinking_tokens:,} tokens" if turn.thinking_tokens else ""
            quoted = "\n".join(f"> {line}" if line else ">" for line in
                               scrub(turn.thinking).splitlines())
            parts += [f"> **Reasoning**{size}", ">", quoted, ""]
        parts += [scrub(_answer(turn)), ""]
        if turn.tools:
            parts += ["**Tool calls**", ""]
            parts += [f"- {scrub(run.plain())}" for run in turn.tools] + [""]
        parts += [f"<sub>{render.escape(scrub(_footer(turn)))}</sub>", ""]
    return "\n".join(parts)


def notebook(chat, scrub: Callable[[str], str]):
    """The chat as a new notebook (an `nbformat` node): one `%%mistral` cell per turn."""
    import nbformat

    v4 = nbformat.v4
    title = f"# Chat `{scrub(chat.name)}`\n\nExported from mistral_magic: each cell below is a turn, with its answer."
    cells = [v4.new_markdown_cell(title), v4.new_code_cell("%load_ext mistral_magic")]
    for number, turn in enumerate(chat.turns):
        line = f"%%mistral -c {_quoted(scrub(chat.name))}"
        if number == 0 and chat.system:
            line += f" -s {_quoted(scrub(chat.system))}"
        prompt = scrub(turn.prompt)
        if "{" in prompt or "}" in prompt:  # the prompt as it was sent, names already filled in
            line += " --no-interpolate"
        cell = v4.new_code_cell(f"{line}\n{prompt}")
        said = sources(turn)
        if said:
            cells.append(v4.new_markdown_cell(
                "The next turn was sent with: " + ", ".join(scrub(s) for s in said)
                + " (not included here)."))
        above = render.reasoning(scrub(turn.thinking), turn.thinking_tokens)
        html, plain_tools = render.tool_blocks(_Scrubbed(run, scrub) for run in turn.tools)
        answer, footer = scrub(_answer(turn)), scrub(_footer(turn))
        plain = "\n\n".join(p for p in (render.reasoning_plain(turn.thinking_tokens), answer,
                                         plain_tools, footer) if p)
        bundle = render.markdown(answer, footer, plain=plain, above=above, below=html)
        metadata = {"mistral_magic": {
            "model": turn.model, "chat": chat.name, "status": turn.status,
            "usage": {"prompt_tokens": turn.prompt_tokens,
                      "completion_tokens": turn.completion_tokens},
            "cost_usd": turn.cost, "exported": True}}
        cell.outputs = [v4.new_output("display_data", data=bundle, metadata=metadata)]
        cells.append(cell)
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


class _Scrubbed:
    """A tool run whose shown text (summary, details, line) is scrubbed."""

    def __init__(self, run, scrub: Callable[[str], str]):
        self.run, self.scrub = run, scrub
        self.error = run.error

    def summary(self) -> str:
        return self.scrub(self.run.summary())

    def details(self) -> str:
        return self.scrub(self.run.details())

    def plain(self) -> str:
        return self.scrub(self.run.plain())
