"""Every model the catalogue lists, by id and by alias, has a price (or says how it is priced)."""

from __future__ import annotations

import pytest
from conftest import run

import mistral_magic
from mistral_magic.budget import Budget
from mistral_magic.estimates import estimate_call
from mistral_magic.prices import load_prices

MESSAGES = [{"role": "user", "content": "How much will this cost?"}]


@pytest.fixture(scope="module")
def cards(offline_server):
    """The model cards `/v1/models` serves, read through the official SDK."""
    from mistralai.client import Mistral

    with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
        return client.models.list().data


def test_catalogue_lists_aliases_as_their_own_cards(cards):
    names = [card.id for card in cards]
    assert len(names) == len(set(names))
    assert {"mistral-small-latest", "ministral-8b-latest", "mistral-moderation-latest",
            "mistral-ocr-latest", "mistral-embed"} <= set(names)


def test_every_listed_id_and_alias_has_a_price(cards):
    prices = load_prices()
    missing = [card.id for card in cards if prices.entry(card.id) is None]
    assert not missing, f"prices.json has no price for {missing}"
    for card in cards:
        # An id and its aliases are one model with one price.
        assert {prices.resolve(alias) for alias in card.aliases} <= {prices.resolve(card.id)}
        entry = prices.entry(card.id)
        caps = card.capabilities
        if caps.ocr:
            # OCR is priced per page, not per token: the table says so.
            assert entry.per_page and entry.per_page > 0, card.id
            assert prices.price(card.id) is None
        elif caps.moderation:
            # Moderation is free, and the table says 0 rather than nothing.
            assert prices.price(card.id) == (0.0, 0.0), card.id
        else:
            price_in, price_out = prices.price(card.id)
            assert price_in > 0, card.id
            if caps.completion_chat:
                assert price_out > 0, card.id
        if entry.context is not None:
            assert entry.context == card.max_context_length, card.id


def test_a_budget_accepts_every_token_priced_model_it_lists(cards):
    prices = load_prices()
    budget = Budget(1.0)
    for card in cards:
        if card.capabilities.ocr:
            continue  # priced per page; a chat estimate does not apply
        estimate = estimate_call(prices, card.id, MESSAGES, max_tokens=100)
        assert estimate.worst_cost is not None, card.id
        # raises BudgetExceeded when no price is known
        budget.reserve(prices, card.id, estimate.prompt_tokens, 100).settle()


@pytest.mark.parametrize("model", ["ministral-8b-latest", "ministral-3b-latest"])
def test_a_cell_on_a_latest_alias_runs_under_a_budget_and_is_priced(ip, model):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.5")
    run(ip, f"%%mistral -m {model} --max-tokens 50\nHello, small model.")
    last = mistral_magic.session().last
    dated = model.replace("-latest", "-2512")
    assert last.status == "ok"
    assert last.cost == pytest.approx(load_prices().cost(dated, last.prompt_tokens,
                                                         last.completion_tokens))
    assert last.cost > 0
