"""`df.mistral.topk`: a knockout tournament of pairwise judgements through the row engine;
the k best in order, calls that grow as n + k·log n (counted), budget, interrupts, resume."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_interrupts import sent_to, signal_when

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError, Interrupted
from mistral_magic.offline.judge import _rank
from mistral_magic.rows.topk import bound

CHAT = "/v1/chat/completions"
WORDS = ["payment", "failed", "down", "outage", "lost", "data", "refund", "charged", "login",
         "slow", "avatar", "theme", "export", "invoice", "password", "crash", "error", "email"]


def tickets(n: int, tag: str = "") -> pd.DataFrame:
    texts = [f"{tag}ticket {i}: {WORDS[(i * 7) % len(WORDS)]} {WORDS[(i * 5 + 3) % len(WORDS)]} "
             f"{WORDS[(i * 11 + 1) % len(WORDS)]}" for i in range(n)]
    return pd.DataFrame({"text": texts}, index=[f"T{i:03d}" for i in range(n)])


def expected(df: pd.DataFrame, criterion: str, k: int) -> list[str]:
    """The order the offline judge's comparisons imply: its score of each row, highest first."""
    question = f"Which record fits this better: {criterion}"
    ranked = sorted(df.index, key=lambda label: _rank(question, df.loc[label, "text"]), reverse=True)
    return ranked[:k]


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def test_the_k_best_rows_best_first(ip, session, magic_server):
    df = tickets(20)
    criterion = "most urgent: payment failed, outage, data lost"
    chat = magic_server.request_count(CHAT)
    out = df.mistral.topk(criterion, k=5, column="text", progress=False)
    assert list(out.index) == expected(df, criterion, 5)
    assert out["rank"].tolist() == [1, 2, 3, 4, 5] and out["_error"].isna().all()
    assert list(out.columns) == ["text", "rank", "_error"]
    calls = magic_server.request_count(CHAT) - chat
    assert 19 <= calls <= bound(20, 5) == 19 + 4 * 4
    assert [r.kind for r in session.ledger.records] == ["topk"] * calls
    plan = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m][0]
    assert plan.startswith("Top 5 of 20 rows by 'most urgent: payment failed, outage, data lost' "
                           "with mistral-small-latest, by a knockout tournament")
    assert "at most 35 comparisons (19 to find the best, then at most 4 for each next)" in plan
    assert "(every pair would be 190)" in plan


def test_calls_grow_as_n_log_k_not_n_squared(ip, magic_server):
    counts = {}
    for n in (16, 32, 64, 128):
        df = tickets(n, tag=f"n{n} ")  # new texts: no comparison comes from the cache
        chat = magic_server.request_count(CHAT)
        out = df.mistral.topk("most urgent: payment failed, outage", k=4, column="text",
                              progress=False, concurrency=16)
        counts[n] = magic_server.request_count(CHAT) - chat
        assert list(out.index) == expected(df, "most urgent: payment failed, outage", 4)
        assert n - 1 <= counts[n] <= bound(n, 4) <= n * (1 + math.log2(4))
        assert counts[n] < n * (n - 1) / 2 / 4
    for n in (32, 64, 128):
        assert counts[n] / counts[n // 2] < 2.2  # doubling the rows about doubles the calls


def test_a_second_run_and_a_restart_replay_the_comparisons(ip, magic_server):
    df = tickets(12)
    first = df.mistral.topk("data lost", k=3, column="text", progress=False)
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    chat = magic_server.request_count(CHAT)
    again = df.mistral.topk("data lost", k=3, column="text", progress=False)
    assert magic_server.request_count(CHAT) == chat
    pd.testing.assert_frame_equal(again, first)
    more = df.mistral.topk("data lost", k=5, column="text", progress=False)
    assert list(more.index[:3]) == list(first.index)  # the bracket played before is reused
    assert magic_server.request_count(CHAT) - chat <= 2 * (math.ceil(math.log2(12)) - 1)


def test_a_first_run_the_budget_cannot_finish_is_refused_before_any_call(ip, session, magic_server):
    session.settings.budget_usd = 1e-5
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match=r"comparing 40 rows \(39 comparisons at least\)"):
        tickets(40).mistral.topk("urgent", k=3, column="text", progress=False)
    assert magic_server.request_count() == before


def test_an_interrupted_topk_ends_and_resumes(ip, session, magic_server):
    df = tickets(16)
    magic_server.set_faults({"latency_ms": 20_000})
    signal_when(sent_to(magic_server, CHAT))
    with pytest.raises(Interrupted, match=r"0 of the 3 best rows found; run the same call again"):
        df.mistral.topk("refund charged", k=3, column="text", progress=False)
    assert session.budget.reserved == 0
    assert session.ledger.records[-1].status == "interrupted"
    magic_server.set_faults(None)
    out = df.mistral.topk("refund charged", k=3, column="text", progress=False)
    assert list(out.index) == expected(df, "refund charged", 3)


def test_a_failed_comparison_goes_to_the_earlier_row_and_says_so(ip, session, magic_server):
    session.settings.max_retries = 0
    magic_server.set_faults({"error_status": 503, "error_on_nth": [1]})
    out = tickets(8).mistral.topk("urgent outage", k=8, column="text", progress=False,
                                  concurrency=1)
    assert len(out) == 8 and out["rank"].tolist() == list(range(1, 9))
    failed = out["_error"].dropna()
    assert len(failed) == 2 and failed.str.contains("went to the earlier row").all()
    assert failed.str.contains("503").all()


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be a whole number of at least 1"),
    ({"batch": True}, "batch=True is not available for topk"),
    ({"column": "title"}, "neither a column nor a template"),
])
def test_bad_arguments_are_one_line_and_send_nothing(ip, magic_server, kwargs, message):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match=message):
        tickets(5).mistral.topk("urgent", **{"column": "text", **kwargs})
    assert magic_server.request_count() == before
