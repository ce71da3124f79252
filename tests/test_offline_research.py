"""Conversations, agents, libraries and built-in tools on the offline server: what they answer, and that
every body validates against Mistral's OpenAPI spec and the official SDK reads it."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from offline_documents import report_pdf
from offline_spec import check_error_fixture, check_fixture, spec_fixture  # noqa: F401

from mistral_magic.money import tokens
from mistral_magic.offline import corpus

MODEL = "mistral-small-latest"


@pytest.fixture
def http(offline_server):
    with httpx.Client(base_url=offline_server.url, timeout=30,
                      headers={"Authorization": f"Bearer {offline_server.api_key}"}) as client:
        yield client


def events_of(http, path, body):
    """The SSE events of a streamed conversation call: [(event, data)]."""
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        text = response.read().decode()
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def references(outputs):
    return [c for o in outputs if o["type"] == "message.output" and isinstance(o["content"], list)
            for c in o["content"] if c["type"] == "tool_reference"]


def test_web_search_cites_the_shipped_corpus_whole_and_streamed(http, check):
    body = {"model": MODEL, "inputs": "What is gradient boosting? When does it overfit?",
            "tools": [{"type": "web_search"}]}
    answer = http.post("/v1/conversations", json=body).json()
    check(answer, "/v1/conversations", "post")
    searches = [o for o in answer["outputs"] if o["type"] == "tool.execution"]
    assert [s["name"] for s in searches] == ["web_search", "web_search"]  # one per question
    assert json.loads(searches[0]["arguments"]) == {"query": "gradient boosting"}
    cited = references(answer["outputs"])
    assert len(cited) == 6 and all(c["url"].startswith(corpus.HOST + "/") for c in cited)
    assert {c["url"] for c in cited} <= {p.url for p in corpus.pages()}
    usage = answer["usage"]
    assert usage["connectors"] == {"web_search": 2} and usage["connector_tokens"] > 0
    assert usage["prompt_tokens"] == tokens.count_messages([{"role": "user", "content": body["inputs"]}])
    streamed = events_of(http, "/v1/conversations", body)
    for event, data in streamed:
        check({"event": event, "data": data}, "/v1/conversations#stream", "post", media="text/event-stream")
    kinds = [event for event, _ in streamed]
    assert kinds[0] == "conversation.response.started" and kinds[-1] == "conversation.response.done"
    assert kinds.count("tool.execution.started") == 2 and "[DONE]" not in str(streamed)
    pieces = [d["content"] for e, d in streamed if e == "message.output.delta"]
    assert "".join(p for p in pieces if isinstance(p, str)) == "".join(
        c["text"] for o in answer["outputs"] if o["type"] == "message.output" for c in o["content"]
        if c["type"] == "text")
    assert sum(isinstance(p, dict) and p["type"] == "tool_reference" for p in pieces) == 6


def test_a_model_without_built_in_tools_is_refused_naming_those_that_have_them(http, check_error):
    response = http.post("/v1/conversations", json={"model": "codestral-latest", "inputs": "hi",
                                                     "tools": [{"type": "web_search"}]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "codestral-latest does not support built-in tools (web_search)" in message
    assert "mistral-large-latest" in message and "mistral-small-latest" in message
    check_error(response, "/v1/conversations", "post")
    for body in ({"inputs": "hi"}, {"model": MODEL, "agent_id": "ag_x", "inputs": "hi"}):
        check_error(http.post("/v1/conversations", json=body), "/v1/conversations", "post")
    assert http.post("/v1/conversations", json={"model": MODEL}).status_code == 422


def test_function_tools_mix_with_built_ins_append_restart_and_history(http, check):
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}, "required": ["city"]}}}
    body = {"model": MODEL, "inputs": "Search the weather in Paris and get_weather for Paris",
            "tools": [{"type": "web_search"}, weather], "instructions": "Be brief."}
    first = http.post("/v1/conversations", json=body).json()
    check(first, "/v1/conversations", "post")
    calls = [o for o in first["outputs"] if o["type"] == "function.call"]
    assert [o["type"] for o in first["outputs"]] == ["tool.execution", "function.call"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"} and len(calls[0]["tool_call_id"]) == 9
    conversation = first["conversation_id"]
    result = {"type": "function.result", "tool_call_id": calls[0]["tool_call_id"], "result": "sunny, 21 C"}
    second = http.post(f"/v1/conversations/{conversation}", json={"inputs": [result]}).json()
    check(second, "/v1/conversations/{conversation_id}", "post")
    text = "".join(c["text"] for c in second["outputs"][0]["content"] if c["type"] == "text")
    assert "sunny, 21 C" in text and references(second["outputs"])  # the turn's searches cited again
    # The prompt is counted as the client counts the same exchange as chat messages.
    exchange = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": body["inputs"]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": calls[0]["tool_call_id"], "type": "function",
                     "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]},
                {"role": "tool", "name": "get_weather", "tool_call_id": calls[0]["tool_call_id"],
                 "content": "sunny, 21 C"}]
    assert second["usage"]["prompt_tokens"] == tokens.count_messages(
        exchange, [{"type": "function", "function": {k: weather["function"][k]
                                                     for k in ("name", "description", "parameters")}}])
    third = http.post(f"/v1/conversations/{conversation}", json={"inputs": "And in Rome?"}).json()
    history = http.get(f"/v1/conversations/{conversation}/history").json()
    check(history, "/v1/conversations/{conversation_id}/history", "get")
    assert [e["type"] for e in history["entries"]][:5] == [
        "message.input", "tool.execution", "function.call", "function.result", "message.output"]
    check(http.get(f"/v1/conversations/{conversation}/messages").json(),
          "/v1/conversations/{conversation_id}/messages", "get")
    # Restart from the end of the first turn: a new conversation without the Rome question.
    restarted = http.post(f"/v1/conversations/{conversation}/restart", json={
        "from_entry_id": second["outputs"][-1]["id"], "inputs": "And in Oslo?"}).json()
    check(restarted, "/v1/conversations/{conversation_id}/restart", "post")
    assert restarted["conversation_id"] != conversation
    entries = http.get(f"/v1/conversations/{restarted['conversation_id']}/history").json()["entries"]
    said = [e["content"] for e in entries if e["type"] == "message.input"]
    assert said == [body["inputs"], "And in Oslo?"] and third["outputs"]
    for streamed in events_of(http, f"/v1/conversations/{conversation}/restart",
                              {"from_entry_id": second["outputs"][-1]["id"], "inputs": "Berlin?"}):
        check({"event": streamed[0], "data": streamed[1]}, "/v1/conversations/{conversation_id}/restart#stream",
              "post", media="text/event-stream")
    check(http.get(f"/v1/conversations/{conversation}").json(), "/v1/conversations/{conversation_id}", "get")
    check(http.get("/v1/conversations").json(), "/v1/conversations", "get")
    assert http.delete(f"/v1/conversations/{conversation}").status_code == 204
    assert http.post(f"/v1/conversations/{conversation}", json={"inputs": "x"}).status_code == 404


def test_pictures_and_code_are_made_offline_and_say_so(http, check, sdk):
    answer = http.post("/v1/conversations", json={
        "model": "mistral-medium-latest", "inputs": "Draw a histogram of 3, 5, 8 and compute their mean",
        "tools": [{"type": "image_generation"}, {"type": "code_interpreter"}]}).json()
    check(answer, "/v1/conversations", "post")
    runs = {o["name"]: o for o in answer["outputs"] if o["type"] == "tool.execution"}
    assert "Not run" in runs["code_interpreter"]["info"]["code_output"]
    assert "values = [3, 5, 8]" in runs["code_interpreter"]["info"]["code"]
    picture = next(c for o in answer["outputs"] if o["type"] == "message.output" for c in o["content"]
                   if c["type"] == "tool_file")
    png = http.get(f"/v1/files/{picture['file_id']}/content").content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sdk.files.download(file_id=picture["file_id"]).read() == png  # as the client fetches it


def test_agents_versions_and_aliases(http, check, check_error):
    made = http.post("/v1/agents", json={"model": MODEL, "name": "tutor", "instructions": "Explain simply.",
                                         "tools": [{"type": "web_search"}]})
    check(made.json(), "/v1/agents", "post")
    agent = made.json()["id"]
    assert made.json()["version"] == 0
    updated = http.patch(f"/v1/agents/{agent}", json={"instructions": "Explain with an example."}).json()
    check(updated, "/v1/agents/{agent_id}", "patch")
    assert updated["version"] == 1 and updated["versions"] == [0, 1]
    check(http.put(f"/v1/agents/{agent}/aliases", params={"alias": "stable", "version": 0}).json(),
          "/v1/agents/{agent_id}/aliases", "put")
    check(http.get(f"/v1/agents/{agent}/aliases").json(), "/v1/agents/{agent_id}/aliases", "get")
    assert http.get(f"/v1/agents/{agent}", params={"agent_version": "stable"}).json()["instructions"] == \
        "Explain simply."
    check(http.get(f"/v1/agents/{agent}/versions").json(), "/v1/agents/{agent_id}/versions", "get")
    check(http.get(f"/v1/agents/{agent}/versions/1").json(), "/v1/agents/{agent_id}/versions/{version}", "get")
    check(http.get("/v1/agents/pages").json(), "/v1/agents/pages", "get")
    check(http.get("/v1/agents").json(), "/v1/agents", "get")
    check(http.patch(f"/v1/agents/{agent}/version", params={"version": 0}).json(),
          "/v1/agents/{agent_id}/version", "patch")
    talk = http.post("/v1/conversations", json={"agent_id": agent, "agent_version": "stable",
                                                "inputs": "What is PCA?"}).json()
    check(talk, "/v1/conversations", "post")
    shown = http.get(f"/v1/conversations/{talk['conversation_id']}").json()
    check(shown, "/v1/conversations/{conversation_id}", "get")
    assert shown["agent_id"] == agent and shown["agent_version"] == "stable"
    bad = http.put(f"/v1/agents/{agent}/aliases", params={"alias": "Not Valid", "version": 0})
    assert bad.status_code == 422 and check_error(bad, "/v1/agents/{agent_id}/aliases", "put")
    assert http.get(f"/v1/agents/{agent}", params={"agent_version": "nope"}).status_code == 404
    assert http.delete(f"/v1/agents/{agent}/aliases", params={"alias": "stable"}).status_code == 204
    assert http.delete(f"/v1/agents/{agent}").status_code == 204


def test_libraries_process_documents_and_the_library_tool_cites_them(http, check, sdk):
    library = http.post("/v1/libraries", json={"name": "reports"})
    assert library.status_code == 201
    check(library.json(), "/v1/libraries", "post", status=201)
    library_id = library.json()["id"]
    pdf = report_pdf()
    upload = http.post(f"/v1/libraries/{library_id}/documents", files={"file": ("report.pdf", pdf,
                                                                                 "application/pdf")})
    assert upload.status_code == 201
    check(upload.json(), "/v1/libraries/{library_id}/documents", "post", status=201)
    again = http.post(f"/v1/libraries/{library_id}/documents", files={"file": ("copy.pdf", pdf)})
    assert again.status_code == 200 and again.json()["id"] == upload.json()["id"]  # same content
    document = upload.json()["id"]
    path = f"/v1/libraries/{library_id}/documents/{document}"
    statuses = []
    while not statuses or statuses[-1] != "done":
        status = http.get(path + "/status").json()
        check(status, "/v1/libraries/{library_id}/documents/{document_id}/status", "get")
        statuses.append(status["process_status"])
        time.sleep(0.05)
    assert statuses[0] == "todo" and "in_progress" in statuses
    text = http.get(path + "/text_content").json()
    check(text, "/v1/libraries/{library_id}/documents/{document_id}/text_content", "get")
    check(http.get(path).json(), "/v1/libraries/{library_id}/documents/{document_id}", "get")
    check(http.get(f"/v1/libraries/{library_id}/documents").json(), "/v1/libraries/{library_id}/documents", "get")
    check(http.get(f"/v1/libraries/{library_id}").json(), "/v1/libraries/{library_id}", "get")
    check(http.get("/v1/libraries").json(), "/v1/libraries", "get")
    signed = http.get(path + "/signed-url").json()
    assert httpx.get(signed).content == pdf
    asked = http.post("/v1/conversations", json={
        "model": "mistral-large-latest", "inputs": text["text"].split(".")[0],
        "tools": [{"type": "document_library", "library_ids": [library_id]}]}).json()
    check(asked, "/v1/conversations", "post")
    cited = references(asked["outputs"])
    assert cited and {c["title"] for c in cited} == {"report.pdf"} and cited[0]["url"] is None
    assert cited[0]["description"].split()[0] in text["text"]
    # The SDK reads every one of these.
    listed = sdk.beta.libraries.documents.list(library_id=library_id)
    assert listed.data[0].process_status == "done"
    assert sdk.beta.libraries.documents.text_content(library_id=library_id, document_id=document).text
    assert http.delete(path).status_code == 204


def test_the_sdk_reads_conversations_and_agents(sdk):
    agent = sdk.beta.agents.create(model=MODEL, name="sdk", tools=[{"type": "web_search"}])
    response = sdk.beta.conversations.start(agent_id=agent.id, inputs="What is the bootstrap?")
    assert response.outputs[-1].type == "message.output" and response.usage.connectors == {"web_search": 1}
    events = list(sdk.beta.conversations.append_stream(conversation_id=response.conversation_id,
                                                       inputs="Who introduced it?"))
    assert events[0].data.type == "conversation.response.started"
    assert events[-1].data.usage.prompt_tokens > response.usage.prompt_tokens
    history = sdk.beta.conversations.get_history(conversation_id=response.conversation_id)
    assert len(history.entries) == 6
    assert sdk.beta.agents.list_version_aliases(agent_id=agent.id) == []
