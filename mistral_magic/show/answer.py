"""Answer: the result of one call, and what it shows (its footer and its provenance).

An `Answer` is what every call returns, whoever sent it: the text, the usage and
cost, timings, and how it ended (``ok``, ``error`` or ``interrupted``), with the
reasoning a thinking model showed and the tool calls it asked for. A cell whose
model called tools (`tools.loop`) answers with one `Answer` for all its steps: the
usage and cost summed, the tool runs and the messages between the prompt and the
final reply. Its footer is the one line under a rendered answer (model, tokens and
thinking tokens, cost, steps, speed, backend, chat and the session's total; an OCR
call shows its pages instead of tokens, a transcription its minutes of audio, speech its
characters; prompt tokens served from the prompt cache follow the cost, with what they
saved; a conversation's built-in tools, their uses and their cost, unknown while Mistral
publishes none); its provenance is the output metadata (never a key; a conversation's agent
and version, sources and tools too).

The offline server opens each answer with a label line ("*Offline answer from … generated
locally.*"): it stays on screen, and out of the answer's value (`reply`: what ``-o VAR``
gets and the chat keeps; `banner` holds the line).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from ..version import __version__

# Glyphs Debian's default fonts (DejaVu, Liberation) have: ⏹ shows there as an empty box.
INTERRUPTED_MARK = "\n\n*■ interrupted — partial answer*"
FAILED_MARK = "\n\n*⚠ the answer broke off — partial answer, not kept as context*"


@dataclass
class Answer:
    """The result of one call: text, usage, cost, timings and how it ended."""

    text: str
    model: str
    chat: str | None
    status: str  # ok | error | interrupted
    request: dict
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str | None = None
    backend: str = "offline"
    error: str | None = None
    budget_capped: bool = False  # max_tokens was the budget's cap, not the user's
    value: Any = None  # the parsed result in --json / --schema modes
    raw: dict = field(default_factory=dict)
    streamed: bool = True
    cached: bool = False  # served from the response cache: nothing sent, cost 0
    saved: float | None = None  # what the cached answer cost when it was first paid for
    foreign: bool = False  # served from a stored answer this user did not write (its tools ask)
    pages: int | None = None  # an OCR call's pages (priced per page); None for token-priced calls
    annotated: bool = False  # those pages were read with an annotation format (their own price)
    audio_seconds: float | None = None  # audio heard (priced per minute); None: no audio
    characters: int | None = None  # characters spoken (speech, priced per 1M); None: no speech
    cached_tokens: int | None = None  # prompt tokens the server took from its prompt cache
    cached_saved: float | None = None  # USD those tokens saved (billed at the cached price)
    thinking: str = ""  # the reasoning shown (every step's, for a tool exchange)
    thinking_tokens: int | None = None  # counted with the tokenizer, the two markers included
    final_thinking: str | None = None  # the last step's reasoning (None: `thinking`)
    tool_calls: list[dict] = field(default_factory=list)  # this call's, in the API's wire form
    steps: int = 1  # calls to the model that made this answer
    tool_runs: list = field(default_factory=list)  # `tools.functions.ToolRun`s, in the order they ran
    exchange: list[dict] = field(default_factory=list)  # messages between prompt and reply
    research: Any = None  # a conversation's `show.sources.Research`: sources, tool runs, pictures

    def __str__(self) -> str:
        return self.text

    @property
    def tokens_per_s(self) -> float | None:
        # Without a stream the whole answer arrives at once: there is no speed to measure.
        if not self.streamed or not self.completion_tokens or self.latency_s is None:
            return None
        generating = self.latency_s - (self.ttft_s or 0.0)
        return self.completion_tokens / generating if generating > 0 else None

    @property
    def banner(self) -> str:
        """The offline server's label line the answer opens with ("" for any other backend)."""
        return split_banner(self.text, self.backend)[0]

    @property
    def reply(self) -> str:
        """The answer as a value (``-o VAR``, the chat's turn): without the offline label line."""
        return split_banner(self.text, self.backend)[1]

    @property
    def mark(self) -> str:
        """What follows the text of an answer that did not finish."""
        return {"interrupted": INTERRUPTED_MARK, "error": FAILED_MARK}.get(self.status, "")


@functools.cache
def _banner_pattern() -> re.Pattern:
    from ..offline.prose import label

    # The label of a model named "\0", with the name made a pattern (re.escape keeps NUL).
    template = re.escape(label("\0")).replace("\0", r"[^\n]{1,200}?")
    return re.compile(template + r"[ \t]*(?:\n+|$)")


def split_banner(text: str, backend: str) -> tuple[str, str]:
    """(the offline label line, the rest) of an answer's text; ("", text) when it has none."""
    if backend != "offline" or not text.startswith("*Offline answer from "):
        return "", text
    found = _banner_pattern().match(text)
    if found is None:
        return "", text
    return found[0].strip(), text[found.end():]


def footer(answer: Answer, totals: dict, budget_left: float | None) -> str:
    """The line under an answer; `totals` are the ledger's, `budget_left` what the budget has."""
    from ..money.usage import format_cost, format_tokens

    if answer.pages is not None:
        tokens = f"{answer.pages:,} page{'' if answer.pages == 1 else 's'}"
    elif answer.characters is not None:
        tokens = f"{answer.characters:,} character{'' if answer.characters == 1 else 's'} spoken"
    elif answer.audio_seconds is not None and not answer.request.get("messages"):
        tokens = minutes(answer.audio_seconds)
    else:
        tokens = f"{format_tokens(answer.prompt_tokens)} in / {format_tokens(answer.completion_tokens)} out"
    if answer.thinking_tokens:
        tokens += f" ({format_tokens(answer.thinking_tokens)} thinking)"
    if answer.audio_seconds is not None and answer.request.get("messages"):
        tokens += f" + {minutes(answer.audio_seconds)}"
    parts = [answer.model, tokens]
    research = answer.research
    if research is not None and research.uses:
        parts.append(research.uses_text())
    if answer.cached:
        parts.append(f"cached · {format_cost(answer.cost)} (saved {format_cost(answer.saved)})")
    elif research is not None and research.uses and answer.cost is None:
        # The tokens are priced; the tools are not (never shown as $0).
        parts.append(f"{format_cost(research.token_cost)} + tools: unknown")
    else:
        parts.append(format_cost(answer.cost))
    if answer.cached_tokens:
        parts.append(f"{format_tokens(answer.cached_tokens)} in from the prompt cache, saved "
                     f"{format_cost(answer.cached_saved)}")
    if answer.steps > 1 or answer.tool_runs:
        runs = len(answer.tool_runs)
        parts.append(f"{answer.steps} step{'' if answer.steps == 1 else 's'}, "
                     f"{runs} tool call{'' if runs == 1 else 's'}")
    if answer.ttft_s is not None:
        parts.append(f"first token {answer.ttft_s:.2f} s")
    if answer.tokens_per_s:
        parts.append(f"{answer.tokens_per_s:,.0f} tok/s")
    parts.append(answer.backend)
    if answer.chat:
        parts.append(f"chat {answer.chat}")
    session = f"session {format_cost(totals['cost'])}"
    if answer.cost is None and not totals.get("cost_known", True):
        # Said on the call whose price is unknown; later footers do not repeat it
        # (the meter and %mistral usage keep the full account).
        session += " + unknown"
    calls = totals['calls']
    parts.append(f"{session} over {calls} call{'' if calls == 1 else 's'}")
    if answer.finish_reason == "length":
        if answer.budget_capped:
            parts.append(f"cut by budget ({format_cost(budget_left or 0.0)} left)")
        else:
            parts.append("cut at max_tokens")
    return " · ".join(parts)


def minutes(seconds: float) -> str:
    """Audio as the footer shows it: minutes, as it is priced."""
    return f"{seconds / 60:,.2f} min of audio"


def provenance(answer: Answer) -> dict:
    """Output metadata: where the answer came from. Never a key."""
    request = answer.request
    params = {k: request[k] for k in ("temperature", "max_tokens", "random_seed", "reasoning_effort",
                                      "prompt_mode", "tool_choice") if k in request}
    return {
        "model": answer.model,
        "params": params,
        "seed": request.get("random_seed"),
        "chat": answer.chat,
        "status": answer.status,
        "finish_reason": answer.finish_reason,
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            **({} if answer.pages is None else {"pages": answer.pages}),
            **({} if answer.audio_seconds is None else {"audio_seconds": answer.audio_seconds}),
            **({} if answer.characters is None else {"characters": answer.characters}),
            **({"cached_tokens": answer.cached_tokens} if answer.cached_tokens else {}),
        },
        "cost_usd": answer.cost,
        "latency_s": round(answer.latency_s or 0.0, 4),
        "ttft_s": None if answer.ttft_s is None else round(answer.ttft_s, 4),
        "backend": answer.backend,
        "cached": answer.cached,
        "thinking_tokens": answer.thinking_tokens,
        "steps": answer.steps,
        "tool_calls": [run.record() for run in answer.tool_runs],
        **({} if answer.research is None else _research(answer.research)),
        "version": __version__,
    }


def _research(research) -> dict:
    """What a conversation adds to the provenance: the agent (its version), the tools used, the
    sources and the conversation."""
    link = research.link or {}
    return {"agent": research.agent, "tool_uses": dict(research.uses),
            "sources": [{"title": s.title, "url": s.url, "tool": s.tool} for s in research.sources],
            "conversation_id": link.get("id")}
