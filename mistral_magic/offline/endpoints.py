"""The model endpoints as plain functions: a decoded JSON body in, a response body out.

The HTTP app and the batch runner both call these, so a batch line gets exactly
what the same request sent directly would get.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import tokens
from . import catalogue, chat, embed, fim, limits
from .faults import FaultPlan
from .wire import (
    ChatRequest,
    EmbeddingRequest,
    FIMRequest,
    RequestError,
    error_body,
    parse,
)


def new_id() -> str:
    return uuid.uuid4().hex


def resolve_model(name: str, capability: str | None = None, kind: str | None = None) -> catalogue.Model:
    """The catalogue entry for a request's model, or the API's invalid_model error."""
    model = catalogue.find(name)
    if (model is None or (capability and capability not in model.capabilities)
            or (kind and model.kind != kind)):
        raise RequestError(400, error_body(f"Invalid model: {name}", "invalid_model", "1500"))
    return model


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass
class Completion:
    """A computed completion, ready to be sent whole or streamed."""

    id: str
    created: int
    model: str
    choices: list[chat.Choice]
    prompt_tokens: int
    _parts: list[list] | None = field(default=None, repr=False)

    def usage(self) -> dict:
        return usage(self.prompt_tokens, sum(c.completion_tokens() for c in self.choices))

    def parts(self) -> list[list]:
        """What a stream sends for each choice, one item per token step: text pieces, or its tool calls."""
        if self._parts is None:
            self._parts = [[c.tool_calls] if c.tool_calls else (tokens.pieces(c.content) or [""])
                           for c in self.choices]
        return self._parts

    def steps(self) -> int:
        """Token steps of the stream (choices are generated side by side): what pacing counts."""
        return max(len(p) for p in self.parts())

    def body(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion",
            "model": self.model,
            "created": self.created,
            "usage": self.usage(),
            "choices": [
                {"index": i, "finish_reason": c.finish_reason,
                 "message": {"role": "assistant", "content": c.content,
                             "tool_calls": c.tool_calls or None, "prefix": False}}
                for i, c in enumerate(self.choices)
            ],
        }


def _check_order(req: ChatRequest) -> None:
    last = req.messages[-1]
    if last.role == "assistant" and not last.prefix:
        raise RequestError(400, error_body(
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant",
            "invalid_request_message_order", "3230"))
    if last.role == "system":
        raise RequestError(400, error_body(
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got system",
            "invalid_request_message_order", "3230"))


def _check_schemas(req: ChatRequest) -> None:
    """Schemas the offline model fills must be JSON Schemas (malformed ones would break the filler)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    spec = req.response_format.json_schema if req.response_format else None
    found = [("response_format.json_schema.schema", spec.schema_)] if spec else []
    found += [(f"tools[{i}].function.parameters", t.function.parameters) for i, t in enumerate(req.tools or [])]
    for where, schema in found:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise RequestError(400, error_body(
                f"{where} is not a valid JSON Schema: {exc.message}", "invalid_request_error",
                param=where)) from None


def chat_completion(data: object, plan: FaultPlan, bad_json: bool = False, seed: int = 0,
                    repeats: Callable[[int], int] | None = None) -> tuple[ChatRequest, Completion]:
    """POST /v1/chat/completions, computed; `repeats` varies unseeded answers (see `chat`)."""
    req = parse(ChatRequest, data)
    model = resolve_model(req.model, "completion_chat")
    _check_order(req)
    if (req.n or 1) > limits.MAX_CHOICES:
        raise RequestError(400, error_body(
            f"n is {req.n}; the offline server generates at most {limits.MAX_CHOICES} choices",
            "invalid_request_error", param="n"))
    _check_schemas(req)
    prompt = chat.prompt_tokens(req)
    limits.check_context(prompt, req.max_tokens, model.context)
    choices = chat.complete(req, req.model, plan, bad_json, seed, repeats)
    return req, Completion(f"offline-{new_id()}", int(time.time()), req.model, choices, prompt)


def fim_completion(data: object) -> tuple[FIMRequest, Completion]:
    """POST /v1/fim/completions, computed."""
    from . import lengths

    req = parse(FIMRequest, data)
    model = resolve_model(req.model, "completion_fim")
    # Prompt, suffix and the FIM control tokens ([SUFFIX], [PREFIX], BOS).
    prompt = tokens.count_text(req.prompt) + tokens.count_text(req.suffix or "") + 3
    limits.check_context(prompt, req.max_tokens, model.context)
    text = fim.complete(req.model, req.prompt, req.suffix or "")
    text, reason = lengths.finish(text, req.stops(), req.max_tokens)
    return req, Completion(f"offline-{new_id()}", int(time.time()), req.model, [chat.Choice(text, reason)], prompt)


def embeddings(data: object) -> dict:
    """POST /v1/embeddings, computed."""
    req = parse(EmbeddingRequest, data)
    model = resolve_model(req.model, kind="embed")
    dims = req.output_dimension or model.dimensions
    if dims > model.max_dimensions:
        raise RequestError(400, error_body(
            f"output_dimension {dims} is not available for {req.model}: at most {model.max_dimensions}",
            "invalid_request_error", param="output_dimension"))
    texts = req.texts()
    if not texts:
        raise RequestError(400, error_body("Input must not be empty", "invalid_request_error", "3000"))
    counts = limits.embedding_tokens(texts, tokens.count_text, model.context)
    return {
        "id": f"offline-{new_id()}",
        "object": "list",
        "model": req.model,
        "usage": usage(sum(counts), 0),
        "data": [{"object": "embedding", "index": i, "embedding": embed.quantise(embed.vector(t, dims), req.output_dtype)}
                 for i, t in enumerate(texts)],
    }


def run(endpoint: str, body: dict, plan: FaultPlan, seed: int = 0,
        repeats: Callable[[int], int] | None = None) -> dict:
    """One non-streamed request to an endpoint (used by batch jobs); raises RequestError."""
    body = {**body, "stream": False} if endpoint != "/v1/embeddings" else body
    if endpoint == "/v1/chat/completions":
        return chat_completion(body, plan, seed=seed, repeats=repeats)[1].body()
    if endpoint == "/v1/fim/completions":
        return fim_completion(body)[1].body()
    if endpoint == "/v1/embeddings":
        return embeddings(body)
    raise RequestError(400, error_body(f"Endpoint {endpoint} is not available offline", "invalid_request_error", "3000"))
