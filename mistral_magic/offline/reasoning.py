"""Reasoning offline: which requests think, and the deterministic thinking they show.

As the hosted API does it (reasoning guide, and its 400s as clients have seen them):
- `mistral-small-2603` / `mistral-medium-3-5` (and `zai-glm-5-2`) reason when asked:
  `reasoning_effort` "high" thinks, "none" does not; any other effort is refused with
  "reasoning_effort='medium' is not supported for this model. Must be one of (...)".
  `prompt_mode: "reasoning"` is refused on them: "Reasoning prompt mode is not enabled
  for this model".
- Magistral (native reasoning) always thinks unless `reasoning_effort` is "none";
  `prompt_mode: "reasoning"` is its default system prompt and changes nothing here.
- A model that cannot reason refuses any effort but "none", and `prompt_mode`.

The answer's content is then a list: a `ThinkChunk` (`{"type": "thinking", "thinking":
[{"type": "text", "text": ...}]}`) and a `TextChunk` with the answer. The thinking is
made from the request (its question, terms, numbers, history, attachments, tools) and
says it was generated offline; its length grows with the effort (`PARAGRAPHS`), and
Magistral's native default is "medium". Thinking tokens are completion tokens, with
the `[THINK]` and `[/THINK]` control tokens (`MARKER_TOKENS`).
"""

from __future__ import annotations

import ast
import operator
import random
import re

from ..money import tokens
from . import catalogue, words
from .wire import ChatRequest, RequestError, error_body

PARAGRAPHS = {"minimal": 1, "low": 2, "medium": 4, "high": 7, "xhigh": 10}
NATIVE_EFFORT = "medium"
MARKER_TOKENS = tokens.THINK_MARKERS
_ARITHMETIC = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:\s*[-+*/×x÷^]\s*-?\d+(?:\.\d+)?)+(?![\w.])")


def _refuse(message: str) -> RequestError:
    return RequestError(400, error_body(message, "invalid_request_invalid_args", "3051"))


def effort(req: ChatRequest, model: catalogue.Model) -> str | None:
    """The effort this request thinks at, or None when it does not think; 400 as the hosted API refuses."""
    if req.prompt_mode == "reasoning" and not model.native_reasoning:
        raise _refuse("Reasoning prompt mode is not enabled for this model")
    asked = req.reasoning_effort
    if asked is not None and asked != "none":
        if not model.efforts:
            able = ", ".join(catalogue.able("reasoning")[:6])
            raise _refuse(f"reasoning_effort='{asked}' is not supported for this model: {model.id} cannot reason "
                          f"(models that can: {able})")
        if asked not in model.efforts:
            allowed = ", ".join(f"<ReasoningEffort.{e}: '{e}'>" for e in model.efforts)
            raise _refuse(f"reasoning_effort='{asked}' is not supported for this model. Must be one of ({allowed})")
        return asked
    if asked == "none":
        return None
    return NATIVE_EFFORT if model.native_reasoning else None


def _evaluate(expression: str) -> float | None:
    """The value of a small arithmetic expression, or None; no names, no calls, bounded powers."""
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    text = re.sub(r"(?<=\d)\s*x\s*(?=-?\d)", "*", text)
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.USub: operator.neg}

    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise ValueError("power too large")
            return ops[type(node.op)](left, right)
        raise ValueError("not arithmetic")

    try:
        value = walk(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    return value


def arithmetic(text: str) -> list[str]:
    """`17 * 23 = 391`-style lines for the sums written in the text."""
    found = []
    for match in _ARITHMETIC.finditer(text):
        if re.fullmatch(r"\d+(?:-\d+)+", match.group(0)):
            continue  # a date or an id written with hyphens, not a subtraction
        value = _evaluate(match.group(0))
        if value is not None:
            shown = int(value) if float(value).is_integer() else round(value, 6)
            found.append(f"{match.group(0).strip()} = {shown}")
    return found[:4]


def thinking(level: str, question: str, previous: str | None, context: list[str], rng: random.Random) -> str:
    """A deterministic, labelled reasoning trace about the question, `PARAGRAPHS[level]` paragraphs long."""
    terms = words.keywords(question, limit=6)
    quote = words.phrase(question.replace("\n", " "), 16) or "(no text)"
    named = f"The terms that matter are {', '.join(terms)}." if terms else "It has no key terms beyond what it states."
    pool = [f"Offline reasoning trace (generated locally by mistral_magic, not by a model). "
            f"The user asks: “{quote}”. {named}"]
    terms = terms or ["the question"]
    sums = arithmetic(question)
    if sums:
        pool.append("There is arithmetic to do. Working it out step by step: " + "; ".join(sums) + ".")
    if previous:
        pool.append(f"Earlier in the conversation they asked “{words.phrase(previous, 12)}”, so this follows on from that.")
    pool += context
    for term in terms:
        pool.append(rng.choice((
            f"Consider {term} first: what does the question need to know about it, and what can be left out?",
            f"Next, {term}. Is there an assumption hidden here? Check it against the wording of the question.",
            f"On {term}: a short, direct statement is better than a long hedge; keep the answer focused.",
            f"What about {term}? Compare it with the other terms and see which one drives the answer.",
        )))
    pool.append("Plan: answer the question directly, then add the few details that support it.")
    pool.append("Double-check: the answer should use the user's own terms and not invent facts.")
    count = PARAGRAPHS[level]
    chosen = pool[:count]
    while len(chosen) < count:
        # The longest efforts revisit the terms once more, as a model's second pass would.
        term = terms[len(chosen) % len(terms)]
        chosen.append(f"Going over {term} again to be sure nothing was missed (pass {len(chosen) - len(pool) + 2}).")
    return "\n\n".join(chosen)
