"""Every notebook in notebooks/ runs headless against the offline backend, and its outputs are checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mistral_magic.money import tokens
from mistral_magic.money.prices import load_prices
from mistral_magic.money.usage import format_cost

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    for cell in nb.cells:
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue  # a cell that fails on purpose (the semantic notebook's %mistral fix)
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{cell.source!r} failed: {output.get('evalue')}"
    return nb


def cell(nb, start: str):
    """The first code cell whose source starts with `start`."""
    for c in nb.cells:
        if c.cell_type == "code" and c.source.startswith(start):
            return c
    raise AssertionError(f"no cell starts with {start!r}")


def answer(c) -> tuple[str, dict]:
    """The final answer output of a %%mistral cell: its HTML and its provenance."""
    outs = [o for o in c.outputs if "mistral_magic" in o.get("metadata", {})]
    assert outs, f"no answer in {c.source!r}: {c.outputs!r}"
    out = outs[-1]
    return out["data"]["text/html"], out["metadata"]["mistral_magic"]


def text_of(c) -> str:
    parts = []
    for o in c.outputs:
        parts.append(o.get("text", ""))
        parts.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(parts)


def test_quickstart(tmp_path, monkeypatch):
    nb = execute("quickstart.ipynb", tmp_path, monkeypatch)
    first, meta = answer(cell(nb, "%%mistral\nExplain"))
    assert "Offline answer" in first and "<h4>" in first
    assert meta["backend"] == "offline" and meta["usage"]["completion_tokens"] > 0
    # The footer shows this call's own tokens and cost, and a session of one call.
    prompt, completion = meta["usage"]["prompt_tokens"], meta["usage"]["completion_tokens"]
    assert prompt == tokens.count_messages(
        [{"role": "user", "content": "Explain the bias-variance trade-off in three bullet points."}])
    cost = load_prices().cost(meta["model"], prompt, completion)
    assert meta["cost_usd"] == pytest.approx(cost)
    footer = f"{prompt:,} in / {completion:,} out · {format_cost(cost)}"
    shown = text_of(cell(nb, "%%mistral\nExplain"))
    assert footer in shown and f"session {format_cost(cost)} over 1 call" in shown
    assert "no Mistral API key" in text_of(cell(nb, "%%mistral\nExplain"))
    follow, meta = answer(cell(nb, "%%mistral\nNow give"))
    assert "earlier question" in follow and "bias-variance" in follow  # the history reached the model
    assert meta["usage"]["prompt_tokens"] > 100
    # -o keeps the answer; the offline label line stays on screen, out of the value.
    printed = text_of(cell(nb, "print(summary"))
    assert "Offline answer" not in printed and "sales" in printed.lower()
    code, _ = answer(cell(nb, "%%mistral --format code"))
    assert "<pre><code class=\"language-python\">" in code
    dry = text_of(cell(nb, "%%mistral --dry-run"))
    assert '"model": "mistral-large-latest"' in dry and "worst case with 400 answer tokens" in dry
    history = text_of(cell(nb, "%mistral history"))
    assert history.count("assistant") >= 2
    usage = cell(nb, "%mistral usage").outputs[-1]["data"]["text/plain"]
    assert usage.count("mistral-small-latest") == 4
    assert int(text_of(cell(nb, "%mistral tokens")).strip()) == tokens.count_text(
        "How many tokens does this sentence take")
    config = text_of(cell(nb, "%mistral config"))
    assert "(none)" in config and "offline server" in config
    # The four answers were kept in the folder's store, which git ignores.
    store = tmp_path / ".mistral_magic" / "store.sqlite"
    cache = cell(nb, "%mistral cache").outputs[-1]["data"]
    # Shown relative to the notebook: no /home/<user>/… saved into it.
    assert "on · .mistral_magic/store.sqlite" in cache["text/plain"] and str(tmp_path) not in str(cache)
    assert store.exists() and "answers       4 (" in cache["text/plain"]
    assert "mathjax_ignore" in cache["text/html"]
    assert (tmp_path / ".mistral_magic" / ".gitignore").read_text() == "*\n"


def test_extraction(tmp_path, monkeypatch):
    nb = execute("extraction.ipynb", tmp_path, monkeypatch)
    table = text_of(cell(nb, "table = reviews"))
    for expected in ("79.99", "199.00", "_error"):
        assert expected in table
    dtypes = text_of(cell(nb, "table.dtypes"))
    assert "Int64" in dtypes and "float64" in dtypes and "boolean" in dtypes
    assert text_of(cell(nb, "again =")).strip().endswith("True")
    assert "already done" in text_of(cell(nb, "again ="))
    listing, meta = answer(cell(nb, "%%mistral --schema"))
    assert "Zephyr" in listing and meta["status"] == "ok"
    batched = text_of(cell(nb, "batched ="))
    assert "Batch API" in batched and "r6" in batched
    assert "SUCCESS" in text_of(cell(nb, "%mistral batch list"))
    usage = text_of(cell(nb, "usage = %mistral usage"))
    assert "batch" in usage and "extract" in usage


def test_semantic(tmp_path, monkeypatch):
    nb = execute("semantic.ipynb", tmp_path, monkeypatch)
    assert "(dtype('float32'), (1024,))" in text_of(cell(nb, "tickets = tickets.mistral.embed"))
    assert "Embedding 10 rows, up to 512 a request, with mistral-embed" in text_of(
        cell(nb, "tickets = tickets.mistral.embed"))
    hits = cell(nb, "hits =").outputs[-1]["data"]["text/plain"].splitlines()
    assert hits[1].startswith("T-105") and hits[2].startswith("T-107")  # the damaged-order refunds
    assert "Embedding 1 row" in text_of(cell(nb, "hits ="))  # only the query was sent
    groups = cell(nb, "deduped =").outputs[-1]["data"]["text/plain"].splitlines()[1:]
    assert [line.split()[0] for line in groups] == ["T-103", "T-104", "T-105", "T-107"]
    assert [line.split()[-1] for line in groups] == ["False", "True", "False", "True"]
    kinds = text_of(cell(nb, 'tickets["kind"]'))
    for ticket, kind in (("T-101", "bug"), ("T-106", "feature"), ("T-109", "question"),
                         ("T-110", "refund")):
        assert any(line.startswith(ticket) and line.endswith(kind) for line in kinds.splitlines())
    refunds = cell(nb, "refund =").outputs[-1]["data"]["text/plain"].splitlines()[1:]
    assert [line.split()[0] for line in refunds] == ["T-105", "T-107", "T-110"]
    flagged = cell(nb, "flags =").outputs[-1]["data"]["text/plain"].splitlines()[1:]
    assert len(flagged) == 1 and flagged[0].split()[0] == "T-110"
    assert flagged[0].split()[-1] == "violence_and_threats"
    table = cell(nb, "%mistral moderate").outputs[-1]["data"]["text/plain"].splitlines()
    assert table[2].split() == ["violence_and_threats", "0.925000", "True"]
    fill, meta = answer(cell(nb, "%%mistral --fim"))
    assert meta["model"] == "codestral-latest" and "offline completion" in fill
    filled = text_of(cell(nb, "print(filled)"))
    assert filled.startswith("def refund_total(amounts, fee):\n") and "<FILL>" not in filled
    assert filled.rstrip().endswith("print(refund_total([20, 35], 2))")
    broken = cell(nb, "open_tickets =")
    assert [o.ename for o in broken.outputs if o.output_type == "error"] == ["KeyError"]
    fixed, meta = answer(cell(nb, "%mistral fix"))
    assert '<pre><code class="language-python">' in fixed and meta["status"] == "ok"
    assert "KeyError" in text_of(cell(nb, "Err[-1]")) and "tickets[" in text_of(cell(nb, "Err[-1]"))
    usage = text_of(cell(nb, "usage = %mistral usage"))
    for kind in ("classify", "embed", "filter", "fim", "fix", "moderate"):
        assert kind in usage


def test_tools(tmp_path, monkeypatch):
    nb = execute("tools.ipynb", tmp_path, monkeypatch)
    asked = cell(nb, "%%mistral --tools describe_column,plot_hist -o summary")
    html, meta = answer(asked)
    assert meta["steps"] == 2 and meta["status"] == "ok"
    calls = {c["name"]: c for c in meta["tool_calls"]}
    assert calls["describe_column"]["arguments"] == {"column": "price"}
    assert calls["plot_hist"]["arguments"] == {"column": "price", "bins": 12}
    assert html.count('<details class="mistral-tool">') == 2
    assert "| mean | 15.3 |" in text_of(asked)  # the DataFrame result came back as a table
    assert '"counts": [12, 7, 2' in text_of(asked) and "2 steps, 2 tool calls" in text_of(asked)
    assert any("image/png" in o.get("data", {}) for o in asked.outputs)  # the tool drew its plot
    follow = cell(nb, "%%mistral --tools describe_column,plot_hist\nNow plot")
    _, meta = answer(follow)
    assert {"name": "plot_hist", "arguments": {"column": "qty", "bins": 5}} in [
        {k: c[k] for k in ("name", "arguments")} for c in meta["tool_calls"]]
    # the follow-up sent the first cell's calls and results: its prompt holds them
    assert meta["usage"]["prompt_tokens"] > 1000
    # A tool that takes a list of pydantic models: one Sale a line, each field from its line.
    added = cell(nb, "%%mistral --tools add_sales")
    html, meta = answer(added)
    assert meta["status"] == "ok" and meta["steps"] == 2
    assert [(c["name"], c["arguments"]) for c in meta["tool_calls"]] == [("add_sales", {"rows": [
        {"customer": "Alice Martin", "region": "north", "price": 14.5, "qty": 3},
        {"customer": "Bob Stone", "region": "west", "price": 22, "qty": 1}]})]
    assert "the table now has 26 rows" in html
    tail = text_of(cell(nb, "sales.tail(3)"))
    assert "Alice Martin" in tail and "Bob Stone" in tail and "14.5" in tail
    history = text_of(cell(nb, "%mistral history"))
    assert history.count(" tool ") >= 4
    thought = cell(nb, "%%mistral --think high")
    html, meta = answer(thought)
    assert meta["params"]["reasoning_effort"] == "high" and meta["thinking_tokens"] > 50
    assert html.index('<details class="mistral-reasoning"') < html.index("Offline answer")
    assert f"({meta['thinking_tokens']} thinking)" in text_of(thought)
    models = text_of(cell(nb, "models = %mistral models"))
    assert "magistral-medium-latest" in models and "open-mistral-nemo" not in models
    usage = cell(nb, "%mistral usage").outputs[-1]["data"]["text/plain"]
    assert usage.count("mistral-small-latest") == 7  # two steps, two steps, two steps, one answer


CHECKED = {"quickstart.ipynb", "extraction.ipynb", "teaching.ipynb", "semantic.ipynb", "tools.ipynb",
           "documents.ipynb", "audio.ipynb", "operators.ipynb", "research.ipynb"}


def test_every_notebook_is_checked():
    present = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert present <= CHECKED, f"add checks for {present - CHECKED}"


def widget_states(nb) -> dict:
    return nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


def widget_of(nb, c) -> dict:
    """The saved state of the widget a cell displayed."""
    views = [o for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, f"no widget in {c.source!r}"
    model_id = views[-1]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    return widget_states(nb)[model_id]


def descendants(nb, model: dict) -> list[dict]:
    """A widget's saved state and all the widgets inside it."""
    states = widget_states(nb)
    out, todo = [], [model]
    while todo:
        state = todo.pop()
        out.append(state)
        for child in state["state"].get("children", []):
            todo.append(states[child.removeprefix("IPY_MODEL_")])
    return out


def test_teaching(tmp_path, monkeypatch):
    nb = execute("teaching.ipynb", tmp_path, monkeypatch)
    first, meta = answer(cell(nb, "%%mistral -c class -s"))
    assert "Offline answer" in first and meta["chat"] == "class"
    follow, _ = answer(cell(nb, "%%mistral -c class\nCan you"))
    assert "earlier question" in follow and "overfitting" in follow
    assert text_of(cell(nb, "%mistral history -c class")).count("assistant") >= 2
    table = text_of(cell(nb, "scientists.sort_values"))
    assert "Ada Lovelace" in table and "1843" in table and "Grace Hopper" in table

    meter = descendants(nb, widget_of(nb, cell(nb, "%config MistralMagics.budget_usd")))
    names = {s["model_name"] for s in meter}
    assert {"FloatProgressModel", "HTMLModel"} <= names
    bar = next(s for s in meter if s["model_name"] == "FloatProgressModel")["state"]
    assert 0 < bar["value"] <= bar["max"]  # the calls made after it was shown moved the bar
    html = " ".join(s["state"].get("value", "") for s in meter if s["model_name"] == "HTMLModel")
    assert "mistral-small-latest" in html and "$" in html

    panel = descendants(nb, widget_of(nb, cell(nb, "%mistral panel")))
    dropdown = next(s for s in panel if s["model_name"] == "DropdownModel")["state"]
    assert any("mistral-small" in label and "$" in label for label in dropdown["_options_labels"])
    assert any(s["model_name"] == "FloatSliderModel" for s in panel)

    chat = descendants(nb, widget_of(nb, cell(nb, "%mistral chat class")))
    buttons = {s["state"].get("description") for s in chat if s["model_name"] == "ButtonModel"}
    assert {"Send", "Stop"} <= buttons
    assert any(s["model_name"] == "TextareaModel" for s in chat)
    import json

    assert "overfitting" in json.dumps(chat)  # the panel shows the turns made by the cells
    assert len(text_of(cell(nb, "%mistral usage")).splitlines()) >= 4
    exported = text_of(cell(nb, "%mistral cache export"))
    assert "Exported 3 answers to `lesson-answers.sqlite`" in exported
    assert "cache = 'replay'" in exported and (tmp_path / "lesson-answers.sqlite").exists()


def test_documents(tmp_path, monkeypatch):
    import base64

    nb = execute("documents.ipynb", tmp_path, monkeypatch)
    asked = cell(nb, "%%mistral --image fig")
    thumbs = [o for o in asked.outputs if "image/png" in o.get("data", {})]
    assert len(thumbs) == 1 and base64.b64decode(thumbs[0]["data"]["image/png"])[:4] == b"\x89PNG"
    said, meta = answer(asked)
    assert "1 image received" in said and "PNG" in said
    assert "fig: " in text_of(asked) and "tokens" in text_of(asked)
    assert "data:image" not in str(asked.outputs)  # thumbnails only: the picture is not kept twice
    follow, _ = answer(cell(nb, "%%mistral\nWhat would"))
    assert "1 earlier image" in follow
    page = text_of(next(c for c in nb.cells if c.source == "%mistral ocr invoices/INV-1001.pdf"))
    assert "Customer: Ada Lovelace" in page and "1 page" in page and " in / " not in page
    tables = text_of(cell(nb, "%mistral ocr invoices/INV-1001.pdf --tables"))
    assert "Widget" in tables and "float64" in tables and "1 table in INV-1001.pdf" in tables
    table = text_of(cell(nb, "table = invoices.mistral.ocr"))
    for name, total in [("Ada Lovelace", "40.0"), ("Grace Hopper", "52.0"), ("Katherine Johnson", "76.0")]:
        assert name in table and total in table
    assert "INV-1003" in table and "4 pages" in table
    dtypes = text_of(cell(nb, "table.dtypes"))
    assert "datetime64" in dtypes and "float64" in dtypes
    filed, _ = answer(cell(nb, "%%mistral --new --file"))
    assert "Document read: INV-1002.pdf" in filed and "Grace Hopper" in filed
    usage = text_of(cell(nb, "%mistral usage"))
    assert "mistral-ocr-latest" in usage and "pages" in usage


def test_audio(tmp_path, monkeypatch):
    nb = execute("audio.ipynb", tmp_path, monkeypatch)
    one = text_of(cell(nb, "%config MistralMagics.budget_usd = 0.05"))
    assert "Northwind support, how can I help?" in one and "speaker_2" in one
    assert "voxtral-mini-latest · 0.23 min of audio" in one  # 14 s
    assert "My name is Ada Lovelace" in text_of(cell(nb, 'segments.attrs["text"]'))
    heard = text_of(cell(nb, "recordings = pd.DataFrame"))
    assert "Transcribing 3 rows row by row with voxtral-mini-latest: 0.69 min of audio" in heard
    assert heard.count("'end': 3.0") >= 3 and "_error" in heard  # each call's first segment
    facts = text_of(cell(nb, "facts = heard.mistral.extract"))
    for name, order in [("Ada Lovelace", "4411"), ("Grace Hopper", "5120"), ("Alan Turing", "6002")]:
        assert name in facts and order in facts
    assert "Int64" in text_of(cell(nb, "facts.dtypes"))
    asked = cell(nb, "%%mistral --audio calls/call-2.wav")
    said, meta = answer(asked)
    assert "WAV recording of 11.0 seconds" in said and "wrong address" in said
    assert meta["usage"]["audio_seconds"] == 11
    assert "<audio" in text_of(asked) and "characters spoken" in text_of(asked)
    spoken = text_of(cell(nb, "%mistral speak"))
    assert "<audio" in spoken and "41 characters spoken" in spoken
    assert "gb_jane_neutral" in text_of(cell(nb, "%mistral voices"))
    usage = text_of(cell(nb, "%mistral usage"))
    assert "voxtral-mini-tts-latest" in usage and "audio_minutes" in usage


def test_operators(tmp_path, monkeypatch):
    nb = execute("operators.ipynb", tmp_path, monkeypatch)
    joined = text_of(cell(nb, "matches ="))
    assert "Joining 8 × 12 rows with mistral-small-latest, blocking keeps each left row's 3 " \
           "nearest right rows" in joined and "24 judgements of 96 pairs" in joined
    assert "Joined: 24 pairs judged, 7 match" in joined
    table = cell(nb, "matches =").outputs[-1]["data"]["text/plain"]
    assert "L-201   SKU-1001" in table and "L-208   SKU-1012" in table and "L-207" not in table
    preview = text_of(cell(nb, "products ="))
    assert "Preview: 4 of 24 rows, $" in preview and "The other 20 rows: about $" in preview
    assert preview.rstrip().endswith("(20, 4)")
    assert "4 rows already done, from the cache" in text_of(cell(nb, 'tickets["kind"]'))
    summary = cell(nb, "summary =")
    assert "Aggregating 24 rows in 3 groups by 'product'" in text_of(summary)
    lines = summary.outputs[-1]["data"]["text/plain"].splitlines()[2:]
    assert [line.split()[:3] for line in lines] == [["Forerunner", "8", "1"], ["Hue", "kit", "8"],
                                                    ["Vertuo", "8", "1"]]
    assert "Offline answer" in text_of(cell(nb, "print(summary"))
    urgent = cell(nb, "urgent =")
    assert "at most 39 comparisons (23 to find the best, then at most 4 for each next)" in text_of(urgent)
    assert "(every pair would be 276)" in text_of(urgent)
    ranked = urgent.outputs[-1]["data"]["text/plain"].splitlines()[2:]
    assert [line.split()[-1] for line in ranked] == ["1", "2", "3", "4", "5"]
    assert ranked[0].startswith("T-322") and "data lost" in ranked[0]
    dry = text_of(cell(nb, "%%mistral --dry-run"))
    assert "(A summary of a DataFrame of 24 rows × 4 columns, not its rows" in dry
    assert "DataFrames: tickets (summary of 24 × 4)" in dry
    columns = cell(nb, "%mistral sent").outputs[-1]["data"]["text/plain"]
    assert "join left  title" in columns and "email" not in columns
    usage = text_of(cell(nb, "usage = %mistral usage"))
    for kind in ("agg", "classify", "embed", "join", "topk"):
        assert f"\n{kind} " in usage


def test_research(tmp_path, monkeypatch):
    import base64
    import re

    nb = execute("research.ipynb", tmp_path, monkeypatch)
    searched, meta = answer(cell(nb, "%%mistral --tools web_search -o found"))
    links = re.findall(r'<a href="(https://search\.offline\.invalid/[^"]+)"', searched)
    assert len(links) == 6 and "⁽¹⁾" in searched and searched.count("<details") == 2
    assert meta["tool_uses"] == {"web_search": 2} and len(meta["sources"]) == 6
    shown = text_of(cell(nb, "%%mistral --tools web_search -o found"))
    assert "2 searches" in shown and "+ tools: unknown" in shown
    assert "search.offline.invalid" in text_of(cell(nb, "found.sources"))
    follow, _ = answer(cell(nb, "%%mistral --tools web_search\nWho"))
    assert "Sources" in follow
    added = text_of(cell(nb, "%mistral library add course"))
    assert all(f"week{n}.pdf" in added for n in (1, 2, 3)) and "done" in added
    cited, meta = answer(cell(nb, "%%mistral --library course"))
    assert "week2.pdf" in cited and "early stopping" in cited.lower() and "⁽¹⁾" in cited
    assert meta["tool_uses"] == {"document_library": 1}
    assert "week2.pdf" in text_of(cell(nb, "cited.sources"))
    assert "tutor" in text_of(cell(nb, "%mistral agents")) and "web_search" in text_of(cell(nb, "%mistral agents"))
    _, meta = answer(cell(nb, "%%mistral --agent tutor"))
    assert meta["agent"]["name"] == "tutor" and meta["agent"]["version"] == 0
    drawn = cell(nb, "%%mistral --tools image_generation")
    pictures = [o for o in drawn.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 1 and base64.b64decode(pictures[0]["data"]["image/png"])[:4] == b"\x89PNG"
    assert "(512, 320)" in text_of(cell(nb, "picture.size"))
    ran, _ = answer(cell(nb, "%%mistral -m mistral-medium-latest --tools code_interpreter"))
    assert "not in this kernel" in ran and "Not run" in ran
    usage = text_of(cell(nb, "%mistral usage"))
    assert "web_search" in usage and "image_generation" in usage and "library_document" in usage
