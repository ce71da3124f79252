"""The ASGI app: Mistral's routes behind a gate that checks the key and applies faults.

Handlers read bodies with a size cap and do their real work (decoding, tokenizing,
generating, encoding) in the thread pool, so one heavy request never stalls the
others on the event loop. A client that goes away mid-request is normal: it is
logged at debug level, never as a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hmac
import json
import logging
import math
import threading
import uuid

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..money import tokens
from . import (
    audio,
    audio_routes,
    catalogue,
    endpoints,
    files,
    finetuned,
    limits,
    prompt_cache,
    quota,
    unserved,
)
from .agent_routes import routes as agent_routes
from .batch import BatchJobs
from .faults import HEADER, FaultPlan, FaultState
from .sse import DONE, EventStream, PacedResponse, answer_seconds
from .wire import BatchCreate, RequestError, error_body, parse

log = logging.getLogger(__name__)

_ERROR_TEXT = {
    429: ("Rate limit exceeded", "rate_limited", "1300"),
    500: ("Internal server error", "internal_server_error", "3000"),
    502: ("Bad gateway", "bad_gateway", "3000"),
    503: ("Service unavailable", "service_unavailable", "3000"),
    504: ("Gateway timeout", "gateway_timeout", "3000"),
}


# Endpoints that count tokens; only these wait for the tokenizer to load.
_COUNTING_PATHS = frozenset({"/v1/chat/completions", "/v1/fim/completions", "/v1/embeddings", "/v1/moderations",
                             "/v1/chat/moderations", "/v1/classifications", "/v1/chat/classifications"})
# Model calls: their responses carry the rate-limit headers (`quota`).
_METERED_PATHS = _COUNTING_PATHS | {"/v1/ocr"}
# Distinct unseeded requests remembered for answer variation; the oldest are forgotten.
_REPEATS_KEPT = 100_000


class ServerState:
    """Everything one offline server remembers: key, faults, files, jobs, request counts."""

    def __init__(self, api_key: str, faults: FaultState, seed: int, transcripts=None):
        self.api_key = api_key
        self.sidecars = audio.Sidecars(transcripts)
        self.faults = faults
        self.seed = seed
        self.files = files.FileStore()
        self.batches = BatchJobs(self.files, faults, seed, self.repeats)
        self.prompts = prompt_cache.PromptCache()
        self.fine_tuned = finetuned.FineTunedModels()
        self._counts: collections.Counter = collections.Counter()
        self._seen: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.tokenizer_ready = threading.Event()
        self.quota = quota.Quota()
        self._expected = f"Bearer {api_key}".encode()

    def warm(self) -> None:
        """Load the shared vocabulary (a tenth of a second); run in a background thread.

        mistral-common's own tokenizer, which only tool requests need, loads when one comes.
        """
        tokens.vocabulary()
        self.tokenizer_ready.set()

    def authorized(self, header: str) -> bool:
        # Constant time: the key is the only thing between a caller and the server.
        return hmac.compare_digest(header.encode("latin-1"), self._expected)

    def received(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return self._counts[path] if path else sum(self._counts.values())

    def repeats(self, request_hash: int) -> int:
        """How many times this unseeded request came before (0 the first time)."""
        with self._lock:
            seen = self._seen.pop(request_hash, -1) + 1
            self._seen[request_hash] = seen
            if len(self._seen) > _REPEATS_KEPT:
                self._seen.popitem(last=False)
            return seen


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _encoded(body: dict) -> Response:
    """A JSON response from a body encoded here (call it in the thread pool for large bodies)."""
    return Response(json.dumps(body, ensure_ascii=False).encode(), media_type="application/json")


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
        # A signed URL is its own credential (checked by its handler), as the hosted blob URLs are.
        if not path.startswith(files.SIGNED_PREFIX) and not state.authorized(headers.get("authorization", "")):
            # The hosted API's 401 body, as it sends it today.
            return await _json(401, {"detail": "Unauthorized"})(scope, receive, send)
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
        if path in _METERED_PATHS:
            send = self._metered(scope, send, plan)
        return await self.app(scope, receive, send)

    def _metered(self, scope, send, plan: FaultPlan):
        """`send`, adding the rate-limit headers for the tokens the handler says the call cost."""

        async def metered(message):
            if message["type"] == "http.response.start":
                spent = self.state.quota.spend(int(scope.get("offline.tokens") or 0), plan.rate_limit_rps)
                extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in spent.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return metered


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
    return _json(429, error_body("Rate limit exceeded", "rate_limited", "1300"), headers)


def _injected(status: int) -> JSONResponse:
    message, kind, code = _ERROR_TEXT.get(status, ("Injected error", "offline_fault", "3000"))
    body = error_body(f"{message} (offline fault plan)", kind, code)
    headers = {"Retry-After": "1", "retry-after-ms": "1000"} if status == 429 else None
    return _json(status, body, headers)


def _plan(request: Request) -> tuple[FaultPlan, object]:
    return request.scope["offline.plan"], request.scope["offline.source"]


def _stream_frames(completion: endpoints.Completion):
    """CompletionChunk frames: each choice's role, then its deltas side by side.

    One frame per choice and token step (the first frame of a step is flagged, for
    pacing); a choice's last frame carries its finish_reason, the last frame of all
    the usage.
    """
    head = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}
    start = b"data: " + json.dumps(head, ensure_ascii=False)[:-1].encode() + b',"choices":[{"index":'
    middle = b',"finish_reason":null}]}\n\n'
    for i in range(len(completion.choices)):
        yield _frame(dict(head, choices=[{"index": i, "delta": {"role": "assistant", "content": ""},
                                           "finish_reason": None}])), False
    deltas = completion.deltas()
    final = max(range(len(deltas)), key=lambda i: (len(deltas[i]), i))
    for step in range(completion.steps()):
        first = True
        for i, (choice, steps) in enumerate(zip(completion.choices, deltas, strict=True)):
            if step >= len(steps):
                continue
            delta = steps[step]
            if step < len(steps) - 1:
                yield start + f'{i},"delta":'.encode() + json.dumps(delta, ensure_ascii=False).encode() + middle, first
            else:
                last = dict(head, choices=[{"index": i, "delta": delta, "finish_reason": choice.finish_reason}])
                if i == final:
                    last["usage"] = completion.usage()
                yield _frame(last), first
            first = False
    yield DONE, False


def _frame(data: dict) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _wants_json(data) -> bool:
    fmt = data.get("response_format") if isinstance(data, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _answer(stream: bool, completion: endpoints.Completion, plan: FaultPlan):
    """The response for a computed completion: a paced stream, or the whole answer sent when the stream would end.

    Runs in the thread pool: it tokenizes the answer into stream pieces and encodes the body.
    """
    if stream:
        completion.deltas()
        return EventStream(_stream_frames(completion), plan)
    steps = completion.steps() if plan.token_delay_ms else 1
    body = json.dumps(completion.body(), ensure_ascii=False).encode()
    return PacedResponse(body, answer_seconds(plan, steps))


class _Gone:
    """The response to a client that left: nothing to send."""

    async def __call__(self, scope, receive, send) -> None:
        return None


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

    async def json_body(request: Request):
        raw = await limits.read_body(request, limits.MAX_JSON_BYTES)
        return await run_in_threadpool(limits.decode_json, raw)

    async def list_models(request: Request) -> Response:
        return _json(200, {"object": "list", "data": catalogue.all_cards() + state.fine_tuned.cards()})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model_id"]
        if state.fine_tuned.is_fine_tuned(name):
            return _json(200, state.fine_tuned.card(name))
        model = catalogue.find(name)
        if model is None:
            why = catalogue.unknown_message(name).split(" (", 1)[1].rstrip(")")
            raise RequestError(404, error_body(f"Model {name} not found ({why})", "invalid_model", "1500"))
        return _json(200, model.card(name))

    async def update_fine_tuned(request: Request) -> Response:
        data = await json_body(request)
        body = data if isinstance(data, dict) else {}
        return _json(200, state.fine_tuned.update(request.path_params["model_id"], body))

    async def archive_fine_tuned(request: Request) -> Response:
        archived = request.method == "POST"  # DELETE .../archive unarchives
        return _json(200, state.fine_tuned.archive(request.path_params["model_id"], archived))

    async def chat_completions(request: Request) -> Response:
        plan, source = _plan(request)
        raw = await limits.read_body(request, limits.MAX_JSON_BYTES)

        def work():
            data = limits.decode_json(raw)
            bad = _wants_json(data) and state.faults.chance(plan, source, "bad_json", plan.bad_json_rate)
            req, completion = endpoints.chat_completion(data, plan, bad, state.seed, state.repeats, state.files,
                                                        state.sidecars)
            completion.cached_tokens = state.prompts.cached(
                req.prompt_cache_key, catalogue.find(req.model).id, prompt_cache.messages_of(req),
                completion.prompt_tokens)
            request.scope["offline.tokens"] = completion.usage()["total_tokens"]
            return _answer(req.stream, completion, plan)

        return await run_in_threadpool(work)

    async def fim_completions(request: Request) -> Response:
        plan, _ = _plan(request)
        raw = await limits.read_body(request, limits.MAX_JSON_BYTES)

        def work():
            req, completion = endpoints.fim_completion(limits.decode_json(raw))
            request.scope["offline.tokens"] = completion.usage()["total_tokens"]
            return _answer(req.stream, completion, plan)

        return await run_in_threadpool(work)

    def computed(handler, planned: bool = False):
        """A JSON endpoint whose work (decoding, computing, encoding) runs in the thread pool;
        a `planned` handler also takes the request's fault plan."""

        async def endpoint(request: Request) -> Response:
            raw = await limits.read_body(request, limits.MAX_JSON_BYTES)
            plan = _plan(request)[0] if planned else None

            def work():
                data = limits.decode_json(raw)
                body = handler(data, plan) if planned else handler(data)
                request.scope["offline.tokens"] = endpoints.tokens_of(body)
                return _encoded(body)

            return await run_in_threadpool(work)

        return endpoint

    async def signed_url(request: Request) -> Response:
        file_id = _uuid(request.path_params["file_id"], "file_id")
        hours = _int_query(request, "expiry", 24)
        return _json(200, state.files.sign(file_id, hours, str(request.base_url)))

    async def signed_download(request: Request) -> Response:
        query = request.query_params
        stored = state.files.open_signed(request.path_params["file_id"], query.get("expires", ""),
                                         query.get("signature", ""))
        return files.response(stored, stored.meta.get("mimetype") or "application/octet-stream")

    async def upload_file(request: Request) -> Response:
        # Spooled to disk as it arrives and read back in the thread pool: a 500 MB batch
        # file never sits in memory, nor stalls the loop while its form is parsed.
        with files.spooled() as body:
            await limits.spool_body(request, limits.MAX_UPLOAD_BYTES, body)
            content_type = request.headers.get("content-type", "")
            return _json(200, await run_in_threadpool(files.upload, state.files, body, content_type))

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
        return files.response(stored, "application/octet-stream")

    async def create_batch(request: Request) -> Response:
        plan, source = _plan(request)
        data = await json_body(request)
        req = parse(BatchCreate, data)
        prepared = await run_in_threadpool(state.batches.prepare, req)
        return _json(200, state.batches.start(prepared, plan, source))

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
        job_id = _uuid(request.path_params["job_id"], "job_id")
        if not inline:
            return _json(200, state.batches.get(job_id))
        # Inline outputs are read back from the job's files and can be large: off the loop.
        return await run_in_threadpool(lambda: _encoded(state.batches.get(job_id, True)))

    async def delete_batch(request: Request) -> Response:
        return _json(200, state.batches.delete(_uuid(request.path_params["job_id"], "job_id")))

    async def cancel_batch(request: Request) -> Response:
        return _json(200, state.batches.cancel(_uuid(request.path_params["job_id"], "job_id")))

    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return _json(exc.status, exc.body)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (404, 405):
            known = unserved.answer(request.method, request.url.path)
            if known is not None:
                return _json(*known)
        return _json(exc.status_code, {"detail": exc.detail}, getattr(exc, "headers", None))

    async def on_server_error(request: Request, exc: Exception) -> Response:
        # A bug is still a 500, but in the API's error shape (the traceback goes to the log).
        return _json(500, error_body(f"Internal server error ({type(exc).__name__})",
                                     "internal_server_error", "3000"))

    async def on_client_gone(request: Request, exc: ClientDisconnect) -> _Gone:
        log.debug("client left while %s %s was being read", request.method, request.url.path)
        return _Gone()

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/v1/fine_tuning/models/{model_id}/archive", archive_fine_tuned, methods=["POST", "DELETE"]),
        Route("/v1/fine_tuning/models/{model_id}", update_fine_tuned, methods=["PATCH"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/fim/completions", fim_completions, methods=["POST"]),
        Route("/v1/embeddings", computed(endpoints.embeddings, planned=True), methods=["POST"]),
        Route("/v1/moderations", computed(endpoints.moderations), methods=["POST"]),
        Route("/v1/chat/moderations", computed(endpoints.chat_moderations), methods=["POST"]),
        Route("/v1/classifications", computed(endpoints.classifications), methods=["POST"]),
        Route("/v1/chat/classifications", computed(endpoints.chat_classifications), methods=["POST"]),
        Route("/v1/ocr", computed(lambda data: endpoints.ocr_process(data, state.files)), methods=["POST"]),
        Route("/v1/files", upload_file, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/files/{file_id}/url", signed_url, methods=["GET"]),
        Route(files.SIGNED_PREFIX + "{file_id}/{name}", signed_download, methods=["GET"]),
        Route("/v1/batch/jobs", create_batch, methods=["POST"]),
        Route("/v1/batch/jobs", list_batches, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}", get_batch, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}", delete_batch, methods=["DELETE"]),
        Route("/v1/batch/jobs/{job_id}/cancel", cancel_batch, methods=["POST"]),
        *audio_routes.routes(state, _plan, _int_query),
        *agent_routes(state),  # conversations, agents, libraries
    ]
    app = Starlette(routes=routes, exception_handlers={RequestError: on_request_error,
                                                       HTTPException: on_http_error,
                                                       ClientDisconnect: on_client_gone,
                                                       Exception: on_server_error})
    return Gate(app, state)
