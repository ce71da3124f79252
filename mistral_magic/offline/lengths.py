"""Cutting answers to token budgets and stop strings, with the shared tokenizer."""

from __future__ import annotations

from ..money import tokens


def cut_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text`, on a token boundary, that counts at most `limit` tokens."""
    if limit <= 0:
        return ""
    parts = tokens.pieces(text)
    if len(parts) <= limit and tokens.count_text(text) <= limit:
        return text
    low, high = 0, min(len(parts), limit)
    # Re-tokenising a prefix can merge differently at the cut, so search on the real count.
    while low < high:
        mid = (low + high + 1) // 2
        if tokens.count_text("".join(parts[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return "".join(parts[:low])


def cut_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    positions = [text.find(stop) for stop in stops if stop]
    positions = [p for p in positions if p >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


def finish(text: str, stops: list[str], max_tokens: int | None, natural: str = "stop") -> tuple[str, str]:
    """Apply stop strings then max_tokens; return the final text and its finish_reason."""
    text, stopped = cut_stop(text, stops)
    if max_tokens is not None:
        cut = cut_tokens(text, max_tokens)
        if cut != text:
            return cut, "length"
    return text, "stop" if stopped else natural


def pad_to(text: str, target: int, filler) -> str:
    """Grow `text` with `filler(i)` paragraphs until it has at least `target` tokens, then cut to it."""
    chunks = [text]
    estimate = tokens.count_text(text)
    i = 0
    while True:
        while estimate < target:
            more = filler(i)
            chunks.append(more)
            estimate += tokens.count_text(more)
            i += 1
        # Pieces can merge across the joins: check the real count before cutting.
        joined = "".join(chunks)
        estimate = tokens.count_text(joined)
        if estimate >= target:
            return cut_tokens(joined, target)
