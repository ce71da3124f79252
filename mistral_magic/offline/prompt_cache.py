"""Prompt caching offline: a repeated prefix under the same ``prompt_cache_key`` is reported cached.

As the hosted API does (docs `pub/conversations/advanced/prompt-caching.md`): a chat
request that carries a ``prompt_cache_key`` is compared with the earlier prompts sent
with the same key to the same model, and the longest shared prefix counts as cached in
whole blocks of 64 tokens (a prompt under 64 tokens never hits). The prompt is read as
its messages laid end to end (role, then text; a picture or document by its content's
digest), tokenized with Tekken; the count is capped at the prompt tokens reported.

The usage then carries ``prompt_tokens_details: {"cached_tokens": N}`` (0 on a miss).
A request without a key gets none, so its usage stays exactly the spec's `UsageInfo`
(which lacks the field; the SDK keeps it as an extra). What is remembered is bounded:
the last `PROMPTS_PER_KEY` prompts of each of the last `KEYS` keys, each cut at
`MAX_TOKENS` tokens.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
from typing import Any

from ..money import tokens

BLOCK = 64
KEYS = 512
PROMPTS_PER_KEY = 8
MAX_TOKENS = 262_144


def layout(messages: list[dict]) -> str:
    """A prompt's messages end to end, as the prefix a cache compares."""
    out = []
    for message in messages:
        out.append(f"\n[{message.get('role', '')}]\n")
        content = message.get("content")
        if isinstance(content, str) or content is None:
            out.append(content or "")
            continue
        for chunk in content:
            text = chunk.get("text") if isinstance(chunk, dict) else None
            if isinstance(text, str) and chunk.get("type", "text") == "text":
                out.append(text)
            else:
                # A picture or a document: the same bytes make the same prefix.
                digest = hashlib.sha256(json.dumps(chunk, sort_keys=True, default=str).encode())
                out.append(f"[{chunk.get('type', 'chunk')} {digest.hexdigest()}]")
        for call in message.get("tool_calls") or []:
            out.append(json.dumps(call, sort_keys=True, default=str))
    return "".join(out)


def _shared(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache:
    """The prompts a server has seen, by (key, model): how much of a new one was seen before."""

    def __init__(self) -> None:
        self._seen: collections.OrderedDict[tuple[str, str], collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: str | None, model: str, messages: list[dict], prompt_tokens: int) -> int | None:
        """Tokens of this prompt served from the cache (whole blocks), and remember it; None
        without a key."""
        if not key:
            return None
        ids = tuple(tokens.encode_text(layout(messages))[:MAX_TOKENS])
        with self._lock:
            earlier = self._seen.pop((key, model), None) or collections.deque(maxlen=PROMPTS_PER_KEY)
            shared = max((_shared(ids, seen) for seen in earlier), default=0)
            earlier.append(ids)
            self._seen[(key, model)] = earlier
            while len(self._seen) > KEYS:
                self._seen.popitem(last=False)
        return min(shared, prompt_tokens) // BLOCK * BLOCK


def messages_of(req: Any) -> list[dict]:
    """A validated chat request's messages as plain dicts."""
    return [m.model_dump(mode="json", exclude_none=True) for m in req.messages]
