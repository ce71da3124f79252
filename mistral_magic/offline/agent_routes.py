"""The routes of the Conversations, Agents and Libraries APIs (`conversations`, `agents`, `libraries`).

`routes(state)` makes the three stores of a server (kept on `state` as `conversations`,
`agents` and `libraries`) and returns their Starlette routes; `app.build` adds them.
Bodies are read with the server's size caps and the work runs in the thread pool; a
conversation call answers whole or as a paced event stream (`sse`).
"""

from __future__ import annotations

import json
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import conversations as talk
from . import files, limits
from .agents import Agents
from .conversations import Conversations
from .documents import MAX_DOCUMENT_BYTES
from .libraries import Libraries
from .sse import EventStream, PacedResponse, answer_seconds
from .wire import RequestError


def _ok(body, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _empty() -> Response:
    return Response(status_code=204)


def _query_error(name: str, value, kind: str, msg: str) -> RequestError:
    return RequestError(422, {"detail": [{"type": kind, "loc": ["query", name], "input": value, "msg": msg}]})


def _int(request: Request, name: str, default: int | None = None, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        if required:
            raise _query_error(name, None, "missing", "Field required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise _query_error(name, raw, "int_parsing",
                           "Input should be a valid integer, unable to parse string as an integer") from None


def _text(request: Request, name: str) -> str:
    raw = request.query_params.get(name)
    if raw is None:
        raise _query_error(name, None, "missing", "Field required")
    return raw


def _uuid(request: Request, name: str) -> str:
    value = request.path_params[name]
    try:
        uuid.UUID(value)
    except ValueError:
        raise RequestError(422, {"detail": [{"type": "uuid_parsing", "loc": ["path", name], "input": value,
                                             "msg": "Input should be a valid UUID"}]}) from None
    return value


def _answer(stream: bool, body: dict, plan):
    """A conversation response: a paced event stream, or the whole body when it would have ended."""
    if stream:
        return EventStream(talk.frames(body), plan)
    steps = sum(step for _, _, step in talk.events(body)) if plan.token_delay_ms else 1
    return PacedResponse(json.dumps(body, ensure_ascii=False).encode(), answer_seconds(plan, steps))


def routes(state) -> list[Route]:
    """The routes, with the stores they serve made on `state`."""
    state.libraries = libraries = Libraries(state.files)
    state.agents = agents = Agents(libraries)
    state.conversations = chats = Conversations(state.files, libraries, agents, state.seed, state.repeats)

    async def body_of(request: Request):
        raw = await limits.read_body(request, limits.MAX_JSON_BYTES)
        return await run_in_threadpool(limits.decode_json, raw)

    def turn(action):
        async def endpoint(request: Request) -> Response:
            plan = request.scope["offline.plan"]
            raw = await limits.read_body(request, limits.MAX_JSON_BYTES)
            conversation = request.path_params.get("conversation_id")

            def work():
                data = limits.decode_json(raw)
                stream, body = action(data, plan) if conversation is None else action(conversation, data, plan)
                return _answer(stream, body, plan)

            return await run_in_threadpool(work)

        return endpoint

    # -- conversations -------------------------------------------------------------------

    async def list_conversations(request: Request) -> Response:
        return _ok(chats.listing(_int(request, "page", 0), _int(request, "page_size", 100)))

    async def get_conversation(request: Request) -> Response:
        return _ok(chats.shown(request.path_params["conversation_id"]))

    async def delete_conversation(request: Request) -> Response:
        chats.delete(request.path_params["conversation_id"])
        return _empty()

    async def history(request: Request) -> Response:
        return _ok(chats.history(request.path_params["conversation_id"]))

    async def messages(request: Request) -> Response:
        return _ok(chats.messages(request.path_params["conversation_id"]))

    # -- agents ----------------------------------------------------------------------------

    async def create_agent(request: Request) -> Response:
        return _ok(agents.create(await body_of(request)))

    async def list_agents(request: Request) -> Response:
        found = agents.listing(request.query_params.get("name"), request.query_params.get("search"))
        page, size = _int(request, "page", 0), _int(request, "page_size", 20)
        return _ok(found[page * size:(page + 1) * size])

    async def agent_pages(request: Request) -> Response:
        found = agents.listing(request.query_params.get("name"), request.query_params.get("search"))
        start = _int(request, "page_token", 0) if (request.query_params.get("page_token") or "").isdigit() else 0
        size = _int(request, "page_size", 20)
        more = start + size < len(found)
        return _ok({"object": "list", "data": found[start:start + size],
                    "next_page_token": str(start + size) if more else None})

    async def get_agent(request: Request) -> Response:
        return _ok(agents.get(request.path_params["agent_id"], request.query_params.get("agent_version")))

    async def update_agent(request: Request) -> Response:
        return _ok(agents.update(request.path_params["agent_id"], await body_of(request)))

    async def delete_agent(request: Request) -> Response:
        agents.delete(request.path_params["agent_id"])
        return _empty()

    async def switch_version(request: Request) -> Response:
        return _ok(agents.switch(request.path_params["agent_id"], _int(request, "version", required=True)))

    async def versions(request: Request) -> Response:
        return _ok(agents.versions(request.path_params["agent_id"], _int(request, "page", 0),
                                   _int(request, "page_size", 20)))

    async def version(request: Request) -> Response:
        return _ok(agents.get(request.path_params["agent_id"], request.path_params["version"]))

    async def set_alias(request: Request) -> Response:
        return _ok(agents.set_alias(request.path_params["agent_id"], _text(request, "alias"),
                                    _int(request, "version", required=True)))

    async def aliases(request: Request) -> Response:
        return _ok(agents.aliases(request.path_params["agent_id"]))

    async def delete_alias(request: Request) -> Response:
        agents.delete_alias(request.path_params["agent_id"], _text(request, "alias"))
        return _empty()

    # -- libraries -------------------------------------------------------------------------

    async def create_library(request: Request) -> Response:
        return _ok(libraries.create(await body_of(request)), 201)

    async def list_libraries(request: Request) -> Response:
        return _ok(libraries.listing(request.query_params.get("search"), _int(request, "page", 0),
                                     _int(request, "page_size", 100)))

    async def get_library(request: Request) -> Response:
        return _ok(libraries.library(_uuid(request, "library_id")))

    async def update_library(request: Request) -> Response:
        library_id = _uuid(request, "library_id")
        return _ok(libraries.update(library_id, await body_of(request)))

    async def delete_library(request: Request) -> Response:
        return _ok(libraries.delete(_uuid(request, "library_id")))

    async def upload_document(request: Request) -> Response:
        library_id = _uuid(request, "library_id")
        with files.spooled() as body:
            await limits.spool_body(request, MAX_DOCUMENT_BYTES + 64 * limits.KIB, body)
            content_type = request.headers.get("content-type", "")
            status, shown = await run_in_threadpool(libraries.upload, library_id, body, content_type)
        return _ok(shown, status)

    async def list_documents(request: Request) -> Response:
        return _ok(libraries.documents(_uuid(request, "library_id"), request.query_params.get("search"),
                                       _int(request, "page", 0), _int(request, "page_size", 100)))

    def document_route(action, *, body: bool = False, empty: bool = False):
        async def endpoint(request: Request) -> Response:
            ids = (_uuid(request, "library_id"), _uuid(request, "document_id"))
            result = action(*ids, await body_of(request)) if body else action(*ids)
            return _empty() if empty else _ok(result)

        return endpoint

    async def signed(request: Request) -> Response:
        text = request.url.path.endswith("extracted-text-signed-url")
        return _ok(libraries.signed_url(_uuid(request, "library_id"), _uuid(request, "document_id"),
                                        str(request.base_url), text=text))

    conversation = "/v1/conversations/{conversation_id}"
    agent = "/v1/agents/{agent_id}"
    library = "/v1/libraries/{library_id}"
    document = library + "/documents/{document_id}"
    return [
        Route("/v1/conversations", turn(chats.start), methods=["POST"]),
        Route("/v1/conversations", list_conversations, methods=["GET"]),
        Route(conversation, get_conversation, methods=["GET"]),
        Route(conversation, delete_conversation, methods=["DELETE"]),
        Route(conversation, turn(chats.append), methods=["POST"]),
        Route(conversation + "/history", history, methods=["GET"]),
        Route(conversation + "/messages", messages, methods=["GET"]),
        Route(conversation + "/restart", turn(chats.restart), methods=["POST"]),
        Route("/v1/agents", create_agent, methods=["POST"]),
        Route("/v1/agents", list_agents, methods=["GET"]),
        Route("/v1/agents/pages", agent_pages, methods=["GET"]),
        Route(agent, get_agent, methods=["GET"]),
        Route(agent, update_agent, methods=["PATCH"]),
        Route(agent, delete_agent, methods=["DELETE"]),
        Route(agent + "/version", switch_version, methods=["PATCH"]),
        Route(agent + "/versions", versions, methods=["GET"]),
        Route(agent + "/versions/{version}", version, methods=["GET"]),
        Route(agent + "/aliases", set_alias, methods=["PUT"]),
        Route(agent + "/aliases", aliases, methods=["GET"]),
        Route(agent + "/aliases", delete_alias, methods=["DELETE"]),
        Route("/v1/libraries", create_library, methods=["POST"]),
        Route("/v1/libraries", list_libraries, methods=["GET"]),
        Route(library, get_library, methods=["GET"]),
        Route(library, update_library, methods=["PATCH"]),
        Route(library, update_library, methods=["PUT"]),
        Route(library, delete_library, methods=["DELETE"]),
        Route(library + "/documents", upload_document, methods=["POST"]),
        Route(library + "/documents", list_documents, methods=["GET"]),
        Route(document, document_route(libraries.document), methods=["GET"]),
        Route(document, document_route(libraries.update_document, body=True), methods=["PATCH"]),
        Route(document, document_route(libraries.update_document, body=True), methods=["PUT"]),
        Route(document, document_route(libraries.delete_document, empty=True), methods=["DELETE"]),
        Route(document + "/text_content", document_route(libraries.text), methods=["GET"]),
        Route(document + "/status", document_route(libraries.status), methods=["GET"]),
        Route(document + "/signed-url", signed, methods=["GET"]),
        Route(document + "/extracted-text-signed-url", signed, methods=["GET"]),
        Route(document + "/reprocess", document_route(libraries.reprocess, empty=True), methods=["POST"]),
    ]
