"""Every model the catalogue lists, by id and by alias, has a price (or says how it is priced)."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from conftest import run

import mistral_magic
from mistral_magic.calls.budget import Budget
from mistral_magic.calls.estimates import estimate_call
from mistral_magic.money.prices import load_prices

MESSAGES = [{"role": "user", "content": "How much will this cost?"}]
# Priced per unit of something other than tokens: the raw entry names the unit.
OTHER_UNITS = ("per_page", "per_audio_minute", "per_million_characters")


@pytest.fixture(scope="module")
def cards(offline_server):
    """The model cards `/v1/models` serves, read through the official SDK."""
    from mistralai.client import Mistral

    with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
        return client.models.list().data


@pytest.fixture(scope="module")
def raw_prices():
    return json.loads(resources.files("mistral_magic.money").joinpath("prices.json").read_text("utf-8"))


def _token_priced(card) -> bool:
    caps = card.capabilities
    return caps.completion_chat or caps.moderation or "embed" in card.id


def test_catalogue_lists_aliases_as_their_own_cards(cards):
    names = [card.id for card in cards]
    assert len(names) == len(set(names))
    assert {"mistral-small-latest", "ministral-8b-latest", "mistral-moderation-latest",
            "mistral-ocr-latest", "mistral-embed", "magistral-medium-latest", "devstral-latest",
            "pixtral-large-latest", "voxtral-small-latest", "codestral-embed"} <= set(names)


def test_the_price_file_keeps_its_source_and_date(raw_prices):
    assert raw_prices["date"] == "2026-08-21" and "Mistral public docs" in raw_prices["source"]
    assert raw_prices["currency"] == "USD" and raw_prices["batch_discount"] == 0.5
    # What was checked since, and when: OCR 4.1's prices, the cached-input share.
    assert "2026-12-06" in raw_prices["checked"] and "ocr-4-1" in raw_prices["checked"]["2026-12-06"]
    assert raw_prices["cached_input_share"] == 0.1 and "prompt-caching" in raw_prices["cached_input_source"]
    assert set(raw_prices["units"]) >= {"per_page", "per_annotated_page", "per_audio_minute", "free"}


def test_every_listed_id_and_alias_has_a_price(cards, raw_prices):
    prices = load_prices()
    missing = [card.id for card in cards if prices.entry(card.id) is None]
    assert not missing, f"prices.json has no price for {missing}"
    for card in cards:
        # An id and its aliases are one model with one price.
        assert {prices.resolve(alias) for alias in card.aliases} <= {prices.resolve(card.id)}
        entry = prices.entry(card.id)
        raw = raw_prices["models"][prices.resolve(card.id)]
        caps = card.capabilities
        if caps.ocr:
            # OCR is priced per page (and per annotated page), not per token: the table says so.
            assert entry.per_page and entry.per_page > 0, card.id
            assert raw["per_annotated_page"] >= raw["per_page"], card.id
            assert prices.price(card.id) is None
        elif raw.get("free"):
            # Free models (the docs say so) cost 0, which is a price, not an unknown one.
            assert prices.price(card.id) == (0.0, 0.0), card.id
        elif not _token_priced(card):
            # Transcription and speech are priced per minute or per character.
            assert any(raw.get(unit, 0) > 0 for unit in OTHER_UNITS), card.id
            assert prices.price(card.id) is None, card.id
        else:
            price_in, price_out = prices.price(card.id)
            assert price_in > 0, card.id
            if caps.completion_chat:
                assert price_out > 0, card.id
        if entry.context is not None:
            assert entry.context == card.max_context_length, card.id


def test_moderation_is_free_on_the_current_model_and_not_on_the_old_one():
    prices = load_prices()
    assert prices.price("mistral-moderation-latest") == (0.0, 0.0)
    assert prices.price("mistral-moderation-2411") == (0.1, 0.0)


def test_mistral_ocr_latest_is_ocr_4_1_and_costs_what_it_costs():
    prices = load_prices()
    assert prices.resolve("mistral-ocr-latest") == "mistral-ocr-4-1"
    assert prices.page_cost("mistral-ocr-latest", 1000) == pytest.approx(4.0)
    assert prices.page_cost("mistral-ocr-2512", 1000) == pytest.approx(2.0)


def test_a_budget_accepts_every_token_priced_model_it_lists(cards):
    prices = load_prices()
    budget = Budget(1.0)
    for card in cards:
        if card.capabilities.ocr or not _token_priced(card):
            continue  # priced per page, minute or character; a chat estimate does not apply
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


def test_cached_prompt_tokens_cost_a_tenth_or_the_models_own_cached_price():
    prices = load_prices()
    full = prices.cost("mistral-small-2603", 1_000_000, 0)
    assert prices.cost("mistral-small-2603", 1_000_000, 0, cached_tokens=1_000_000) == \
        pytest.approx(full * 0.1)
    assert prices.cached_saving("mistral-small-2603", 1_000_000) == pytest.approx(full * 0.9)
    # A model whose entry names its cached price (zai-glm-5-2: 0.14) pays that.
    assert prices.cost("zai-glm-5-2", 1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(0.14)
    # More cached tokens than prompt tokens (a server's mistake) never makes a cost negative.
    assert prices.cost("mistral-small-2603", 10, 0, cached_tokens=99) > 0
    # An override may give a cached price; an unknown model's is unknown.
    assert load_prices({"m": {"input": 1.0, "output": 2.0, "cached_input": 0.2}}).cached_price("m") == 0.2
    assert prices.cached_price("no-such-model") is None
    assert prices.cached_saving("no-such-model", 100) is None
