"""What the offline server accepts: body sizes, JSON depth, valid text, and the API's input limits.

Anyone holding the server's key could otherwise stall or bloat it. Bodies are read
with a cap (413 past it, before the rest is read); JSON deeper than `MAX_DEPTH`
levels, or carrying a lone UTF-16 surrogate (`\\ud800`) that no UTF-8 text can hold,
is refused with the API's 422 `detail[]`. The spec sets no bound on `n`; the offline
server makes at most `MAX_CHOICES` choices a request, far past what clients ask for,
so that one request cannot keep it busy for minutes. The model-side limits are the hosted API's:
prompt plus `max_tokens` within the context length (the spec says so), and for
embeddings at most 512 inputs and 16,384 tokens per request, each input within the
model's 8,192 (the hosted API's messages, code 3210).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .wire import RequestError, error_body

KIB, MIB = 1024, 1024 * 1024
MAX_JSON_BYTES = 10 * MIB
#: One upload: the hosted API's 512 MB per file (a batch of 100,000 requests fits). Large
#: files are spooled to disk as they arrive (`files`), never held in memory whole.
MAX_UPLOAD_BYTES = 512 * MIB
#: Uploaded files kept in all (on disk past `files.MEMORY_FILE_BYTES` each).
MAX_STORED_BYTES = 2048 * MIB
MAX_DEPTH = 64
MAX_CHOICES = 256
EMBED_MAX_INPUTS = 512
EMBED_MAX_TOKENS = 16384

_SURROGATE = re.compile("[\ud800-\udfff]")


def too_large(size: int, limit: int, what: str = "request body") -> RequestError:
    return RequestError(413, error_body(
        f"The {what} is {size:,} bytes; the offline server accepts at most {limit:,} bytes here",
        "invalid_request_error"))


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def spool_body(request, limit: int, spool):
    """Write the request body to `spool` (a file), refused with 413 as soon as it passes `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        spool.write(chunk)
    spool.seek(0)
    return spool


def _invalid(loc: list, kind: str, msg: str) -> RequestError:
    return RequestError(422, {"detail": [{"type": kind, "loc": ["body", *loc], "msg": msg}]})


def decode_json(raw: bytes) -> Any:
    """The body as JSON, or the 422 the API sends: undecodable, too deep, or not valid Unicode."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep([0]) from None
    except ValueError as exc:
        raise RequestError(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0],
                                             "msg": f"JSON decode error: {exc}", "input": {}}]}) from None
    problem = _first_problem(value)
    if problem is not None:
        loc, kind = problem
        if kind == "depth":
            raise _too_deep(loc)
        raise _invalid(loc, "string_unicode",
                       "Input should be a valid string, unable to parse raw data as a unicode string "
                       "(a lone UTF-16 surrogate is not text)")
    return value


def _too_deep(loc: list) -> RequestError:
    return _invalid(loc, "json_invalid",
                    f"JSON nested too deeply: the offline server accepts at most {MAX_DEPTH} levels")


def _bad_text(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _first_problem(value: Any) -> tuple[list, str] | None:
    """Where the document nests past MAX_DEPTH or holds a lone surrogate; walked without recursion."""
    stack: list[tuple[Any, int, list]] = [(value, 0, [])]
    while stack:
        node, depth, loc = stack.pop()
        if isinstance(node, str):
            if _bad_text(node):
                return loc, "text"
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            return loc, "depth"
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(key, str) and _bad_text(key):
                return [*loc, "<key>"], "text"
            if isinstance(child, (str, dict, list)):
                stack.append((child, depth + 1, [*loc, key]))
    return None


def check_context(prompt: int, max_tokens: int | None, context: int) -> None:
    """The spec: prompt tokens plus max_tokens cannot exceed the model's context length."""
    if prompt > context:
        raise RequestError(400, error_body(
            f"Prompt contains {prompt} tokens, too large for model with {context} maximum context length",
            "invalid_request_prompt", "3051"))
    if max_tokens is not None and prompt + max_tokens > context:
        raise RequestError(400, error_body(
            f"Prompt contains {prompt} tokens and max_tokens is {max_tokens}: together they exceed "
            f"the model's maximum context length of {context}",
            "invalid_request_prompt", "3051"))


def embedding_tokens(texts: list[str], count, context: int) -> list[int]:
    """Token counts of the inputs, within the hosted API's embedding limits (stops at the first breach)."""
    if len(texts) > EMBED_MAX_INPUTS:
        raise RequestError(400, error_body("Too many inputs in request, split into more batches.",
                                           "invalid_request_prompt", "3210"))
    counts: list[int] = []
    for index, text in enumerate(texts):
        counts.append(count(text))
        if counts[-1] > context:
            raise RequestError(400, error_body(
                f"Input {index} contains {counts[-1]} tokens, too large for model with {context} "
                "maximum context length", "invalid_request_prompt", "3051"))
        if sum(counts) > EMBED_MAX_TOKENS:
            raise RequestError(400, error_body("Too many tokens overall, split into more batches.",
                                               "invalid_request_prompt", "3210"))
    return counts
