"""`df.mistral.agg`: one answer per group through the row engine, in parts and then combined
when a group does not fit one request; its plan, budget, interrupts, resume and errors."""

from __future__ import annotations

import pandas as pd
import pytest
from test_interrupts import sent_to, signal_when

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError, Interrupted

CHAT = "/v1/chat/completions"
SUMMARISE = "Summarise the complaints"


def complaints(n: int = 30) -> pd.DataFrame:
    products = ["kettle", "toaster", "lamp"]
    return pd.DataFrame({
        "product": [products[i % 3] for i in range(n)],
        "text": [f"The {products[i % 3]} stopped working after {i % 7 + 1} weeks and support "
                 f"never answered my email number {i}" for i in range(n)],
    }, index=[f"t{i}" for i in range(n)])


def notes(ip) -> list[str]:
    return [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def test_one_answer_per_group_indexed_by_the_group(ip, session, magic_server):
    chat = magic_server.request_count(CHAT)
    out = complaints().mistral.agg(SUMMARISE, by="product", progress=False)
    assert magic_server.request_count(CHAT) - chat == 3
    assert out.index.name == "product" and list(out.index) == ["kettle", "lamp", "toaster"]
    assert list(out.columns) == ["answer", "rows", "calls", "_error"]
    assert out["rows"].tolist() == [10, 10, 10] and out["calls"].tolist() == [1, 1, 1]
    assert out["_error"].isna().all() and out["answer"].str.contains("Offline answer").all()
    assert notes(ip)[0].startswith("Aggregating 30 rows in 3 groups by 'product' with "
                                   "mistral-small-latest: 3 calls for the rows")
    assert [r.kind for r in session.ledger.records] == ["agg"] * 3
    whole = complaints().mistral.agg(SUMMARISE, column="text", progress=False)
    assert list(whole.index) == ["all"] and whole["rows"].iloc[0] == 30
    shops = complaints().assign(shop=["online" if i % 2 else "store" for i in range(30)])
    two = shops.mistral.agg(SUMMARISE, by=["product", "shop"], column="{shop}: {text}",
                            progress=False)
    assert two.index.names == ["product", "shop"] and len(two) == 6
    assert two.loc[("kettle", "store"), "rows"] == 5


def test_a_group_past_one_request_is_answered_in_parts_then_combined(ip, session, magic_server):
    chat = magic_server.request_count(CHAT)
    out = complaints().mistral.agg(SUMMARISE, by="product", chunk_tokens=150, progress=False)
    plan = notes(ip)[0]
    assert "6 calls for the rows (a group past 150 prompt tokens goes in parts), then at most 3 " \
           "to combine the parts" in plan
    assert magic_server.request_count(CHAT) - chat == 9
    assert out["calls"].tolist() == [3, 3, 3] and out["_error"].isna().all()
    # The final answers answer the combining request, which quotes the parts' answers.
    assert out["answer"].str.contains("Answers to this instruction for 2 parts").all()
    # The same call in a new kernel: every level comes from the cache, nothing is sent.
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    chat = magic_server.request_count(CHAT)
    again = complaints().mistral.agg(SUMMARISE, by="product", chunk_tokens=150, progress=False)
    assert magic_server.request_count(CHAT) == chat
    pd.testing.assert_frame_equal(again, out)


def test_missing_texts_are_left_out_and_an_empty_group_says_so(ip, session):
    df = complaints(6)
    df.loc[["t0", "t3"], "text"] = None
    out = df.mistral.agg(SUMMARISE, by="product", progress=False)
    assert "(2 rows with missing text left out)" in notes(ip)[0]
    assert out.loc["kettle", "rows"] == 0 and out.loc["kettle", "answer"] is None
    assert out.loc["kettle", "_error"] == "no row of this group has text to send"
    assert out.loc["lamp", "rows"] == 2 and out.loc["lamp", "_error"] is None


def test_a_failed_part_is_its_groups_error(ip, session, magic_server):
    session.settings.max_retries = 0
    magic_server.set_faults({"error_status": 503, "error_on_nth": [1]})
    out = complaints().mistral.agg(SUMMARISE, by="product", progress=False, concurrency=1)
    assert out["_error"].notna().sum() == 1 and out["answer"].isna().sum() == 1
    assert "a part of this group failed" in out["_error"].dropna().iloc[0]
    assert "503" in out["_error"].dropna().iloc[0]


def test_an_agg_the_budget_cannot_finish_sends_nothing(ip, session, magic_server):
    session.settings.budget_usd = 1e-6
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="aggregating 3 rows needs at least"):
        complaints().mistral.agg(SUMMARISE, by="product", progress=False)
    assert magic_server.request_count() == before


def test_an_interrupted_agg_keeps_the_groups_done_and_resumes(ip, session, magic_server):
    complaints().mistral.agg(SUMMARISE, by="product", chunk_tokens=150, progress=False,
                             concurrency=1)  # level 1 and 2 stored
    magic_server.set_faults({"latency_ms": 20_000})
    signal_when(sent_to(magic_server, CHAT))
    with pytest.raises(Interrupted, match="0 of 3 groups answered") as stopped:
        complaints().mistral.agg("Summarise what works", by="product", progress=False)
    assert stopped.value.partial["answer"].isna().all() and session.budget.reserved == 0
    magic_server.set_faults(None)
    chat = magic_server.request_count(CHAT)
    out = complaints().mistral.agg("Summarise what works", by="product", progress=False)
    assert magic_server.request_count(CHAT) - chat == 3 and out["_error"].isna().all()


def test_each_level_goes_through_the_batch_api(ip, session):
    out = complaints().mistral.agg(SUMMARISE, by="product", chunk_tokens=150, batch=True,
                                   progress=False)
    assert out["_error"].isna().all() and out["calls"].tolist() == [3, 3, 3]
    assert sum(r.kind == "batch" for r in session.ledger.records) == 9


@pytest.mark.parametrize("kwargs, message", [
    ({"by": "colour"}, "by='colour': no column 'colour'"),
    ({"by": "product", "column": "{colour}"}, "neither a column nor a template"),
    ({"by": "product", "chunk_tokens": 10}, "chunk_tokens must be a whole number of at least 64"),
])
def test_bad_arguments_are_one_line_and_send_nothing(ip, magic_server, kwargs, message):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match=message):
        complaints().mistral.agg(SUMMARISE, **kwargs)
    assert magic_server.request_count() == before
    with pytest.raises(ConfigError, match="say which text each row gives"):
        complaints().assign(shop="online").mistral.agg(SUMMARISE, by="product")
