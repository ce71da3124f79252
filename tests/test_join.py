"""`df.mistral.join`: blocking by embeddings, one yes/no judgement per pair through the row
engine, a merged frame aligned to both inputs; its plan, budget, interrupts and resume."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run
from test_interrupts import sent_to, signal_when

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError, Interrupted

CHAT, EMBED = "/v1/chat/completions", "/v1/embeddings"
SAME = "Does {left.title} describe the same product as {right.name}?"


def offers() -> pd.DataFrame:
    return pd.DataFrame({"title": ["Apple iPhone 13 128GB", "Kindle Paperwhite 8GB",
                                   "Dyson V11 cordless vacuum", "Garden hose 20 m"],
                         "price": [689.0, 99.0, 449.0, 25.0]},
                        index=pd.Index(["o1", "o2", "o3", "o4"], name="offer"))


def catalogue() -> pd.DataFrame:
    return pd.DataFrame({"name": ["iPhone 13 (128 GB) by Apple", "Samsung Galaxy S22 128 GB",
                                  "Amazon Kindle Paperwhite (8 GB)", "Kobo Clara HD e-reader",
                                  "Dyson V11 Absolute cordless stick vacuum cleaner",
                                  "Bose QuietComfort 45 headphones"],
                         "price": [799, 749, 139, 119, 599, 329]},
                        index=pd.Index([f"p{i}" for i in range(1, 7)], name="sku"))


def notes(ip) -> list[str]:
    return [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def test_blocked_join_is_a_merged_frame_aligned_to_both_sides(ip, session, magic_server):
    chat, embed = magic_server.request_count(CHAT), magic_server.request_count(EMBED)
    out = offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert magic_server.request_count(CHAT) - chat == 8  # 4 left rows x their 2 nearest
    assert magic_server.request_count(EMBED) - embed == 1  # the 10 texts in one request
    plan = next(n for n in notes(ip) if n.startswith("Joining"))
    assert plan.startswith("Joining 4 × 6 rows with mistral-small-latest, blocking keeps each "
                           "left row's 2 nearest right rows") and "8 judgements of 24 pairs" in plan
    assert list(out.index) == [("o1", "p1"), ("o2", "p3"), ("o3", "p5")]
    assert out.index.names == ["offer", "sku"]
    assert list(out.columns) == ["title", "price_left", "name", "price_right", "match", "score",
                                 "_error"]
    assert out["match"].dtype == "boolean" and out["match"].all() and out["_error"].isna().all()
    assert out.loc[("o2", "p3"), "name"] == "Amazon Kindle Paperwhite (8 GB)"
    assert out.loc[("o3", "p5"), "price_left"] == 449.0 and out.loc[("o3", "p5"), "price_right"] == 599
    assert ((out["score"] > 0.3) & (out["score"] <= 1)).all()
    ledger = session.ledger.to_frame()
    assert (ledger["kind"] == "join").sum() == 8 and (ledger["kind"] == "embed").sum() == 1
    assert notes(ip)[-1].startswith("Joined: 8 pairs judged, 3 match; 9 calls, $")


def test_every_pair_without_blocking_and_all_pairs_kept(ip, session, magic_server):
    embed = magic_server.request_count(EMBED)
    out = offers().mistral.join(catalogue(), SAME, block=None, all_pairs=True, progress=False)
    assert magic_server.request_count(EMBED) == embed  # nothing embedded
    assert len(out) == 24 and out["score"].isna().all()
    assert out["match"].sum() == 3 and list(out.index[:6]) == [("o1", f"p{i}") for i in range(1, 7)]
    assert "every pair: 24 judgements, one call each" in next(
        n for n in notes(ip) if n.startswith("Joining"))


def test_a_join_the_budget_cannot_finish_judges_nothing(ip, session, magic_server):
    session.settings.budget_usd = 1e-5
    chat = magic_server.request_count(CHAT)
    with pytest.raises(BudgetExceeded, match="judging 24 rows needs at least"):
        offers().mistral.join(catalogue(), SAME, block=None, progress=False)
    assert magic_server.request_count(CHAT) == chat and session.budget.reserved == 0


def test_failed_pairs_say_why_and_a_rerun_sends_only_those(ip, session, magic_server):
    magic_server.set_faults({"error_status": 503, "error_on_nth": [2]})
    session.settings.max_retries = 0
    out = offers().mistral.join(catalogue(), SAME, block=2, progress=False, concurrency=1)
    failed = out[out["_error"].notna()]
    assert len(failed) == 1 and failed["match"].isna().all() and "503" in failed["_error"].iloc[0]
    magic_server.set_faults(None)
    chat = magic_server.request_count(CHAT)
    again = offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert magic_server.request_count(CHAT) - chat == 1 and again["_error"].isna().all()


def test_an_interrupted_join_keeps_the_matches_and_resumes(ip, session, magic_server):
    offers().mistral.join(catalogue(), SAME, block=1, progress=False)  # o1..o4 with their best
    magic_server.set_faults({"latency_ms": 20_000})
    signal_when(sent_to(magic_server, CHAT))
    with pytest.raises(Interrupted, match=r"4 of 8 pairs judged; run the same join again") as stopped:
        offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert list(stopped.value.partial.index) == [("o1", "p1"), ("o2", "p3"), ("o3", "p5")]
    assert session.budget.reserved == 0
    magic_server.set_faults(None)
    chat = magic_server.request_count(CHAT)
    out = offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert magic_server.request_count(CHAT) - chat == 4 and len(out) == 3


def test_a_join_resumes_after_a_restart_and_goes_through_the_batch_api(ip, magic_server):
    first = offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    chat, embed = magic_server.request_count(CHAT), magic_server.request_count(EMBED)
    again = offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert magic_server.request_count(CHAT) == chat and magic_server.request_count(EMBED) == embed
    pd.testing.assert_frame_equal(again, first)
    batched = offers().mistral.join(catalogue(), "Is {left.title} the same as {right.name}?",
                                    block=2, batch=True, progress=False)
    assert list(batched.index) == list(first.index)
    assert (mistral_magic.session().ledger.to_frame()["kind"] == "batch").sum() == 8


def test_what_a_join_sent_names_the_columns_of_both_sides(ip):
    offers().mistral.join(catalogue(), SAME, block=1, progress=False)
    by_column = ip.run_line_magic("mistral", "sent --columns")
    rows = {(r["frame"], r["column"]): r["rows"] for r in by_column.to_dict("records")}
    # The blocking embedded every row's named column; the judgements sent 4 pairs.
    assert rows == {("join left", "title"): 4, ("join right", "name"): 6}
    pairs = ip.run_line_magic("mistral", "sent")
    judged = pairs[pairs["kind"] == "join"]
    assert len(judged) == 4 and all(len(r) == 2 for r in judged["rows"])
    assert "price" not in set(by_column["column"])


def test_preview_judges_a_few_left_rows_and_the_join_reuses_them(ip, magic_server):
    shown = offers().mistral.join(catalogue(), SAME, block=2, preview=2, progress=False)
    assert set(shown.index.get_level_values(0)) <= {"o1", "o4"}
    figures = shown.attrs["mistral_preview"]
    assert figures["rows"] == 2 and figures["left"] == 2 and figures["estimated_calls"] == 4
    assert notes(ip)[-1].startswith("Preview: the pairs of 2 of 4 left rows")
    chat = magic_server.request_count(CHAT)
    offers().mistral.join(catalogue(), SAME, block=2, progress=False)
    assert magic_server.request_count(CHAT) - chat == 4


@pytest.mark.parametrize("condition, block, message", [
    ("Is {left.titel} {right.name}?", 3, "the left frame has no column 'titel'"),
    ("Is {left.title} a good buy?", 3, "names no column of the right frame"),
    ("Is {left.title} like {right.name} in {year}?", 3, "may name only {left.column}"),
    (SAME, 0, "block must be a number of right rows per left row"),
])
def test_bad_joins_are_one_line_and_send_nothing(ip, magic_server, condition, block, message):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        offers().mistral.join(catalogue(), condition, block=block)
    assert magic_server.request_count() == before


def test_a_bad_join_in_a_cell_is_one_line(ip):
    ip.user_ns.update(offers=offers(), catalogue=catalogue())
    result = run(ip, "offers.mistral.join(catalogue, 'Is {left.x} {right.name}?')", ok=False)
    assert isinstance(result.error_in_exec, ConfigError)


def test_an_unknown_model_is_refused_before_anything_is_embedded(ip, magic_server):
    from mistral_magic.errors import MistralMagicError

    before = magic_server.request_count()
    with pytest.raises(MistralMagicError, match="mistral-smal-latest"):
        offers().mistral.join(catalogue(), SAME, model="mistral-smal-latest")
    assert magic_server.request_count() == before
