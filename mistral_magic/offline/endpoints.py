"""The model endpoints as plain functions: a decoded JSON body in, a response body out.

The HTTP app and the batch runner both call these, so a batch line gets exactly
what the same request sent directly would get.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..money import tokens
from . import (
    catalogue,
    chat,
    embed,
    fim,
    inputs,
    limits,
    moderation,
    ocr,
    reasoning,
    sources,
    tools,
)
from .faults import NO_FAULTS, FaultPlan, shuffled
from .files import FileStore
from .wire import (
    ChatClassificationRequest,
    ChatModerationRequest,
    ChatRequest,
    ClassificationRequest,
    EmbeddingRequest,
    FIMRequest,
    OCRRequest,
    RequestError,
    error_body,
    parse,
)

# The endpoints a batch job can run offline (the spec's ApiEndpoint, less conversations and audio).
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/fim/completions", "/v1/embeddings", "/v1/moderations",
                   "/v1/chat/moderations", "/v1/classifications", "/v1/chat/classifications", "/v1/ocr")


def new_id() -> str:
    return uuid.uuid4().hex


def resolve_model(name: str, capability: str | None = None, kind: str | None = None) -> catalogue.Model:
    """The catalogue entry for a request's model, or the API's invalid_model error saying why."""
    model = catalogue.find(name)
    if model is None or (capability and capability not in model.capabilities) or (kind and model.kind != kind):
        raise RequestError(400, error_body(sources.invalid_model(name, capability or kind or ""),
                                           "invalid_model", "1500"))
    return model


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Body(dict):
    """A response body whose tokens are not in it (the spec's classifier responses have no usage)."""

    tokens = 0


def tokens_of(body: dict) -> int:
    """The tokens a call cost, from its usage, or as its body knows them."""
    return (body.get("usage") or {}).get("total_tokens") or getattr(body, "tokens", 0)


def _classified(model: str, prompt: int, results: list) -> Body:
    body = Body({"id": f"offline-{new_id()}", "model": model, "results": results})
    body.tokens = prompt
    return body


def _closing(first: str | None) -> list[dict]:
    closing = {"type": "thinking", "thinking": [{"type": "text", "text": ""}], "closed": True}
    return [closing] if first is None else [closing, {"type": "text", "text": first}]


def stream_deltas(choice: chat.Choice) -> list[dict]:
    """The deltas a stream sends for one choice, one per token step.

    A reasoning answer streams as the hosted API's does: thinking pieces as lists holding
    a ThinkChunk, then one list with the closing ThinkChunk and the first TextChunk, then
    plain strings.
    """
    steps: list[dict] = []
    if choice.thinking is not None:
        steps += [{"content": [{"type": "thinking", "thinking": [{"type": "text", "text": piece}], "closed": False}]}
                  for piece in tokens.pieces(choice.thinking)]
        if choice.tool_calls:
            return [*steps, {"content": _closing(None)}, {"tool_calls": choice.tool_calls}]
        pieces = tokens.pieces(choice.content)
        steps.append({"content": _closing(pieces[0] if pieces else None)})
        return steps + [{"content": piece} for piece in pieces[1:]]
    if choice.tool_calls:
        return [{"tool_calls": choice.tool_calls}]
    return [{"content": piece} for piece in tokens.pieces(choice.content) or [""]]


@dataclass
class Completion:
    """A computed completion, ready to be sent whole or streamed."""

    id: str
    created: int
    model: str
    choices: list[chat.Choice]
    prompt_tokens: int
    _deltas: list[list[dict]] | None = field(default=None, repr=False)
    audio_seconds: int | None = None  # recordings heard (``prompt_audio_seconds``)
    cached_tokens: int | None = None  # set when the request carried a prompt_cache_key

    def usage(self) -> dict:
        counts = usage(self.prompt_tokens, sum(c.completion_tokens() for c in self.choices))
        if self.audio_seconds is not None:
            counts["prompt_audio_seconds"] = self.audio_seconds
        if self.cached_tokens is not None:
            counts["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return counts

    def deltas(self) -> list[list[dict]]:
        """What a stream sends for each choice, one delta per token step."""
        if self._deltas is None:
            self._deltas = [stream_deltas(c) for c in self.choices]
        return self._deltas

    def steps(self) -> int:
        """Token steps of the stream (choices are generated side by side): what pacing counts."""
        return max(len(d) for d in self.deltas())

    def body(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion",
            "model": self.model,
            "created": self.created,
            "usage": self.usage(),
            "choices": [
                {"index": i, "finish_reason": c.finish_reason,
                 "message": {"role": "assistant", "content": c.message_content(),
                             "tool_calls": c.tool_calls or None, "prefix": False}}
                for i, c in enumerate(self.choices)
            ],
        }


def _check_order(req: ChatRequest) -> None:
    last = req.messages[-1]
    if last.role in ("assistant", "system") and not (last.role == "assistant" and last.prefix):
        raise RequestError(400, error_body(
            f"Expected last role User or Tool (or Assistant with prefix True) for serving but got {last.role}",
            "invalid_request_message_order", "3230"))


def _check_schemas(req: ChatRequest) -> None:
    """Schemas the offline model fills must be JSON Schemas (malformed ones would break the filler)."""
    spec = req.response_format.json_schema if req.response_format else None
    found = [("response_format.json_schema.schema", spec.schema_)] if spec else []
    found += [(f"tools[{i}].function.parameters", t.function.parameters) for i, t in enumerate(req.tools or [])]
    if not found:  # importing jsonschema takes seconds where rfc3987-syntax is installed
        return
    for where, schema in found:
        problem = _schema_problem(json.dumps(schema, sort_keys=True, default=str))
        if problem is not None:
            raise RequestError(400, error_body(
                f"{where} is not a valid JSON Schema: {problem}", "invalid_request_error", param=where))


@functools.lru_cache(maxsize=256)
def _schema_problem(schema: str) -> str | None:
    """Why a schema (as sorted JSON) is not a JSON Schema, or None; remembered, as the
    100,000 lines of a batch job usually share one schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(json.loads(schema))
    except SchemaError as exc:
        return exc.message
    return None


def chat_completion(data: object, plan: FaultPlan, bad_json: bool = False, seed: int = 0,
                    repeats: Callable[[int], int] | None = None,
                    files: FileStore | None = None, sidecars=None) -> tuple[ChatRequest, Completion]:
    """POST /v1/chat/completions, computed; `repeats` varies unseeded answers (see `chat`);
    `sidecars` finds the transcripts of recordings (`audio.Sidecars`)."""
    req = parse(ChatRequest, data)
    model = resolve_model(req.model, "completion_chat")
    _check_order(req)
    tools.check_messages(req)
    if req.tools and not model.can("function_calling"):
        raise RequestError(400, error_body(
            f"{model.id} cannot call functions (models that can: {', '.join(catalogue.able('function_calling')[:6])})",
            "invalid_request_error", param="tools"))
    if (req.n or 1) > limits.MAX_CHOICES:
        raise RequestError(400, error_body(
            f"n is {req.n}; the offline server generates at most {limits.MAX_CHOICES} choices a request "
            "(a guard of its own: the API sets no bound)",
            "invalid_request_error", param="n"))
    effort = reasoning.effort(req, model)
    _check_schemas(req)
    found = inputs.read(req, model, files if files is not None else FileStore(), sidecars)
    prompt = chat.prompt_tokens(req, found)
    limits.check_context(prompt, req.max_tokens, model.context)
    ctx = chat.Context(req, req.model, plan, found, effort)
    choices = chat.complete(ctx, bad_json, seed, repeats)
    return req, Completion(f"offline-{new_id()}", int(time.time()), req.model, choices, prompt,
                           audio_seconds=found.audio_seconds())


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


def embeddings(data: object, plan: FaultPlan = NO_FAULTS) -> dict:
    """POST /v1/embeddings, computed (out of order under the plan's `shuffle_embeddings`)."""
    req = parse(EmbeddingRequest, data)
    model = resolve_model(req.model, kind="embed")
    if model.max_dimensions == model.dimensions and (
            req.output_dimension not in (None, model.dimensions) or req.output_dtype != "float"):
        which = "output_dimension" if req.output_dimension not in (None, model.dimensions) else "output_dtype"
        raise RequestError(400, error_body(
            f"{which} is not available for {req.model}, which gives {model.dimensions} float dimensions; "
            "codestral-embed takes output_dimension (up to 3072) and output_dtype", "invalid_request_error",
            param=which))
    dims = req.output_dimension or model.dimensions
    if dims > model.max_dimensions:
        raise RequestError(400, error_body(
            f"output_dimension {dims} is not available for {req.model}: at most {model.max_dimensions}",
            "invalid_request_error", param="output_dimension"))
    texts = req.texts()
    if not texts:
        raise RequestError(400, error_body("Input must not be empty", "invalid_request_error", "3000"))
    counts = limits.embedding_tokens(texts, tokens.count_text, model.context)
    data = [{"object": "embedding", "index": i, "embedding": _embedding(t, dims, model, req)}
            for i, t in enumerate(texts)]
    return {
        "id": f"offline-{new_id()}",
        "object": "list",
        "model": req.model,
        "usage": usage(sum(counts), 0),
        "data": shuffled(data, plan) if plan.shuffle_embeddings else data,
    }


def _embedding(text: str, dims: int, model: catalogue.Model, req: EmbeddingRequest) -> list | str:
    values = embed.quantise(embed.vector(text, dims, model.max_dimensions, model.id), req.output_dtype)
    return embed.encoded(values, req.output_dtype) if req.encoding_format == "base64" else values


def _classifier(name: str, capability: str) -> catalogue.Model:
    return resolve_model(name, capability)


def _texts_within(texts: list[str], model: catalogue.Model) -> int:
    """Prompt tokens of the texts, each within the model's context (the hosted API's 3051 otherwise)."""
    total = 0
    for index, text in enumerate(texts):
        count = tokens.count_text(text)
        if count > model.context:
            raise RequestError(400, error_body(
                f"Input {index} contains {count} tokens, too large for model with {model.context} maximum "
                "context length", "invalid_request_prompt", "3051"))
        total += count
    return total


def moderations(data: object) -> dict:
    """POST /v1/moderations: texts scored per category."""
    req = parse(ClassificationRequest, data)
    model = _classifier(req.model, "moderation")
    texts = req.texts()
    prompt = _texts_within(texts, model)
    return _classified(req.model, prompt, [moderation.moderate(t, model.id) for t in texts])


def _last_turns(conversations: list[list]) -> tuple[list[str], int]:
    """The text each conversation's last message says, and the tokens of the whole conversations."""
    texts = [inputs.plain(c[-1].content) if c else "" for c in conversations]
    prompt = sum(tokens.count_messages([m.model_dump(mode="json", exclude_none=True) for m in c]) for c in conversations if c)
    return texts, prompt


def chat_moderations(data: object) -> dict:
    """POST /v1/chat/moderations: each conversation's last turn scored per category."""
    req = parse(ChatModerationRequest, data)
    model = _classifier(req.model, "moderation")
    texts, prompt = _last_turns(req.conversations())
    limits.check_context(prompt, None, model.context)
    return _classified(req.model, prompt, [moderation.moderate(t, model.id) for t in texts])


def classifications(data: object) -> dict:
    """POST /v1/classifications: texts scored by the classifier's targets."""
    req = parse(ClassificationRequest, data)
    model = _classifier(req.model, "classification")
    texts = req.texts()
    prompt = _texts_within(texts, model)
    return _classified(req.model, prompt, [moderation.classify(t, model.id) for t in texts])


def chat_classifications(data: object) -> dict:
    """POST /v1/chat/classifications: each conversation's last turn scored by the classifier's targets."""
    req = parse(ChatClassificationRequest, data)
    model = _classifier(req.model, "classification")
    texts, prompt = _last_turns(req.conversations())
    limits.check_context(prompt, None, model.context)
    return _classified(req.model, prompt, [moderation.classify(t, model.id) for t in texts])


def ocr_process(data: object, files: FileStore) -> dict:
    """POST /v1/ocr."""
    return ocr.process(parse(OCRRequest, data), files)


def run(endpoint: str, body: dict, plan: FaultPlan, seed: int = 0,
        repeats: Callable[[int], int] | None = None, files: FileStore | None = None) -> dict:
    """One non-streamed request to an endpoint (used by batch jobs); raises RequestError."""
    files = files if files is not None else FileStore()
    if endpoint == "/v1/chat/completions":
        return chat_completion({**body, "stream": False}, plan, seed=seed, repeats=repeats, files=files)[1].body()
    if endpoint == "/v1/fim/completions":
        return fim_completion({**body, "stream": False})[1].body()
    if endpoint == "/v1/embeddings":
        return embeddings(body, plan)
    simple = {"/v1/moderations": moderations, "/v1/chat/moderations": chat_moderations,
              "/v1/classifications": classifications, "/v1/chat/classifications": chat_classifications}
    if endpoint in simple:
        return simple[endpoint](body)
    if endpoint == "/v1/ocr":
        return ocr_process(body, files)
    raise RequestError(400, error_body(
        f"Endpoint {endpoint} is not available offline; batch jobs run {', '.join(BATCH_ENDPOINTS)}",
        "invalid_request_error", "3000"))
