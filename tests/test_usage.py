"""Prices, formatting, the ledger, estimates and the budget (no network, no server)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from datetime import timezone
from importlib import resources

import pytest

from mistral_magic.calls.budget import Budget
from mistral_magic.calls.estimates import DEFAULT_MAX_TOKENS, Estimate, estimate_call
from mistral_magic.errors import BudgetExceeded, ConfigError
from mistral_magic.money.prices import ModelPrice, PriceTable, load_prices
from mistral_magic.money.tokens import count_messages
from mistral_magic.money.usage import CallRecord, Ledger, format_cost, format_tokens

# -- prices -------------------------------------------------------------------------


def test_prices_file_has_source_date_and_every_model():
    data = json.loads(resources.files("mistral_magic.money").joinpath("prices.json").read_text())
    assert data["date"] == "2026-08-21" and data["currency"] == "USD"
    assert data["batch_discount"] == 0.5
    assert set(data["models"]) == {
        "mistral-large-2512",
        "mistral-medium-3-5",
        "mistral-medium-2508",
        "mistral-medium-2505",
        "mistral-small-2603",
        "mistral-small-2506",
        "mistral-large-2411",
        "ministral-14b-2512",
        "ministral-8b-2512",
        "ministral-3b-2512",
        "ministral-8b-2410",
        "ministral-3b-2410",
        "open-mistral-nemo-2407",
        "labs-mistral-small-creative",
        "magistral-medium-2509",
        "magistral-small-2509",
        "zai-glm-5-2",
        "codestral-2508",
        "devstral-2512",
        "devstral-medium-2507",
        "devstral-small-2507",
        "labs-devstral-small-2512",
        "labs-leanstral-1-5",
        "pixtral-large-2411",
        "pixtral-12b-2409",
        "voxtral-small-2507",
        "voxtral-mini-2507",
        "voxtral-mini-2602",
        "voxtral-mini-transcribe-realtime-2602",
        "voxtral-mini-tts-2603",
        "voxtral-mini-transcribe-3-0",
        "voxtral-small-transcribe-3-0",
        "voxtral-mini-transcribe-realtime-3-0",
        "voxtral-mini-tts-3-0",
        "mistral-embed",
        "codestral-embed",
        "mistral-moderation-2603",
        "mistral-moderation-2411",
        "mistral-ocr-4-1",
        "mistral-ocr-4-0",
        "mistral-ocr-2512",
        "mistral-ocr-2505",
    }
    prices = load_prices()
    assert prices.date == "2026-08-21" and "Mistral" in prices.source


@pytest.mark.parametrize(
    "model, expected",
    [
        ("mistral-large-2512", (0.5, 1.5)),
        ("mistral-large-latest", (0.5, 1.5)),
        ("mistral-medium-latest", (1.5, 7.5)),
        ("mistral-small-latest", (0.15, 0.6)),
        ("ministral-14b-2512", (0.2, 0.2)),
        ("ministral-8b-2512", (0.15, 0.15)),
        ("ministral-3b-2512", (0.1, 0.1)),
        ("codestral-latest", (0.3, 0.9)),
        ("mistral-embed", (0.1, 0.0)),
        ("codestral-embed", (0.15, 0.0)),
        ("mistral-moderation-2603", (0.0, 0.0)),
    ],
)
def test_price_by_id_and_alias(model, expected):
    assert load_prices().price(model) == expected


def test_resolve_aliases_and_unknown():
    prices = load_prices()
    assert prices.resolve("mistral-small-latest") == "mistral-small-2603"
    assert prices.resolve("mistral-small-2603") == "mistral-small-2603"
    assert prices.resolve(" codestral-latest ") == "codestral-2508"
    assert prices.resolve("gpt-4") is None
    assert prices.resolve(None) is None and prices.resolve("") is None


def test_unknown_model_costs_none_never_zero():
    prices = load_prices()
    assert prices.price("my-finetune") is None
    assert prices.cost("my-finetune", 1000, 1000) is None
    assert format_cost(prices.cost("my-finetune", 1000, 1000)) == "unknown"


def test_cost_and_batch_half_price():
    prices = load_prices()
    assert prices.cost("mistral-large-latest", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert prices.cost("mistral-large-latest", 1_000_000, 1_000_000, batch=True) == pytest.approx(
        1.0
    )
    assert prices.cost("mistral-small-2603", 2000, 500) == pytest.approx(
        (2000 * 0.15 + 500 * 0.6) / 1e6
    )
    assert prices.cost("mistral-moderation-2603", 5000, 0) == 0.0
    assert prices.cost("mistral-embed", 1_000_000, None) == pytest.approx(0.1)


def test_ocr_is_priced_per_page_not_per_token():
    prices = load_prices()
    assert prices.price("mistral-ocr-2512") is None
    assert prices.cost("mistral-ocr-2512", 100, 100) is None
    assert prices.page_cost("mistral-ocr-2512", 1000) == pytest.approx(2.0)
    assert prices.page_cost("mistral-ocr-2512", 1000, batch=True) == pytest.approx(1.0)
    assert prices.page_cost("mistral-large-2512", 10) is None


def test_context_length():
    prices = load_prices()
    assert prices.context_length("mistral-large-latest") == 262144
    assert prices.context_length("nope") is None


def test_overrides_win_and_apply_through_aliases():
    prices = load_prices({"mistral-small-latest": {"input": 1.0, "output": 2.0}})
    assert prices.price("mistral-small-2603") == (1.0, 2.0)
    assert prices.price("mistral-small-latest") == (1.0, 2.0)
    assert prices.context_length("mistral-small-2603") == 262144  # kept from the file
    assert "override" in prices.source
    # the shared base table is untouched
    assert load_prices().price("mistral-small-latest") == (0.15, 0.6)


def test_overrides_add_new_models_and_accept_pairs():
    prices = load_prices({"my-finetune": {"input": 0.3, "output": 0.9}, "other": [1, 2]})
    assert prices.cost("my-finetune", 1_000_000, 0) == pytest.approx(0.3)
    assert prices.price("other") == (1.0, 2.0)
    assert load_prices({"ocr-x": {"per_page": 0.01}}).page_cost("ocr-x", 10) == pytest.approx(0.1)
    assert load_prices({"emb": {"input": 0.2}}).price("emb") == (0.2, 0.0)


@pytest.mark.parametrize(
    "overrides",
    [
        ["mistral-small-latest"],
        {"m": 0.5},
        {"m": {}},
        {"m": {"output": 1}},
        {"m": {"input": "cheap", "output": 1}},
        {"m": {"input": -1, "output": 1}},
        {"m": {"input": float("nan"), "output": 1}},
        {"m": {"input": 1, "output": 1, "cached": 0.1}},
        {"m": {"input": True, "output": 1}},
        {"": {"input": 1, "output": 1}},
    ],
)
def test_bad_overrides_are_one_line_config_errors(overrides):
    with pytest.raises(ConfigError) as info:
        load_prices(overrides)
    message = str(info.value)
    assert "\n" not in message
    assert "MistralMagics.prices" in message and '"input"' in message


def test_price_table_can_be_built_directly():
    from mistral_magic.money.prices import ModelPrice

    table = PriceTable({"m": ModelPrice(input=1, output=2)}, {"m-latest": "m"}, source="test")
    assert table.cost("m-latest", 1_000_000, 1_000_000) == pytest.approx(3.0)


# -- formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cost, text",
    [
        (None, "unknown"),
        (float("nan"), "unknown"),
        (0, "$0"),
        (0.0, "$0"),
        (0.000123, "$0.000123"),
        (0.00012345, "$0.000123"),
        (0.0015, "$0.0015"),
        (0.01, "$0.01"),
        (0.5, "$0.50"),
        (0.123, "$0.123"),
        (1, "$1.00"),
        (1.234, "$1.23"),
        (1234.5, "$1,234.50"),
        (1e-9, "$0.000000001"),
    ],
)
def test_format_cost(cost, text):
    assert format_cost(cost) == text


def test_format_tokens():
    assert format_tokens(0) == "0"
    assert format_tokens(12345) == "12,345"
    assert format_tokens(None) == "?"
    assert format_tokens(12345, compact=True) == "12.3k"
    assert format_tokens(999, compact=True) == "999"
    assert format_tokens(2_500_000, compact=True) == "2.5M"


# -- the ledger ---------------------------------------------------------------------


def _rec(model="mistral-small-2603", prompt=10, completion=5, cost=0.001, **kw):
    return CallRecord(
        model=model, prompt_tokens=prompt, completion_tokens=completion, cost=cost, **kw
    )


def test_call_record_defaults():
    rec = CallRecord(model="m")
    assert rec.time.tzinfo is timezone.utc
    assert rec.kind == "chat" and rec.status == "ok" and rec.cost is None and not rec.batch
    assert _rec().total_tokens == 15


def test_ledger_totals_and_by_model():
    ledger = Ledger()
    assert ledger.totals() == {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "cost_known": True,
        "pages": 0,
        "audio_minutes": 0.0,
        "characters": 0,
        "tool_calls": 0,
        "cached_tokens": 0,
        "cached_saved": 0.0,
    }
    ledger.record(_rec("a", 10, 5, 0.25))
    ledger.record(_rec("b", 1, 2, None))
    ledger.record(_rec("a", 100, None, 0.5, status="error"))
    totals = ledger.totals()
    assert totals["calls"] == 3
    assert totals["prompt_tokens"] == 111 and totals["completion_tokens"] == 7
    assert totals["cost"] == pytest.approx(0.75) and totals["cost_known"] is False
    assert ledger.spent == pytest.approx(0.75)
    by_model = ledger.by_model()
    assert list(by_model) == ["a", "b"]
    assert by_model["a"]["calls"] == 2 and by_model["a"]["cost_known"] is True
    assert by_model["b"]["cost_known"] is False and by_model["b"]["cost"] == 0.0
    assert len(ledger) == 3 and "3 calls" in repr(ledger)


def test_records_is_a_copy_and_clear_empties():
    ledger = Ledger()
    ledger.record(_rec())
    ledger.records.clear()
    assert len(ledger.records) == 1
    ledger.clear()
    assert ledger.records == [] and ledger.totals()["calls"] == 0


def test_to_frame_columns_and_dtypes():
    ledger = Ledger()
    ledger.record(_rec("a", 10, 5, 0.25, chat="default", latency_s=1.5, ttft_s=0.2))
    ledger.record(_rec("b", None, None, None, status="error", error="boom", backend="offline"))
    frame = ledger.to_frame()
    assert list(frame.columns) == [
        "time",
        "chat",
        "model",
        "kind",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_s",
        "ttft_s",
        "status",
        "backend",
        "cached",
        "error",
        "pages",
        "audio_minutes",
        "characters",
        "uses",
        "cached_tokens",
        "cached_saved",
    ]
    assert str(frame["cached"].dtype) == "bool" and not frame["cached"].any()
    assert str(frame["uses"].dtype) == "Int64" and frame["uses"].isna().all()
    assert str(frame["cached_tokens"].dtype) == "Int64" and frame["cached_tokens"].isna().all()
    assert str(frame["cached_saved"].dtype) == "float64"
    assert str(frame["pages"].dtype) == "Int64" and frame["pages"].isna().all()
    assert str(frame["audio_minutes"].dtype) == "float64" and frame["audio_minutes"].isna().all()
    assert str(frame["characters"].dtype) == "Int64" and frame["characters"].isna().all()
    assert str(frame["prompt_tokens"].dtype) == "Int64"
    assert str(frame["completion_tokens"].dtype) == "Int64"
    assert str(frame["cost"].dtype) == "float64"
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["prompt_tokens"].tolist()[0] == 10
    assert frame["prompt_tokens"].isna().tolist() == [False, True]
    assert math.isnan(frame["cost"][1]) and frame["cost"][0] == 0.25
    assert frame["error"].tolist() == [None, "boom"]
    assert frame["chat"].tolist() == ["default", None]


def test_to_frame_empty_has_columns_and_dtypes():
    frame = Ledger().to_frame()
    assert len(frame) == 0 and len(frame.columns) == 19
    assert str(frame["prompt_tokens"].dtype) == "Int64" and str(frame["cost"].dtype) == "float64"


def test_subscribe_and_unsubscribe():
    ledger = Ledger()
    seen = []
    unsubscribe = ledger.subscribe(seen.append)
    first = ledger.record(_rec())
    unsubscribe()
    unsubscribe()  # twice is harmless
    ledger.record(_rec())
    assert seen == [first]


def test_failing_subscriber_does_not_break_recording(caplog):
    ledger = Ledger()
    seen = []

    def broken(rec):
        raise RuntimeError("display gone")

    ledger.subscribe(broken)
    ledger.subscribe(seen.append)
    with caplog.at_level("ERROR", logger="mistral_magic.money.usage"):
        ledger.record(_rec())
    assert len(ledger) == 1 and len(seen) == 1
    assert "subscriber failed" in caplog.text


def test_subscriber_may_read_the_ledger():
    ledger = Ledger()
    totals = []
    ledger.subscribe(lambda rec: totals.append(ledger.totals()["calls"]))
    ledger.record(_rec())
    ledger.record(_rec())
    assert totals == [1, 2]


def test_ledger_is_thread_safe():
    ledger = Ledger()
    notified = []
    lock = threading.Lock()

    def note(rec):
        with lock:
            notified.append(rec)

    ledger.subscribe(note)
    threads_n, per_thread = 8, 250

    def hammer(i):
        for _ in range(per_thread):
            ledger.record(_rec(f"m{i % 3}", 1, 2, 0.001))
            ledger.totals()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = ledger.totals()
    assert totals["calls"] == threads_n * per_thread == len(notified)
    assert totals["prompt_tokens"] == threads_n * per_thread
    assert totals["cost"] == pytest.approx(threads_n * per_thread * 0.001)
    assert sum(t["calls"] for t in ledger.by_model().values()) == threads_n * per_thread


# -- estimates and the budget -------------------------------------------------------

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in France."},
]


def test_estimate_matches_the_tokenizer():
    prices = load_prices()
    est = estimate_call(prices, "mistral-large-latest", MESSAGES, max_tokens=200)
    assert isinstance(est, Estimate)
    assert est.prompt_tokens == count_messages(MESSAGES)
    assert est.max_completion_tokens == 200
    assert est.worst_cost == pytest.approx(
        prices.cost("mistral-large-2512", est.prompt_tokens, 200)
    )
    assert est.prompt_cost == pytest.approx(prices.cost("mistral-large-2512", est.prompt_tokens, 0))


def test_estimate_default_max_tokens_and_tools():
    prices = load_prices()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    est = estimate_call(prices, "mistral-small-latest", MESSAGES, tools=tools)
    assert est.max_completion_tokens == DEFAULT_MAX_TOKENS == 1024
    assert est.prompt_tokens == count_messages(MESSAGES, tools=tools)
    assert est.prompt_tokens > count_messages(MESSAGES)
    assert estimate_call(prices, "m", MESSAGES, default_max_tokens=7).max_completion_tokens == 7
    half = estimate_call(prices, "mistral-small-latest", MESSAGES, tools=tools, batch=True)
    assert half.worst_cost == pytest.approx(est.worst_cost / 2)


def test_estimate_unknown_price():
    est = estimate_call(load_prices(), "my-model", MESSAGES, max_tokens=10)
    assert est.worst_cost is None and est.prompt_cost is None
    assert est.prompt_tokens == count_messages(MESSAGES)


def _spent(amount: float) -> Ledger:
    ledger = Ledger()
    if amount:
        ledger.record(_rec(cost=amount))
    return ledger


def test_budget_holds_caps_and_gives_back():
    # 1 USD per 1M tokens in and out: 1,000 tokens cost $0.001.
    prices = PriceTable({"m": ModelPrice(input=1, output=1, context=100_000)})
    budget = Budget(0.01, _spent(0.005))
    held = budget.reserve(prices, "m", 1000, max_tokens=500)
    assert held.max_tokens == 500 and not held.capped
    assert held.held == pytest.approx(0.0015) and budget.reserved == pytest.approx(0.0015)
    assert budget.remaining() == pytest.approx(0.0035)
    capped = budget.reserve(prices, "m", 1000)  # no max_tokens: what is left affords 2,500
    assert capped.max_tokens == 2500 and capped.capped
    assert budget.remaining() == 0.0
    held.settle(_rec("m", 1000, 100, 0.0011))
    capped.release()
    assert budget.reserved == 0 and budget.ledger.spent == pytest.approx(0.0061)
    assert budget.remaining() == pytest.approx(0.0039)


def test_budget_without_limit_holds_and_caps_nothing():
    budget = Budget(None, _spent(1e9))
    free = budget.reserve(load_prices(), "my-finetune", 10, max_tokens=None)  # unknown price
    assert free.max_tokens is None and free.held == 0 and not free.capped
    assert budget.remaining() is None and budget.reserved == 0
    assert free.apply({"model": "m", "messages": []}) == {"model": "m", "messages": []}


def test_budget_leaves_a_whole_context_answer_uncapped():
    prices = PriceTable({"m": ModelPrice(input=1, output=1, context=10_000)})
    budget = Budget(1.0)
    held = budget.reserve(prices, "m", 1000)
    assert held.max_tokens is None and not held.capped
    assert held.held == pytest.approx(10_000 / 1e6)  # the worst is the whole context


def test_budget_refusal_message_has_the_numbers_and_the_fix():
    prices = PriceTable({"mistral-large-2512": ModelPrice(input=100, output=100)})
    budget = Budget(1.0, _spent(0.9995))
    with pytest.raises(BudgetExceeded) as info:
        budget.reserve(prices, "mistral-large-2512", 1234)
    message = str(info.value)
    assert "\n" not in message
    # needs (1,234 + 16) tokens at $100 per 1M = $0.125; $0.0005 of $1.00 is left
    for part in ("$0.125", "$0.0005", "$1.00", "mistral-large-2512", "1,234", "16 answer"):
        assert part in message
    assert "MistralMagics.budget_usd" in message and "%mistral reset" in message
    assert budget.reserved == 0


def test_budget_refuses_unknown_price_when_a_limit_is_set():
    with pytest.raises(BudgetExceeded) as info:
        Budget(1.0).reserve(load_prices(), "my-finetune", 10, max_tokens=10)
    message = str(info.value)
    assert "\n" not in message
    assert "my-finetune" in message and "MistralMagics.prices" in message


@pytest.mark.parametrize("limit", [-1, "5", float("nan"), True])
def test_budget_limit_must_be_a_number(limit):
    with pytest.raises(ConfigError) as info:
        Budget(limit)
    assert "\n" not in str(info.value) and "budget_usd" in str(info.value)


def test_import_is_cheap():
    code = (
        "import sys, mistral_magic.money.usage, mistral_magic.money.prices, mistral_magic.calls.estimates, "
        "mistral_magic.calls.budget, mistral_magic.structured.frames; "
        "heavy = [m for m in ('pandas', 'mistralai', 'mistral_common', 'pydantic', 'jsonschema')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_built_in_tools_uses_are_not_calls_and_their_unknown_price_stays_unknown():
    ledger = Ledger()
    ledger.record(_rec("mistral-small-latest", 100, 20, 0.001, kind="conversation"))
    ledger.record(CallRecord(model="web_search", kind="tool", prompt_tokens=0, completion_tokens=0,
                             uses=2, cost=None))
    totals = ledger.totals()
    assert totals["calls"] == 1 and totals["tool_calls"] == 2
    assert totals["cost"] == 0.001 and totals["cost_known"] is False  # a tool's use is never $0
    assert ledger.spent == 0.001 and ledger.to_frame()["uses"].tolist()[1] == 2


def test_tools_are_priced_per_use_unknown_until_given():
    prices = load_prices()
    assert prices.use_price("web_search") is None and prices.use_cost("web_search", 2) is None
    assert prices.use_cost("web_search", 0) == 0.0
    priced = load_prices({"web_search": {"per_call": 0.01}})
    assert priced.use_cost("web_search", 3) == pytest.approx(0.03)
    assert priced.use_price("code_interpreter") is None
    for bad in ({"web_search": {"per_call": -1}}, {"web_search": {"per_call": 1, "input": 2}}):
        with pytest.raises(ConfigError, match="web_search"):
            load_prices(bad)
