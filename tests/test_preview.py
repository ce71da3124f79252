"""`preview=n` on the row methods: n rows run and shown with their measured cost, the whole
frame estimated, and the same call without it reuses those rows at $0."""

from __future__ import annotations

import pandas as pd
import pytest

import mistral_magic
from mistral_magic.errors import ConfigError

CHAT = "/v1/chat/completions"


def reviews(n: int) -> pd.DataFrame:
    products = ["kettle", "toaster", "blender", "lamp"]
    return pd.DataFrame({"review": [
        f"The {products[i % 4]} number {i} costs {10 + i} euros and works well, four stars"
        for i in range(n)]}, index=[f"r{i}" for i in range(n)])


def notes(ip) -> list[str]:
    return [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def test_preview_runs_spread_rows_and_the_full_call_reuses_them(ip, session, magic_server):
    df = reviews(40)
    before = magic_server.request_count(CHAT)
    shown = df.mistral.extract("Extract: {review}", schema="product, price float, stars int",
                               preview=5, progress=False)
    assert magic_server.request_count(CHAT) - before == 5
    assert list(shown.index) == ["r0", "r10", "r20", "r29", "r39"]  # spread over the frame
    assert shown["_error"].isna().all() and list(shown.columns[:3]) == ["product", "price", "stars"]
    figures = shown.attrs["mistral_preview"]
    ledger = session.ledger.records
    assert figures["calls"] == 5 == len(ledger)
    assert figures["cost"] == pytest.approx(sum(r.cost for r in ledger))
    assert figures["rows"] == 5 and figures["of"] == 40 and figures["left"] == 35
    said = notes(ip)[-1]
    assert said.startswith("Preview: 5 of 40 rows, ") and "The other 35 rows: about $" in said
    assert "without preview= sends only those" in said
    # The same call without preview: only the 35 others are sent; the 5 come from the cache.
    spent = session.ledger.spent
    out = df.mistral.extract("Extract: {review}", schema="product, price float, stars int",
                             progress=False)
    assert magic_server.request_count(CHAT) - before == 40
    assert "5 rows already done, from the cache" in notes(ip)[-1]
    assert out.loc[shown.index, "product"].tolist() == shown["product"].tolist()
    actual = session.ledger.spent - spent
    # The estimate came from 5 measured rows and 35 prompts counted: close to what they cost.
    assert figures["estimated_cost"] == pytest.approx(actual, rel=0.1)


def test_preview_of_a_label_and_of_packed_rows(ip, session, magic_server):
    df = reviews(30)
    labels = df.mistral.classify("review", labels=["kettle", "toaster", "blender", "lamp"],
                                 preview=3, progress=False)
    assert len(labels) == 3 and labels.attrs["mistral_preview"]["left"] == 27
    assert labels.attrs["_error"] == {}
    before = magic_server.request_count("/v1/embeddings")
    vectors = df.mistral.embed("review", preview=4, progress=False)
    assert magic_server.request_count("/v1/embeddings") - before == 1  # four rows, one request
    figures = vectors.attrs["mistral_preview"]
    assert len(vectors) == 4 and figures["estimated_calls"] == 1  # 26 rows fit one request
    again = df.mistral.embed("review", progress=False)
    assert magic_server.request_count("/v1/embeddings") - before == 2
    assert (again.loc[vectors.index, "review_embedding"].map(len) == 1024).all()


def test_preview_with_batch_prices_the_rest_at_half_and_the_batch_reuses_the_rows(ip, session):
    df = reviews(12)
    shown = df.mistral.extract("Extract: {review}", schema="product, stars int", preview=2,
                               batch=True, progress=False)
    figures = shown.attrs["mistral_preview"]
    assert "through the Batch API, at half price" in notes(ip)[-1]
    assert figures["estimated_seconds"] is None and figures["left"] == 10
    df.mistral.extract("Extract: {review}", schema="product, stars int", batch=True,
                       progress=False)
    lines = [r for r in session.ledger.records if r.kind == "batch"]
    assert len(lines) == 10  # the preview's two rows were not sent again


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "5"])
def test_a_bad_preview_is_one_line_and_sends_nothing(ip, session, magic_server, value):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match="preview must be a number of rows"):
        reviews(5).mistral.extract("Extract: {review}", preview=value, progress=False)
    assert magic_server.request_count() == before
