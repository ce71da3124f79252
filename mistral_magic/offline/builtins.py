"""Mistral's built-in tools, offline: web search over a shipped corpus, library search, pictures, code.

Which tools run for a user's message (`plan`), deterministically:

- `web_search` / `web_search_premium`: one search per question the message asks (a
  sentence ending in "?", at most `MAX_SEARCHES`), else one for the whole message; the
  query is its key words. Results come from `corpus` (the premium tool returns more of
  them), never from the network; each becomes a ``tool_reference`` citation.
- `document_library`: one search of the libraries named (`libraries.Libraries.search`):
  passages of processed documents, cited with the document's name.
- `image_generation`: when the message asks for a picture (draw, image, picture, ...) or it
  is the only built-in tool given: a PNG made here (a labelled card, plainly offline),
  stored as a file (``tool_file`` chunk; `GET /v1/files/{id}/content` downloads it).
- `code_interpreter`: when the message asks to compute, plot or run something, or it is the
  only built-in tool: the code a model might run, with ``code_output`` saying that the
  offline server does not run code.

`require(model, kinds)` refuses (400) a model without built-in tools, naming those that have
them. Each run's text (what it found) is counted as connector tokens.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field

from ..money import tokens
from . import catalogue, corpus, words
from .wire import RequestError, error_body

NAMES = ("web_search", "web_search_premium", "code_interpreter", "image_generation", "document_library")
#: the models whose cards the docs give built-in tools (MISTRAL_FACTS_WAVE3 §3)
MODELS = ("mistral-large-2512", "mistral-medium-3-5", "mistral-small-2603")
MAX_SEARCHES = 2
RESULTS = {"web_search": 3, "web_search_premium": 5}
IMAGE_CUES = re.compile(r"\b(draw|drawing|picture|image|illustrat\w*|sketch|paint\w*|logo|poster|icon)\b", re.I)
CODE_CUES = re.compile(r"\b(compute|calculate|code|python|run|plot|simulate|statistics?|mean|median|"
                       r"average|sum|regression|fit|chart)\b", re.I)
NOT_RUN = ("Not run: the offline server does not execute code. With a Mistral API key, the code "
           "interpreter runs it on Mistral's servers (never in your kernel) and its output shows here.")


def require(model: str, kinds: list[str]) -> None:
    """400 when `kinds` has a built-in tool and `model` is not one of `MODELS`."""
    wanted = [kind for kind in kinds if kind in NAMES]
    found = catalogue.find(model)
    if not wanted or (found is not None and found.id in MODELS):
        return
    able = ", ".join(f"{m} ({catalogue.find(m).aliases[0]})" if catalogue.find(m) and catalogue.find(m).aliases
                     else m for m in MODELS)
    raise RequestError(400, error_body(
        f"Model {model} does not support built-in tools ({', '.join(wanted)}); models that do: {able}",
        "invalid_request_error", "3051", "tools"))


@dataclass
class Run:
    """One execution of a built-in tool: its entry's fields, and what it brings to the answer."""

    name: str
    arguments: dict
    info: dict = field(default_factory=dict)
    found: list[dict] = field(default_factory=list)  # tool_reference chunks
    file: dict | None = None  # a tool_file chunk
    read: str = ""  # what the model read from the tool (connector tokens)

    def connector_tokens(self) -> int:
        return tokens.count_text(self.read) if self.read else 0


def plan(question: str, kinds: list[str]) -> list[tuple[str, dict]]:
    """(tool, arguments) of every built-in tool call this message makes, in order."""
    given = list(dict.fromkeys(k for k in kinds if k in NAMES))
    only = len(given) == 1
    calls: list[tuple[str, dict]] = []
    for kind in given:
        if kind in RESULTS:
            asked = [s.strip() for s in re.split(r"(?<=\?)\s+", question) if s.strip().endswith("?")]
            for text in (asked or [question])[:MAX_SEARCHES]:
                calls.append((kind, {"query": " ".join(words.keywords(text, limit=8)) or text.strip()[:120]}))
        elif kind == "document_library":
            calls.append((kind, {"query": " ".join(words.keywords(question, limit=10)) or question[:120]}))
        elif kind == "image_generation" and (only or IMAGE_CUES.search(question)):
            calls.append((kind, {"prompt": question.strip()[:400]}))
        elif kind == "code_interpreter" and (only or CODE_CUES.search(question)):
            calls.append((kind, {"code": code_for(question)}))
    return calls


def run(name: str, arguments: dict, *, libraries, library_ids: list[str], files) -> Run:
    """Execute one built-in tool call offline."""
    done = Run(name, arguments)
    if name in RESULTS:
        pages = corpus.search(arguments["query"], RESULTS[name])
        done.found = [{"type": "tool_reference", "tool": name, "title": p.title, "url": p.url,
                       "favicon": None, "description": p.snippet()} for p in pages]
        done.read = "\n".join(f"{p.title}: {p.description}" for p in pages)
    elif name == "document_library":
        passages = libraries.search(library_ids, arguments["query"])
        done.found = [{"type": "tool_reference", "tool": name, "title": title, "url": None,
                       "favicon": None, "description": _short(passage)} for title, passage in passages]
        done.read = "\n".join(passage for _, passage in passages)
    elif name == "image_generation":
        png = picture(arguments["prompt"])
        meta = files.add("image_generated_0.png", png, "ocr", "instruct", source="mistral", mimetype="image/png")
        done.file = {"type": "tool_file", "tool": name, "file_id": meta["id"],
                     "file_name": "image_generated_0", "file_type": "png"}
    elif name == "code_interpreter":
        done.info = {"code": arguments["code"], "code_output": NOT_RUN}
    return done


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def entry_arguments(run_: Run) -> str:
    return json.dumps(run_.arguments, ensure_ascii=False)


def code_for(question: str) -> str:
    """The code a model might write for the message: its numbers, summarised."""
    numbers = words.numbers(question)[:12] or [3, 1, 4, 1, 5, 9, 2, 6]
    shown = ", ".join(f"{n:g}" for n in numbers)
    topic = words.phrase(question.replace("\n", " "), 10).replace('"', "'")
    return (f'# Offline stand-in for: "{topic}"\n'
            "import statistics\n\n"
            f"values = [{shown}]\n"
            'print("count:", len(values))\n'
            'print("mean:", statistics.mean(values))\n'
            'print("median:", statistics.median(values))\n')


def picture(prompt: str) -> bytes:
    """A PNG card naming the prompt, plainly offline: the same prompt makes the same bytes."""
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(prompt.encode()).digest()
    width, height = 512, 320
    top, bottom = tuple(digest[0:3]), tuple(digest[3:6])
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):  # a vertical gradient between two colours from the prompt
        t = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    draw.rectangle([24, 24, width - 24, height - 24], fill=(255, 255, 255), outline=(40, 40, 40), width=3)
    lines = ["OFFLINE PICTURE", "made locally by mistral_magic,", "not by an image model", ""]
    lines += _wrap(words.phrase(prompt.replace("\n", " "), 24), 44)[:5]
    for i, line in enumerate(lines):
        draw.text((44, 44 + 22 * i), line, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def answer(model: str, question: str, runs: list[Run], tail: str = "") -> list[dict]:
    """The message's content: text chunks interleaved with what the tools found.

    `tail` is text that comes before the closing line (an answer written from function results).
    """
    def text(value: str) -> dict:
        return {"type": "text", "text": value}

    chunks = [text(f"*Offline answer from {model}, with built-in tools — no network: searches read a "
                   "small corpus shipped with the server.*\n\n")]
    if tail:
        chunks.append(text(tail.strip() + "\n\n"))
    for done in runs:
        if done.name in RESULTS:
            chunks.append(text(f"**Searched for “{done.arguments['query']}”.** "))
            for reference in done.found:
                chunks += [text(f"{reference['description']} "), reference]
            chunks.append(text("\n\n"))
        elif done.name == "document_library":
            if not done.found:
                chunks.append(text("The library has no processed document that speaks to this yet.\n\n"))
            for reference in done.found:
                chunks += [text(f"From {reference['title']}: “{words.phrase(reference['description'], 40)}” "),
                           reference, text("\n\n")]
        elif done.name == "image_generation":
            chunks += [text("Here is the picture you asked for, drawn offline: "), done.file, text("\n\n")]
        elif done.name == "code_interpreter":
            chunks.append(text("I wrote Python for this (shown with the tool call). The offline server does not "
                               "run code, so there is no result to report.\n\n"))
    chunks.append(text("_Offline mode: the words above are assembled from the tools' results, not written "
                       "by a language model._"))
    return chunks
