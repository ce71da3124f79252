"""Token counts with Tekken, the tokenizer of mistral-common's v3 instruct format.

The offline server and the client's estimates use these same functions, so on the
offline backend every estimate equals the usage the server reports. For hosted
models Tekken is the closest offline tokenizer (see MISTRAL_FACTS.md); images are
counted from their size (16 px patches, longest side capped at 1024 px).

Plain text goes through Tekken's own vocabulary on tiktoken (`vocab`), the encoder
mistral-common's Tekkenizer wraps, without importing mistral-common (seconds of
imports and set-up). A text-only conversation's chat template is counted here by
mistral-common's v3 rules (`_template_count`, tested equal to it); other shapes
(tools, tool calls and results) are counted by mistral-common itself, loaded on
first need. `bound_messages` bounds such a count from above without the vocabulary
(a token is at least a byte). `warm()` loads the vocabulary in a background thread.
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
_vocab_lock = threading.Lock()
_vocabulary = None
_warm_lock = threading.Lock()
_warming: threading.Thread | None = None

IMAGE_PATCH = 16
IMAGE_MAX_SIDE = 1024
# Used when an image cannot be read (a remote URL offline): a 512x512 picture.
DEFAULT_IMAGE_TOKENS = (512 // IMAGE_PATCH + 1) * (512 // IMAGE_PATCH)


def tokenizer():
    """The shared MistralTokenizer (Tekken, v3 instruct format); loaded on first use.

    Only what the vocabulary cannot count needs it (tools, tool calls and results).
    """
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

                _tokenizer = MistralTokenizer.v3(is_tekken=True)
    return _tokenizer


def vocabulary():
    """The shared Tekken vocabulary (`vocab.Vocabulary`); loaded on first use."""
    global _vocabulary
    if _vocabulary is None:
        # A warm-up under way holds this lock: waiting on it, rather than loading
        # alongside, keeps two threads from importing the same modules at once.
        with _vocab_lock:
            if _vocabulary is None:
                from . import vocab

                _vocabulary = vocab.load()
    return _vocabulary


def warm() -> threading.Thread | None:
    """Load the vocabulary in a daemon thread (once); returns it, or None when loaded."""
    global _warming
    if _vocabulary is not None:
        return None
    with _warm_lock:
        if _warming is None:
            _warming = threading.Thread(target=_warm, name="mistral_magic-tokenizer",
                                        daemon=True)
            _warming.start()
        return _warming


def _warm() -> None:
    try:
        vocabulary()
    except Exception:  # counted later in the thread that needs it, which then raises
        pass


def loaded() -> bool:
    """Whether the vocabulary is loaded (counting plain text costs no load)."""
    return _vocabulary is not None


def encode_text(text: str) -> list[int]:
    """Token ids of plain text, without BOS/EOS."""
    return vocabulary().encode(text)


def count_text(text: str) -> int:
    """How many tokens plain text takes."""
    return vocabulary().count(text) if text else 0


def decode(ids: list[int]) -> str:
    return vocabulary().decode(ids)


def pieces(text: str) -> list[str]:
    """Split text into the token-sized pieces a stream would send, joining back to `text`.

    Tekken tokens are bytes; a multi-byte character split over tokens is emitted
    with the token that completes it, so every piece is valid text.
    """
    vocab = vocabulary()
    out: list[str] = []
    pending = b""
    for tid in vocab.encode(text):
        pending += vocab.byte_piece(tid)
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


def audio_tokens(seconds: float) -> int:
    """Prompt tokens a recording takes in chat: 12.5 a second, padded to 30-second chunks (the
    frame rate and chunk length of Voxtral's audio encoder)."""
    return math.ceil(seconds / 30) * 375 if seconds > 0 else 0


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
                elif isinstance(chunk, dict) and chunk.get("type") == "input_audio":
                    pass  # its tokens need its length: the caller measures it (`audio_tokens`)
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
    counted = _template_count(clean, tools)
    if counted is None:
        counted = _mistral_common_count(clean, tools)
    return counted + images


# The v3 template joins the texts of merged messages, and the system prompt to the
# last user message, with this.
_JOIN = "\n\n"
_ROLES = ("system", "user", "assistant")


def _texts(content: Any) -> list[str] | None:
    """A message's non-empty texts, or None when it holds anything but text."""
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for chunk in content:
        if (not isinstance(chunk, dict) or chunk.get("type") != "text" or set(chunk) - {"type", "text"}
                or not isinstance(chunk.get("text"), str)):
            return None
        if chunk["text"]:
            texts.append(chunk["text"])
    return texts


def _template_count(messages: list[dict], tools: list | None) -> int | None:
    """Prompt tokens of a text-only conversation by mistral-common's v3 Tekken template.

    None for any shape mistral-common itself must judge: tools, tool calls and
    results, other keys, or a conversation its validation refuses.
    mistral-common's rules, as `MistralTokenizer.v3(is_tekken=True)` applies them:
    system texts become one system prompt put before the last user message; runs of
    messages with the same role merge (system messages break runs); a conversation
    that does not start with a user message gets an empty one first; then
    BOS, each user message as [INST] text [/INST], each assistant's text with its
    trailing spaces cut, then EOS.
    """
    turns = _template_turns(messages, tools)
    if turns is None:
        return None
    vocab = vocabulary()
    return 1 + sum(vocab.count(text) + marks for text, marks in turns)  # BOS, then each turn


def bound_messages(messages: list[Any], tools: list | None = None) -> int | None:
    """An upper bound of `count_messages` for a text-only conversation, without the
    vocabulary: a Tekken token is at least one byte of UTF-8. None for other shapes."""
    turns = _template_turns(list(messages), tools)
    if turns is None:
        return None
    return 1 + sum(len(text.encode("utf-8", "surrogatepass")) + marks for text, marks in turns)


def _template_turns(messages: list[dict], tools: list | None) -> list[tuple[str, int]] | None:
    """The v3 template's turns of a text-only conversation: (text, control tokens around it)."""
    if tools or not messages:
        return None
    parsed = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role = message.get("role")
        texts = _texts(message.get("content"))
        if role not in _ROLES or texts is None or set(message) - {"role", "content"}:
            return None
        parsed.append((role, texts, bool(message["content"])))
    roles = [role for role, _, _ in parsed]
    if roles[-1] == "assistant":  # refused unless it continues a prefix (counted there)
        return None
    if any(a == "assistant" and b == "system" for a, b in zip(roles, roles[1:], strict=False)):
        return None
    if any(role == "assistant" and not given for role, _, given in parsed):
        return None
    system = [_JOIN.join(texts) for role, texts, given in parsed if role == "system" and given]
    system_prompt = _JOIN.join(system) if system else None
    merged: list[tuple[str, list[str]]] = []
    previous = None
    for role, texts, _ in parsed:
        if role != "system":
            if role == previous:
                merged[-1][1].extend(texts)
            else:
                merged.append((role, list(texts)))
        previous = role
    if not merged or merged[0][0] != "user":
        merged.insert(0, ("user", []))
    last_user = max(i for i, (role, _) in enumerate(merged) if role == "user")
    turns = []
    for i, (role, texts) in enumerate(merged):
        text = _JOIN.join(texts)
        if role == "user":
            if i == last_user and system_prompt:
                text = system_prompt + _JOIN + text
            turns.append((text, 2))  # [INST] ... [/INST]
        elif not text:
            return None  # mistral-common refuses an assistant message without text
        else:
            turns.append((text.rstrip(" "), 1))  # EOS
    return turns


def _mistral_common_count(clean: list[dict], tools: list | None) -> int:
    """The template count by mistral-common itself, or an estimate when it refuses the shape."""
    try:
        # Loaded under the tokenizer's lock first: two threads importing mistral-common's
        # modules side by side could each see the other's half-initialised ones.
        mistral = tokenizer()
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        request = ChatCompletionRequest.from_openai(clean, tools=tools)
        return len(mistral.encode_chat_completion(request).tokens)
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
        return total
