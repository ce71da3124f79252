"""The ASGI app: Mistral's routes behind a gate that checks the key and applies faults."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import math
import threading
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import tokens
from . import catalogue, endpoints, files
from .batch import BatchJobs
from .faults import HEADER, FaultPlan, FaultState
from .sse import DONE, EventStream
from .wire import BatchCreate, RequestError, decode_json, error_body, parse

_ERROR_TEXT = {
    429: ("Rate limit exceeded", "rate_limited", "1300"),
    500: ("Internal server error", "internal_server_error", "3000"),
    502: ("Bad gateway", "bad_gateway", "3000"),
    503: ("Service unavailable", "service_unavailable", "3000"),
    504: ("Gateway timeout", "gateway_timeout", "3000"),
}


# Endpoints that count tokens; only these wait for the tokenizer to load.
_COUNTING_PATHS = frozenset({"/v1/chat/completions", "/v1/fim/completions", "/v1/embeddings"})


class ServerState:
    """Everything one offline server remembers: key, faults, files, jobs, request counts."""

    def __init__(self, api_key: str, faults: FaultState, seed: int):
        self.api_key = api_key
        self.faults = faults
        self.seed = seed
        self.files = files.FileStore()
        self.batches = BatchJobs(self.files, faults, seed)
        self._counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self.tokenizer_ready = threading.Event()

    def warm(self) -> None:
        """Load the shared tokenizer (about a second); run in a background thread."""
        tokens.tokenizer()
        self.tokenizer_ready.set()

    def received(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return self._counts[path] if path else sum(self._counts.values())


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


class Gate:
    """Counts the request, demands the key, then applies latency, rate limit and injected errors."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = self.state
        path = scope["path"]
        state.received(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("authorization", "") != f"Bearer {state.api_key}":
            body = error_body("Unauthorized: send the offline server's key as 'Authorization: Bearer <api_key>'",
                              "unauthorized")
            body["request_id"] = uuid.uuid4().hex
            return await _json(401, body)(scope, receive, send)
        try:
            plan, source = state.faults.resolve(headers.get(HEADER))
        except ValueError as exc:
            return await _json(400, error_body(str(exc), "invalid_request_error"))(scope, receive, send)
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        number = state.faults.count(source, path)
        wait = state.faults.rate_limit_wait(plan, headers.get("authorization", ""))
        if wait > 0:
            return await _rate_limited(wait)(scope, receive, send)
        if _fails(state.faults, plan, source, number):
            return await _injected(plan.error_status or 500)(scope, receive, send)
        scope["offline.plan"], scope["offline.source"] = plan, source
        if path in _COUNTING_PATHS and not state.tokenizer_ready.is_set():
            # The first requests wait for the tokenizer off the loop, so others are not stalled.
            await asyncio.to_thread(state.warm)
        return await self.app(scope, receive, send)


def _fails(faults: FaultState, plan: FaultPlan, source, number: int) -> bool:
    if number in plan.nth_set():
        return True
    if plan.error_rate:
        return faults.chance(plan, source, "error", plan.error_rate)
    # error_status alone means every request fails with it.
    return plan.error_status is not None and plan.error_on_nth is None


def _rate_limited(wait: float) -> JSONResponse:
    # The SDK prefers retry-after-ms (exact) over Retry-After (whole seconds, for other clients).
    headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
    body = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "code": "1300"}
    return _json(429, body, headers)


def _injected(status: int) -> JSONResponse:
    message, kind, code = _ERROR_TEXT.get(status, ("Injected error", "offline_fault", "3000"))
    body = error_body(f"{message} (offline fault plan)", kind, code)
    headers = {"Retry-After": "1", "retry-after-ms": "1000"} if status == 429 else None
    return _json(status, body, headers)


def _plan(request: Request) -> tuple[FaultPlan, object]:
    return request.scope["offline.plan"], request.scope["offline.source"]


def _stream_frames(completion: endpoints.Completion):
    """CompletionChunk frames: role first, one per token piece, finish and usage on the last."""
    head = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}
    start = json.dumps(head, ensure_ascii=False)[:-1].encode()
    prefix = b"data: " + start + b',"choices":[{"index":0,"delta":{"content":'
    middle = b'},"finish_reason":null}]}\n\n'
    choice = completion.choices[0]
    first = dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    yield _frame(first), False
    usage = completion.usage()
    if choice.tool_calls:
        last = dict(head, choices=[{"index": 0, "delta": {"tool_calls": choice.tool_calls},
                                    "finish_reason": choice.finish_reason}], usage=usage)
        yield _frame(last), True
    else:
        parts = tokens.pieces(choice.content) or [""]
        for part in parts[:-1]:
            yield prefix + json.dumps(part, ensure_ascii=False).encode() + middle, True
        last = dict(head, choices=[{"index": 0, "delta": {"content": parts[-1]},
                                    "finish_reason": choice.finish_reason}], usage=usage)
        yield _frame(last), True
    yield DONE, False


def _frame(data: dict) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _wants_json(data) -> bool:
    fmt = data.get("response_format") if isinstance(data, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _uuid(value: str, name: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise RequestError(422, {"detail": [{"type": "uuid_parsing", "loc": ["path", name], "input": value,
                                             "msg": "Input should be a valid UUID"}]}) from None
    return value


def _int_query(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise RequestError(422, {"detail": [{"type": "int_parsing", "loc": ["query", name], "input": raw,
                                             "msg": "Input should be a valid integer, unable to parse string as an integer"}]}) from None


def build(state: ServerState) -> Gate:
    """The offline server's ASGI app."""

    async def list_models(request: Request) -> Response:
        return _json(200, {"object": "list", "data": catalogue.all_cards()})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model_id"]
        model = catalogue.find(name)
        if model is None:
            raise RequestError(404, error_body(f"Model {name} not found", "invalid_model", "1500"))
        return _json(200, model.card(name))

    async def chat_completions(request: Request) -> Response:
        plan, source = _plan(request)
        data = decode_json(await request.body())
        bad = _wants_json(data) and state.faults.chance(plan, source, "bad_json", plan.bad_json_rate)
        req, completion = endpoints.chat_completion(data, plan, bad, state.seed)
        return await _answer(req.stream, completion, plan)

    async def fim_completions(request: Request) -> Response:
        plan, _ = _plan(request)
        req, completion = endpoints.fim_completion(decode_json(await request.body()))
        return await _answer(req.stream, completion, plan)

    async def _answer(stream: bool, completion: endpoints.Completion, plan: FaultPlan):
        if stream:
            return EventStream(_stream_frames(completion), plan)
        if plan.ttft_ms:
            await asyncio.sleep(plan.ttft_ms / 1000)
        return _json(200, completion.body())

    async def embeddings(request: Request) -> Response:
        return _json(200, endpoints.embeddings(decode_json(await request.body())))

    async def upload_file(request: Request) -> Response:
        body = await request.body()
        return _json(200, files.upload(state.files, body, request.headers.get("content-type", "")))

    async def list_files(request: Request) -> Response:
        return _json(200, state.files.list(
            request.query_params.get("purpose"), request.query_params.get("search"),
            _int_query(request, "page", 0), _int_query(request, "page_size", 100)))

    async def get_file(request: Request) -> Response:
        stored = state.files.get(_uuid(request.path_params["file_id"], "file_id"))
        return _json(200, dict(stored.meta, deleted=False))

    async def delete_file(request: Request) -> Response:
        return _json(200, state.files.delete(_uuid(request.path_params["file_id"], "file_id")))

    async def file_content(request: Request) -> Response:
        stored = state.files.get(_uuid(request.path_params["file_id"], "file_id"))
        return Response(stored.content, media_type="application/octet-stream")

    async def create_batch(request: Request) -> Response:
        plan, source = _plan(request)
        req = parse(BatchCreate, decode_json(await request.body()))
        return _json(200, state.batches.create(req, plan, source))

    async def list_batches(request: Request) -> Response:
        query = request.query_params
        after = query.get("created_after")
        created_after = None
        if after:
            try:
                created_after = int(dt.datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp())
            except ValueError:
                raise RequestError(422, {"detail": [{"type": "datetime_parsing", "loc": ["query", "created_after"],
                                                     "input": after, "msg": "Input should be a valid datetime"}]}) from None
        return _json(200, state.batches.list(
            query.get("model"), query.getlist("status") or None, created_after,
            _int_query(request, "page", 0), _int_query(request, "page_size", 100),
            query.get("order_by", "-created") != "created"))

    async def get_batch(request: Request) -> Response:
        inline = request.query_params.get("inline", "false").lower() == "true"
        return _json(200, state.batches.get(_uuid(request.path_params["job_id"], "job_id"), inline))

    async def cancel_batch(request: Request) -> Response:
        return _json(200, state.batches.cancel(_uuid(request.path_params["job_id"], "job_id")))

    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return _json(exc.status, exc.body)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        return _json(exc.status_code, {"detail": exc.detail})

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/fim/completions", fim_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/files", upload_file, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/batch/jobs", create_batch, methods=["POST"]),
        Route("/v1/batch/jobs", list_batches, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}", get_batch, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}/cancel", cancel_batch, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={RequestError: on_request_error,
                                                       HTTPException: on_http_error})
    return Gate(app, state)
