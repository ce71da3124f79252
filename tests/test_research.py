"""Answers with sources: built-in tools, libraries and agents in a cell, through the one call path.

Every cell runs against the real offline server's Conversations API (web search over its
shipped corpus, libraries searched with its embeddings, labelled pictures, code shown but not
run); what a cell shows, costs, records, keeps in its chat and replays is checked here.
"""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
import pytest
from conftest import run
from IPython.core.error import UsageError
from test_interrupts import signal_when

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError, Interrupted
from mistral_magic.money import tokens
from mistral_magic.offline import corpus

ASK = "What is gradient boosting? When does it overfit?"
SEARCH = f"%%mistral --tools web_search -o found\n{ASK}"


def final(ip) -> dict:
    return [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]


def restart(ip):
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    return mistral_magic.session()


def server_history(server, conversation_id: str) -> list[dict]:
    response = httpx.get(f"{server.url}/v1/conversations/{conversation_id}/history",
                         headers={"Authorization": f"Bearer {server.api_key}"})
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def said(entries: list[dict]) -> list[str]:
    return [e["content"] for e in entries if e["type"] == "message.input" and e["role"] == "user"]


def test_web_search_answers_with_numbered_sources_and_collapsed_searches(ip, magic_server):
    before = magic_server.request_count("/v1/conversations")
    run(ip, SEARCH, cell_id="s1")
    out = final(ip)
    html, plain, meta = out["data"]["text/html"], out["data"]["text/plain"], out["metadata"]["mistral_magic"]
    # Six sources cited where they were used, numbered, each title a link to its page.
    assert all(f"⁽{n}⁾" in html for n in "¹²³⁴⁵⁶") and "⁽⁷⁾" not in html
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert len(links) == 6 and all(url.startswith(corpus.HOST + "/") for url, _ in links)
    assert {title for _, title in links} <= {p.title for p in corpus.pages()}
    # The two searches made are collapsed blocks saying where they ran.
    assert html.count('<details class="mistral-tool">') == 2 and "“gradient boosting”" in html
    assert "(1) A short history of gradient boosting — https://search.offline.invalid/" in plain
    # Tokens are priced, the searches are not: never $0 for them.
    footer = plain.splitlines()[-1]
    assert " · 2 searches · $0.000" in footer and "+ tools: unknown" in footer
    found = ip.user_ns["found"]
    assert str(found) == mistral_magic.session().last.text and found.text.startswith("*Offline answer")
    assert list(found.sources.columns) == ["n", "title", "url", "tool", "description"]
    assert found.sources["url"].tolist() == [url for url, _ in links] and len(found.runs) == 2
    assert meta["tool_uses"] == {"web_search": 2} and len(meta["sources"]) == 6
    assert meta["conversation_id"].startswith("conv_")
    # One call to the server; the ledger: the model's tokens, and the searches at an unknown cost.
    assert magic_server.request_count("/v1/conversations") == before + 1
    session = mistral_magic.session()
    model_row, tool_row = session.ledger.records
    assert (model_row.kind, model_row.cost is not None) == ("conversation", True)
    assert (tool_row.kind, tool_row.model, tool_row.uses, tool_row.cost) == ("tool", "web_search", 2, None)
    totals = session.ledger.totals()
    assert totals["calls"] == 1 and totals["tool_calls"] == 2 and not totals["cost_known"]
    assert session.ledger.to_frame()["uses"].tolist() == [None, 2] or \
        session.ledger.to_frame()["uses"].isna().tolist() == [True, False]
    # The prompt was counted here exactly as the server counted it; what the tools read comes on top.
    research = session.last.research
    counted = tokens.count_messages([{"role": "user", "content": ASK}])
    assert model_row.prompt_tokens == counted + research.connector_tokens and research.connector_tokens > 0


def test_sources_from_a_stored_answer_are_data_and_render_safely(ip, magic_server, tmp_path):
    run(ip, f"%%mistral --tools web_search\n{ASK}", cell_id="s1")
    store = tmp_path / ".mistral_magic" / "store.sqlite"
    conn = sqlite3.connect(store)
    try:
        (key, text), = conn.execute("SELECT key, response FROM responses").fetchall()
        response = json.loads(text)
        hostile = [("javascript:alert(1)", "<img src=x onerror=alert(1)>"),
                   ("data:text/html,<script>alert(1)</script>", "[click](javascript:alert(2))"),
                   ("https://example.org/\" onmouseover=\"alert(3)", "**bold** `code`"),
                   ("//evil.example/x", "protocol-relative")]
        for source, (url, title) in zip(response["research"]["sources"], hostile, strict=False):
            source.update(url=url, title=title)
        # Fields of the wrong type are left out or coerced, never a traceback.
        research = response["research"]
        research["marks"] += [["x", 1], [3], "7"]
        research.update(token_cost="lots", connector_tokens=-5, uses={"web_search": "2"})
        research["executions"][0]["arguments"] = {"query": {"nested": 1}}
        research["pictures"] = [{"file_id": 1, "data": "not base64!!"}, "junk"]
        conn.execute("UPDATE responses SET response = ? WHERE key = ?", (json.dumps(response), key))
        conn.commit()
    finally:
        conn.close()
    restart(ip)
    before = magic_server.request_count("/v1/conversations")
    run(ip, f"%%mistral --tools web_search\n{ASK}", cell_id="s1")  # a fresh kernel: served
    assert magic_server.request_count("/v1/conversations") == before
    html = final(ip)["data"]["text/html"]
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("https://") for h in hrefs)
    assert "javascript:" not in "".join(hrefs) and "<img" not in html and "<script" not in html
    assert "onmouseover=" not in html.replace("onmouseover=&quot;", "")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[click](javascript:alert(2))" in html
    assert "evil.example" not in "".join(hrefs)
    assert "tools: unknown" not in final(ip)["data"]["text/plain"]  # no uses read from junk
    assert not [m for m in ip.display_pub.finals() if "image/png" in m["data"]]


def test_built_in_tools_under_a_budget_need_a_price_or_an_explicit_yes(ip, magic_server):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1.0")
    session = mistral_magic.session()
    before = magic_server.request_count("/v1/conversations")
    refused = run(ip, "%%mistral --tools web_search\nWhat is PCA?", ok=False).error_in_exec
    assert isinstance(refused, BudgetExceeded)
    message = str(refused)
    assert "web_search" in message and "--allow-unpriced" in message and "per_call" in message
    assert magic_server.request_count("/v1/conversations") == before and not session.ledger.records
    run(ip, "%%mistral --tools web_search --allow-unpriced\nWhat is PCA?")
    model_row, tool_row = session.ledger.records
    assert tool_row.cost is None and model_row.cost > 0
    assert session.ledger.spent == pytest.approx(model_row.cost)  # the tokens are counted
    # A price given by the user makes the searches known costs, held before sending.
    ip.run_line_magic("config", 'MistralMagics.prices = {"web_search": {"per_call": 0.01}}')
    run(ip, "%%mistral --tools web_search\nWhat is PCA?", cell_id="p")
    answer = session.last
    assert answer.cost == pytest.approx(answer.research.token_cost + 0.01)
    footer = final(ip)["data"]["text/plain"].splitlines()[-1]
    assert "1 search" in footer and "unknown" not in footer
    # Four searches are held per call: with less left than that, the cell is refused unsent.
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {session.ledger.spent + 0.03}")
    sent = magic_server.request_count("/v1/conversations")
    refused = run(ip, "%%mistral --tools web_search\nWhat is PCA?", ok=False).error_in_exec
    assert isinstance(refused, BudgetExceeded) and "$0.04" in str(refused)
    assert magic_server.request_count("/v1/conversations") == sent


def test_a_model_without_built_in_tools_is_refused_naming_those_that_have_them(ip, magic_server):
    before = magic_server.request_count("/v1/conversations")
    error = run(ip, "%%mistral -m codestral-latest --tools web_search\nhi", ok=False).error_in_exec
    assert isinstance(error, ConfigError)
    assert str(error).startswith("codestral-latest cannot use Mistral's built-in tools (web_search)")
    assert "mistral-small-latest" in str(error) and "mistral-large-latest" in str(error)
    assert magic_server.request_count("/v1/conversations") == before
    for bad, why in (("--json", "--json"), ("--image x", "--image"), ("--think", "--think")):
        error = run(ip, f"%%mistral --tools web_search {bad}\nhi", ok=False).error_in_exec
        assert isinstance(error, UsageError) and why in str(error)


def test_pictures_are_downloaded_shown_and_given_as_pil_and_code_is_shown_not_run(ip, magic_server):
    run(ip, "%%mistral --tools image_generation -o pic\nA watercolour of a fox reading a histogram")
    from PIL import Image

    assert isinstance(ip.user_ns["pic"], Image.Image) and ip.user_ns["pic"].size == (512, 320)
    shown = [m for m in ip.display_pub.finals() if "image/png" in m["data"]]
    assert len(shown) == 1 and shown[0]["metadata"]["mistral_magic_picture"]["tool"] == "image_generation"
    assert "1 image" in final(ip)["data"]["text/plain"]
    run(ip, "%%mistral -m mistral-medium-latest --tools code_interpreter -o ran\nCompute the mean of 3, 5 and 8")
    html = final(ip)["data"]["text/html"]
    assert "runs on Mistral&#x27;s servers, not in this kernel" in html or \
        "runs on Mistral's servers, not in this kernel" in html
    assert 'class="language-python"' in html and "values = [3, 5, 8]" in html and "Not run" in html
    assert ip.user_ns["ran"].runs[0]["code"].startswith("# Offline stand-in")


def test_built_in_and_notebook_tools_mix(ip, magic_server):
    run(ip, "calls = []\n"
            "def describe_column(column: str) -> dict:\n"
            "    '''Summary statistics of one column of the sales table.'''\n"
            "    calls.append(column)\n"
            "    return {'column': column, 'mean': 4.2}\n")
    run(ip, "%%mistral --tools web_search,describe_column\nSearch the web, then describe the price column.")
    assert ip.user_ns["calls"] == ["price"]
    out = final(ip)
    html = out["data"]["text/html"]
    assert "describe_column" in html and "web_search · “" in html and "Sources" in html
    assert "'mean': 4.2" in html or "mean" in html
    assert out["metadata"]["mistral_magic"]["steps"] == 2
    # The follow-up continues the same conversation: its history is valid on the server.
    run(ip, "%%mistral --tools web_search,describe_column\nAnd the qty column?")
    assert mistral_magic.session().last.status == "ok"


def test_a_chat_maps_onto_conversations_re_runs_restart_and_undo(ip, magic_server):
    session = mistral_magic.session()
    run(ip, "%%mistral --tools web_search\nWhat is PCA?", cell_id="a")
    run(ip, "%%mistral --tools web_search\nAnd t-SNE?", cell_id="b")
    first, second = (t.conversation["id"] for t in session.chats.get("default").turns)
    assert first == second  # appended
    assert said(server_history(magic_server, second)) == ["What is PCA?", "And t-SNE?"]
    run(ip, "%%mistral --tools web_search\nAnd UMAP?", cell_id="b")  # the second cell re-run
    turns = session.chats.get("default").turns
    assert [t.prompt for t in turns] == ["What is PCA?", "And UMAP?"]
    restarted = turns[1].conversation["id"]
    assert restarted != first and said(server_history(magic_server, restarted)) == ["What is PCA?", "And UMAP?"]
    ip.run_line_magic("mistral", "undo")
    run(ip, "%%mistral --tools web_search\nAnd k-means?", cell_id="c")
    third = session.chats.get("default").turns[-1].conversation["id"]
    assert said(server_history(magic_server, third)) == ["What is PCA?", "And k-means?"]
    # A chat cell in between: the conversation is started again from the chat's history.
    run(ip, "%%mistral\nSummarise.", cell_id="d")
    run(ip, "%%mistral --tools web_search\nAnd DBSCAN?", cell_id="e")
    fourth = session.chats.get("default").turns[-1].conversation["id"]
    assert said(server_history(magic_server, fourth)) == ["What is PCA?", "And k-means?", "Summarise.",
                                                           "And DBSCAN?"]
    frame = ip.run_line_magic("mistral", "chats")
    assert frame.loc[frame["chat"] == "default", "conversation"].item() == fourth


def test_a_replay_shows_sources_and_pictures_and_sends_nothing(ip, magic_server):
    cell = "%%mistral -m mistral-medium-latest --tools web_search,image_generation -o out\nDraw the bootstrap?"
    run(ip, cell, cell_id="r1")
    recorded = final(ip)["data"]["text/html"]
    restart(ip)
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    before = magic_server.request_count()
    run(ip, cell, cell_id="r1")
    assert magic_server.request_count() == before
    out = final(ip)
    assert out["metadata"]["mistral_magic"]["cached"] and "cached · $0" in out["data"]["text/plain"]
    assert re.findall(r'href="[^"]+"', out["data"]["text/html"]) == re.findall(r'href="[^"]+"', recorded)
    assert [m for m in ip.display_pub.finals() if "image/png" in m["data"]]
    assert ip.user_ns["out"].sources.shape[0] == 3 and ip.user_ns["out"].pictures


def test_an_interrupted_conversation_keeps_what_arrived_and_the_next_cell_starts_anew(ip, magic_server):
    magic_server.set_faults({"token_delay_ms": 40})
    signal_when(lambda: any("Searched" in str(m.get("data", {}).get("text/html", ""))
                            for m in ip.display_pub.messages))
    result = run(ip, f"%%mistral --tools web_search\n{ASK}", cell_id="i1", ok=False)
    assert isinstance(result.error_in_exec, Interrupted)
    assert "the partial answer is kept in chat 'default'" in str(result.error_in_exec)
    session = mistral_magic.session()
    model_row, tool_row = session.ledger.records
    assert model_row.status == "interrupted" and model_row.completion_tokens > 0
    assert tool_row.uses == 2 and tool_row.cost is None  # the searches had run
    turn = session.chats.get("default").turns[-1]
    assert turn.status == "interrupted" and turn.answer and turn.conversation is None
    assert "interrupted" in final(ip)["data"]["text/plain"]
    magic_server.set_faults(None)
    run(ip, "%%mistral --tools web_search\nPlease go on.", cell_id="i2")
    entries = server_history(magic_server, session.chats.get("default").turns[-1].conversation["id"])
    assert [e["content"][:20] for e in entries if e["type"] == "message.input"] == [
        ASK[:20], turn.answer[:20], "Please go on."]


def test_agents_have_versions_and_the_answer_names_the_one_that_answered(ip, magic_server):
    note = ip.run_line_magic("mistral", "agent create tutor -m mistral-small-latest -s 'Explain simply.' "
                                        "--tools web_search")
    assert "Agent `tutor` created: version 0 of mistral-small-latest, web_search" in note
    again = ip.run_line_magic("mistral", "agent create tutor -m mistral-small-latest -s 'Explain simply.' "
                                         "--tools web_search")  # a notebook run again: unchanged
    assert "exists already, the same: version 0" in again
    with pytest.raises(ConfigError, match="exists already, set up otherwise"):
        ip.run_line_magic("mistral", "agent create tutor -m mistral-large-latest")
    ip.run_line_magic("mistral", "agent update tutor -s 'Explain with one example.'")
    ip.run_line_magic("mistral", "agent alias tutor stable 0")
    frame = ip.run_line_magic("mistral", "agents")
    row = frame[frame["name"] == "tutor"].iloc[0]
    assert row["version"] == 1 and row["versions"] == [0, 1] and row["aliases"] == {"stable": 0}
    assert row["tools"] == ["web_search"] and row["instructions"] == "Explain with one example."
    run(ip, "%%mistral --agent tutor -c t\nWhat is PCA?")
    meta = final(ip)["metadata"]["mistral_magic"]
    assert meta["agent"]["version"] == 1 and meta["agent"]["name"] == "tutor"
    assert mistral_magic.session().last.request["messages"][0] == {"role": "system",
                                                                   "content": "Explain with one example."}
    run(ip, "%%mistral --agent tutor@stable -c t2\nWhat is PCA?")
    assert final(ip)["metadata"]["mistral_magic"]["agent"] == {
        "id": row["id"], "name": "tutor", "version": 0, "alias": "stable"}
    error = run(ip, "%%mistral --agent tutor@nope\nhi", ok=False).error_in_exec
    assert isinstance(error, ConfigError) and "no version or alias 'nope'" in str(error)
    error = run(ip, "%%mistral --agent nobody\nhi", ok=False).error_in_exec
    assert "No agent named 'nobody'" in str(error) and "%mistral agent create nobody" in str(error)
    error = run(ip, "%%mistral --agent tutor -m mistral-large-latest\nhi", ok=False).error_in_exec
    assert isinstance(error, UsageError)
    assert ip.run_line_magic("mistral", "agent delete tutor") == "Agent `tutor` deleted."
    assert ip.run_line_magic("mistral", "agents").empty


def test_a_library_is_built_once_by_content_and_answers_with_citations(ip, magic_server, tmp_path):
    (tmp_path / "boost.txt").write_text("Early stopping halts gradient boosting when the validation "
                                        "score stops improving. It guards against overfitting.")
    (tmp_path / "pca.txt").write_text("PCA rotates data onto directions of decreasing variance.")
    note = ip.run_line_magic("mistral", "library create course")
    assert "Library `course` created" in note
    assert "Library `course` exists already" in ip.run_line_magic("mistral", "library create course")
    session = mistral_magic.session()
    added = ip.run_line_magic("mistral", "library add course boost.txt pca.txt --wait")
    assert sorted(added["name"]) == ["boost.txt", "pca.txt"] and set(added["status"]) == {"done"}
    uploads = [r for r in session.ledger.records if r.kind == "library"]
    assert len(uploads) == 2 and all(r.uses == 1 and r.cost is None for r in uploads)
    listed = ip.run_line_magic("mistral", "library course")
    assert list(listed.columns) == ["name", "id", "status", "pages", "size", "tokens", "created"]
    assert sorted(listed["name"]) == ["boost.txt", "pca.txt"] and listed["tokens"].min() > 0
    ip.run_line_magic("mistral", "library add course boost.txt")  # the same content: not sent again
    assert len([r for r in session.ledger.records if r.kind == "library"]) == 2
    run(ip, "%%mistral --library course -o cited\nHow do I stop gradient boosting from overfitting?")
    out = final(ip)
    assert "boost.txt" in out["data"]["text/html"] and "⁽¹⁾" in out["data"]["text/html"]
    assert ip.user_ns["cited"].sources["title"].tolist()[0] == "boost.txt"
    assert "1 library search" in out["data"]["text/plain"]
    error = run(ip, "%%mistral --library nowhere\nhi", ok=False).error_in_exec
    assert "No document library named 'nowhere'" in str(error)


def test_to_library_runs_rows_through_the_engine_confined_and_resumable(ip, magic_server, tmp_path):
    import pandas as pd

    (tmp_path / "inside.txt").write_text("A note kept inside the working folder.")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    ip.run_line_magic("mistral", "library create rows")
    ip.user_ns["notes"] = pd.DataFrame({"doc": ["inside.txt", str(outside),
                                                "Cross-validation estimates skill on new data.", None]},
                                       index=list("abcd"))
    run(ip, "added = notes.mistral.to_library('rows', 'doc', progress=False)")
    added = ip.user_ns["added"]
    assert added.loc["a", "document"] == "inside.txt" and added.loc["c", "document"] == "row-c.txt"
    assert added.loc["a", "document_id"] and added.loc["b", "document_id"] is None
    assert "outside the root folder" in added.loc["b", "_error"] and "missing" in added.loc["d", "_error"]
    session = mistral_magic.session()
    rows = [r for r in session.ledger.records if r.kind == "library"]
    assert len(rows) == 2 and all(r.model == "library_document" and r.cost is None for r in rows)
    run(ip, "again = notes.mistral.to_library('rows', 'doc', progress=False)")  # resumed: nothing sent
    assert len([r for r in session.ledger.records if r.kind == "library"]) == 2
    assert ip.user_ns["again"]["document_id"].tolist() == added["document_id"].tolist()
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1.0")
    error = run(ip, "notes.mistral.to_library('rows', 'doc', progress=False)", ok=False).error_in_exec
    assert isinstance(error, BudgetExceeded) and "allow" in str(error)
