"""Token counts with mistral-common's Tekken tokenizer, loaded lazily and shared.

The offline server and the client's estimates use these same functions, so on the
offline backend every estimate equals the usage the server reports. For hosted
models Tekken is the closest offline tokenizer (see MISTRAL_FACTS.md); images are
counted from their size (16 px patches, longest side capped at 1024 px).
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from typing import Any

_lock = threading.Lock()
_tokenizer = None

IMAGE_PATCH = 16
IMAGE_MAX_SIDE = 1024
# Used when an image cannot be read (a remote URL offline): a 512x512 picture.
DEFAULT_IMAGE_TOKENS = (512 // IMAGE_PATCH + 1) * (512 // IMAGE_PATCH)


def tokenizer():
    """The shared MistralTokenizer (Tekken, v3 instruct format); loaded on first use."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

                _tokenizer = MistralTokenizer.v3(is_tekken=True)
    return _tokenizer


def _raw():
    return tokenizer().instruct_tokenizer.tokenizer


def encode_text(text: str) -> list[int]:
    """Token ids of plain text, without BOS/EOS."""
    return _raw().encode(text, bos=False, eos=False)


def count_text(text: str) -> int:
    """How many tokens plain text takes."""
    return len(encode_text(text)) if text else 0


def decode(ids: list[int]) -> str:
    return _raw().decode(ids)


def pieces(text: str) -> list[str]:
    """Split text into the token-sized pieces a stream would send, joining back to `text`.

    Tekken tokens are bytes; a multi-byte character split over tokens is emitted
    with the token that completes it, so every piece is valid text.
    """
    raw = _raw()
    out: list[str] = []
    pending = b""
    for tid in encode_text(text):
        pending += raw.id_to_byte_piece(tid)
        try:
            out.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    return out


def image_tokens(url: str | dict | None) -> int:
    """Tokens an image takes, from its pixel size when it is a data URL."""
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return DEFAULT_IMAGE_TOKENS
    try:
        from PIL import Image

        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Exception:  # an unreadable picture still costs something; count it as typical
        return DEFAULT_IMAGE_TOKENS
    scale = min(1.0, IMAGE_MAX_SIDE / max(width, height, 1))
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return (math.ceil(width / IMAGE_PATCH) + 1) * math.ceil(height / IMAGE_PATCH)


def _plain(value: Any) -> Any:
    """SDK models and other objects to plain dicts (the wire form)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True)
    return value


# A thinking chunk is wrapped in the [THINK] and [/THINK] control tokens.
THINK_MARKERS = 2


def _thinking_tokens(chunk: dict) -> int:
    parts = chunk.get("thinking")
    text = parts if isinstance(parts, str) else "".join(
        p.get("text", "") for p in parts or [] if isinstance(p, dict))
    return count_text(text) + THINK_MARKERS


def _split_images(messages: list[dict]) -> tuple[list[dict], int]:
    """Messages without image and thinking chunks (the tokenizer takes neither here), and their tokens."""
    images = 0
    clean = []
    for message in messages:
        message = dict(_plain(message))
        content = message.get("content")
        if isinstance(content, list):
            kept = []
            for chunk in content:
                chunk = _plain(chunk)
                if isinstance(chunk, dict) and chunk.get("type") == "image_url":
                    images += image_tokens(chunk.get("image_url"))
                elif isinstance(chunk, dict) and chunk.get("type") == "thinking":
                    # Replayed reasoning counts as prompt tokens, as the hosted API bills it.
                    images += _thinking_tokens(chunk)
                else:
                    kept.append(chunk)
            message["content"] = kept or ""
        tool_calls = message.get("tool_calls")
        if tool_calls:
            calls = []
            for call in tool_calls:
                call = dict(_plain(call))
                function = dict(call.get("function") or {})
                if not isinstance(function.get("arguments"), str):
                    function["arguments"] = json.dumps(function.get("arguments") or {})
                call["function"] = function
                call.setdefault("type", "function")
                calls.append(call)
            message["tool_calls"] = calls
        message.pop("prefix", None)
        clean.append(message)
    return clean, images


def count_messages(messages: list[Any], tools: list[Any] | None = None) -> int:
    """Prompt tokens of a chat request: the instruct template, tools and images included.

    Falls back to a text count plus a small per-message overhead when a message list
    does not fit mistral-common's validation (e.g. an assistant prefix at the end).
    """
    clean, images = _split_images(list(messages))
    tools = [_plain(t) for t in tools] if tools else None
    try:
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        request = ChatCompletionRequest.from_openai(clean, tools=tools)
        return len(tokenizer().encode_chat_completion(request).tokens) + images
    except Exception:  # the template refused this shape; estimate it instead
        total = 1
        for message in clean:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
            total += 4 + count_text(str(content or ""))
            for call in message.get("tool_calls") or []:
                total += count_text(json.dumps(call.get("function", {})))
        if tools:
            total += count_text(json.dumps(tools))
        return total + images
