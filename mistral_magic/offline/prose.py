"""The offline model's Markdown answers: labelled, about the prompt, varied by seed."""

from __future__ import annotations

import random
import re

from . import words

CODE_CUES = re.compile(
    r"\b(code|function|python|script|implement\w*|program\w*|snippet|class|def|algorithm|"
    r"regex|sql|method|refactor|debug|bug|unit test|pandas|numpy|loop)\b",
    re.IGNORECASE,
)

_HEADINGS = (
    "About {A}", "{A}: an offline overview", "Notes on {a} and {b}", "Quick take: {A}",
    "{A}, {b} and what to know", "Thinking about {a}",
)
_OPENINGS = (
    "You asked about {kws}.", "Your question touches on {kws}.",
    "Here is a short offline take on {kws}.", "This answer looks at {kws}.",
    "Let's go through {kws}.",
)
_FOLLOWUPS = (
    "Following up on your earlier question about “{prev}”, this builds on what came before.",
    "Following up on your earlier question about “{prev}”, here is the next step.",
    "Following up on your earlier question about “{prev}”: the history reached the model.",
)
_BULLETS = (
    "**{W}** — the first thing to pin down; a hosted model would explain it in depth here.",
    "**{W}**: compare it with {other} to see what changes.",
    "**{W}** matters most when the details of “{quote}” are taken literally.",
    "**{W}** — a good keyword to search for in the documentation.",
    "**{W}**: start small, check the result, then generalise.",
    "**{W}** is where most of the nuance in your prompt sits.",
)
_CLOSINGS = (
    "_Generated locally by mistral_magic's offline server, not by a Mistral model; set `MISTRAL_API_KEY` for real answers._",
    "_Generated locally without a model, as offline demo text. Add an API key for real answers._",
    "_Offline mode: the words above are made up from your prompt, not produced by a language model._",
)
_FILLERS = (
    "More on {a}: this paragraph is offline filler that makes the answer the requested length.",
    "Another angle on {b}: offline text, generated locally, repeated to reach a target size.",
    "On {a} and {b} together: offline text continues here so streaming can be measured.",
)


def label(model: str) -> str:
    return f"*Offline answer from {model} — no network, generated locally.*"


def identifier(parts: list[str], fallback: str = "offline_example") -> str:
    """A valid, readable Python identifier built from prompt words."""
    clean = [re.sub(r"\W", "", p.lower()) for p in parts]
    name = "_".join(p for p in clean if p)[:40].strip("_")
    if not name or not name.isidentifier() or name[0].isdigit():
        return fallback
    import keyword

    return name + "_" if keyword.iskeyword(name) else name


def _quote(text: str, max_words: int = 10) -> str:
    return words.phrase(text.replace("“", "").replace("”", "").replace("\n", " "), max_words)


def code_block(kws: list[str], quote: str, rng: random.Random) -> str:
    """A small valid Python function named after the prompt's words."""
    # Words like "python" or "function" say that code is wanted, not what it does.
    topical = [k for k in kws if not CODE_CUES.fullmatch(k) and k.lower() not in ("write", "create")]
    name = identifier(topical[:3] or kws[:3])
    doc = _quote(quote, 10).replace("\\", "").replace('"', "'") or "offline example"
    bodies = (
        ("items", "    result = []\n    for item in items:\n        if item is not None:\n"
                  "            result.append(item)\n    return result"),
        ("values", "    total = 0\n    for value in values:\n        total += value\n    return total"),
        ("text", "    counts = {}\n    for word in text.split():\n"
                 "        counts[word] = counts.get(word, 0) + 1\n    return counts"),
        ("data", "    return sorted(data, key=str)"),
    )
    arg, body = rng.choice(bodies)
    return (f"```python\ndef {name}({arg}):\n    \"\"\"Offline example for: {doc}\"\"\"\n{body}\n```")


def answer(model: str, last_user: str, previous_user: str | None, system: str | None,
           extra: list[str], rng: random.Random) -> str:
    """A Markdown answer about the last user message, referring to the previous turn.

    `extra` holds bullets about what came with the message (pictures, documents).
    """
    kws = words.keywords(last_user, limit=5) or ["your prompt"]
    a, b = kws[0], kws[1] if len(kws) > 1 else "the context"
    quote = _quote(last_user)
    heading = rng.choice(_HEADINGS).format(A=a[:1].upper() + a[1:], a=a, b=b)
    kws_md = ", ".join(f"**{k}**" for k in kws[:-1]) + (" and " if len(kws) > 1 else "") + f"**{kws[-1]}**"
    parts = [label(model), "", f"## {heading}", ""]
    parts.append(f"{rng.choice(_OPENINGS).format(kws=kws_md)} You wrote: “{quote}”.")
    if previous_user:
        parts.append(rng.choice(_FOLLOWUPS).format(prev=_quote(previous_user, 12)))
    parts.append("")
    bullet_words = kws[:3]
    templates = rng.sample(_BULLETS, k=len(bullet_words))
    for i, (word, template) in enumerate(zip(bullet_words, templates, strict=True)):
        other = kws[(i + 1) % len(kws)] if len(kws) > 1 else "the alternatives"
        parts.append("- " + template.format(W=word[:1].upper() + word[1:], other=other, quote=_quote(last_user, 5)))
    if system:
        parts.append(f"- Instructions followed: “{_quote(system, 12)}”.")
    parts += [f"- {line}" for line in extra]
    if CODE_CUES.search(last_user):
        parts += ["", code_block(kws, last_user, rng)]
    parts += ["", rng.choice(_CLOSINGS)]
    return "\n".join(parts)


def tool_answer(model: str, results: list[tuple[str, dict, str]], question: str) -> str:
    """The final answer once tool results came back: it quotes them, with the arguments that produced them."""
    parts = [label(model), "", "## Answer from the tool results", ""]
    if question:
        parts += [f"You asked: “{_quote(question, 14)}”.", ""]
    for name, args, content in results:
        shown = ", ".join(f"{k}={v!r}" for k, v in list(args.items())[:4])
        parts.append(f"- `{name}({shown})` returned: {content.strip()[:500] or '(nothing)'}")
    if len(results) > 1:
        parts += ["", f"Together, the {len(results)} results answer the question above."]
    parts += ["", "_Offline mode: this answer only restates the tool output; no model interpreted it._"]
    return "\n".join(parts)


def ask_for(model: str, missing: list[tuple[str, list[str]]], question: str) -> str:
    """The answer that asks for the values a tool needs and the prompt did not give."""
    parts = [label(model), ""]
    if question:
        parts += [f"You asked: “{_quote(question, 14)}”.", ""]
    for name, params in missing:
        spoken = " and the ".join(p.replace("_", " ") for p in params)
        parts.append(f"I can look this up with `{name}`, but I need the {spoken} first: which {spoken} "
                     "should I use?")
    parts += ["", "_Offline mode: the offline model asks rather than call a tool with a made-up value._"]
    return "\n".join(parts)


def passages(text: str, question: str, limit: int = 3) -> list[str]:
    """Sentences of `text` that share content words with the question, in document order."""
    asked = {w.lower() for w in words.keywords(question, limit=12)}
    if not asked:
        return []
    found = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        sentence = sentence.strip()
        if sentence and asked & {w.lower() for w in words.keywords(sentence, limit=30)}:
            found.append(sentence if len(sentence) <= 240 else sentence[:239] + "…")
            if len(found) >= limit:
                break
    return found


def filler(last_user: str, rng: random.Random):
    """Paragraph maker used to stretch an answer to an exact token length."""
    kws = words.keywords(last_user, limit=3) or ["offline", "text"]
    a, b = kws[0], kws[-1]

    def make(i: int) -> str:
        return "\n\n" + _FILLERS[(i + rng.randrange(3)) % len(_FILLERS)].format(a=a, b=b)

    return make
