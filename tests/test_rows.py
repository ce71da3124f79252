"""The row engine: a toy row-wise method takes a few lines and gets the rest for free.

Two toys defined here, as a later `df.mistral.*` method would be written: a word count
per row through the chat endpoint, and a vector size per row through the embeddings
endpoint, four rows to a call. Each gets concurrency, the budget, resume, progress,
missing rows and failed rows from the engine, and each of those is checked.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

import mistral_magic
from mistral_magic.calls.estimates import Estimate
from mistral_magic.core import chat_request
from mistral_magic.errors import BudgetExceeded, ConfigError
from mistral_magic.money.tokens import count_messages, count_text
from mistral_magic.money.usage import format_cost
from mistral_magic.rows.engine import RowEngine
from mistral_magic.rows.job import Reply, RowJob

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
ANSWER = 30  # answer tokens the word count asks for (and the server is told to give)


class WordCount(RowJob):
    """The chat toy: one request per row, the answer's words as the row's column."""

    kind, verb = "words", "Counting"

    def request(self, text):
        return chat_request(self.model, [{"role": "user", "content": f"Count: {text}"}],
                            max_tokens=ANSWER)

    def parse(self, answer):
        return {"words": len(answer.split())}


class VectorSize(RowJob):
    """The packed toy: four rows to an embeddings call; `barrier` calls must be in flight
    together before any goes on (so a run that is not concurrent never finishes)."""

    kind, verb, rows_per_call, batch_endpoint = "embed", "Embedding", 4, None
    barrier = 1

    def request(self, text):
        return {"model": self.model, "inputs": [text]}

    def pack(self, requests):
        return {"model": self.model, "inputs": [r["inputs"][0] for r in requests]}

    def estimate(self, request, batch=False):
        prompt = sum(count_text(text) for text in request["inputs"])
        cost = self.session.prices.cost(self.model, prompt, 0)
        return Estimate(prompt, 0, cost, cost, self.model)

    async def send(self, client, request, retries):
        await self._all_in_flight()
        response = await client.embeddings.create_async(**request, retries=retries)
        return Reply([d.embedding for d in response.data], response.usage.prompt_tokens)

    def parse(self, vector):
        return {"dims": len(vector)}

    async def _all_in_flight(self):
        if not hasattr(self, "in_flight"):  # made on the engine's loop, where sends run
            self.in_flight, self.all_in = 0, asyncio.Event()
        self.in_flight += 1
        if self.in_flight >= self.barrier:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 60)


def texts(n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [" ".join(["word"] * (i + 3)) for i in range(n)]})


def hold(session, text: str) -> float:
    """What one word-count row holds while it runs: its prompt plus the answer it asks for."""
    prompt = count_messages([{"role": "user", "content": f"Count: {text}"}])
    return session.prices.cost("mistral-small-latest", prompt, ANSWER)


@pytest.fixture
def session(ip, magic_server):
    magic_server.set_faults({"answer_tokens": ANSWER})
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    return mistral_magic.session()


def test_word_count_rows_run_concurrently_and_align(session):
    session.settings.budget_usd = 10.0  # large: only so that running rows show their holds
    df = texts(8).set_axis([f"r{i}" for i in range(8)][::-1])
    held = []
    unsubscribe = session.ledger.subscribe(lambda record: held.append(session.budget.reserved))
    out = RowEngine(session, concurrency=4, progress=False).run(WordCount(session, df, "text"))
    unsubscribe()
    assert list(out.index) == list(df.index) and list(out.columns) == ["words", "_error"]
    assert out["_error"].isna().all() and (out["words"] > 0).all()
    # When the first answer is recorded, its hold and the three other rows' are still held:
    # four rows were in flight at once (a hold is taken before a request goes, and given
    # back only after its ledger row is written).
    assert held[0] == pytest.approx(sum(hold(session, t) for t in df["text"][:4]))
    records = session.ledger.records
    assert len(records) == 8 and {r.kind for r in records} == {"words"}


def test_word_count_missing_and_failed_rows_say_why(session, magic_server):
    df = pd.DataFrame({"text": ["one two three", None, "four five", "", "six", "seven eight"]})
    magic_server.set_faults({"answer_tokens": ANSWER, "error_status": 503, "error_on_nth": [2]})
    before = magic_server.request_count(CHAT)
    out = RowEngine(session, concurrency=1, progress=False).run(WordCount(session, df, "text"))
    assert magic_server.request_count(CHAT) - before == 4  # the missing rows are not sent
    errors = out["_error"].tolist()
    assert "column 'text' is missing" in errors[1] and "not sent" in errors[1]
    assert "column 'text' is missing" in errors[3]
    assert "503" in errors[2] and "mistral-small-latest" in errors[2]  # the second request
    assert [errors[i] for i in (0, 4, 5)] == [None] * 3
    assert out["words"].isna().tolist() == [False, True, True, True, False, False]
    ledger = session.ledger.to_frame()
    assert list(ledger["status"]) == ["ok", "error", "ok", "ok"]
    assert ledger["error"][1] == errors[2]  # the ledger and the row say the same one line


def test_word_count_stops_at_the_budget_and_resumes_for_the_rest(session, magic_server):
    df = texts(10)
    # Enough for every row's least answer (16 tokens) but not for all their 30: some
    # rows run, the last ones are refused; none passes the budget.
    least = sum(session.prices.cost("mistral-small-latest", count_messages(
        [{"role": "user", "content": f"Count: {t}"}]), 16) for t in df["text"])
    session.settings.budget_usd = least * 1.05
    job = WordCount(session, df, "text")
    out = RowEngine(session, concurrency=3, progress=False).run(job)
    refused = out["_error"].notna()
    assert 0 < refused.sum() < 10 and out.loc[refused, "_error"].str.contains("budget").all()
    assert out.loc[~refused, "words"].notna().all()
    assert session.ledger.spent <= least * 1.05 and session.budget.reserved == 0
    # Run again with room: only the refused rows are sent and paid for.
    session.settings.budget_usd = 10.0
    paid, sent = len(session.ledger), magic_server.request_count(CHAT)
    again = RowEngine(session, concurrency=3, progress=False).run(WordCount(session, df, "text"))
    assert again["_error"].isna().all()
    assert magic_server.request_count(CHAT) - sent == refused.sum() == len(session.ledger) - paid
    kept = out.loc[~refused, "words"].astype(int).tolist()
    assert again.loc[~refused, "words"].tolist() == kept  # from the cache, as they were


def test_word_count_that_cannot_finish_is_refused_before_sending(session, magic_server):
    session.settings.budget_usd = 1e-5
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="counting 20 rows needs at least"):
        RowEngine(session, progress=False).run(WordCount(session, texts(20), "text"))
    assert magic_server.request_count() == before


def test_word_count_shows_its_plan_and_a_progress_bar(ip, session, magic_server, capsys):
    magic_server.set_faults({"answer_tokens": ANSWER, "error_status": 503, "error_on_nth": [1]})
    df = texts(6)
    RowEngine(session, concurrency=1).run(WordCount(session, df, "text"))
    plan = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m][-1]
    assert plan.startswith("Counting 6 rows row by row with mistral-small-latest")
    bar = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert bar.startswith("words: 100%") and "6/6" in bar
    spent = format_cost(session.ledger.spent)
    assert f"failed 1, spent {spent}" in bar


def test_packed_rows_go_four_to_a_call_concurrently(session, magic_server):
    session.settings.model = "mistral-embed"
    df = texts(12)
    job = VectorSize(session, df, "text")
    job.barrier = 3  # all three calls in flight together, or the run never finishes
    before = magic_server.request_count(EMBED)
    out = RowEngine(session, concurrency=3, progress=False).run(job)
    assert out["_error"].isna().all() and (out["dims"] == 1024).all()
    assert magic_server.request_count(EMBED) - before == 3
    records = session.ledger.records
    assert [r.kind for r in records] == ["embed"] * 3
    assert sum(r.prompt_tokens for r in records) == sum(count_text(t) for t in df["text"])


def test_packed_rows_fail_together_and_resume_alone(session, magic_server):
    session.settings.model = "mistral-embed"
    df = texts(12)
    magic_server.set_faults({"error_status": 503, "error_on_nth": [2]})
    out = RowEngine(session, concurrency=1, progress=False).run(VectorSize(session, df, "text"))
    failed = out["_error"].notna()
    assert failed.tolist() == [False] * 4 + [True] * 4 + [False] * 4  # the second call's rows
    assert out.loc[failed, "_error"].str.contains("503").all()
    magic_server.set_faults(None)
    before = magic_server.request_count(EMBED)
    again = RowEngine(session, progress=False).run(VectorSize(session, df, "text"))
    assert again["_error"].isna().all()
    assert magic_server.request_count(EMBED) - before == 1  # only the failed rows, one call


def test_packed_rows_are_refused_past_the_budget_and_offer_no_batch(session, magic_server):
    session.settings.model = "mistral-embed"
    session.settings.budget_usd = 1e-7
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="embedding 12 rows needs at least"):
        RowEngine(session, progress=False).run(VectorSize(session, texts(12), "text"))
    with pytest.raises(ConfigError, match="batch=True is not available for embed"):
        RowEngine(session, progress=False).run(VectorSize(session, texts(12), "text"), batch=True)
    assert magic_server.request_count() == before
