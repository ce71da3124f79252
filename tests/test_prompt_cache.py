"""Prompt caching: a chat's cells send its prompt_cache_key; the prefix the server has seen is
billed at 10 % of the input price, shown in the footer, the ledger and `%mistral usage`; the
estimate and the budget stay worst case. The real offline server reports the cached tokens
(64-token blocks of a repeated prefix under the same key) through the real SDK.
"""

from __future__ import annotations

import json
import os
from importlib import resources

import pytest
from conftest import run

import mistral_magic
from mistral_magic.calls.prompt_cache import cache_key
from mistral_magic.errors import BudgetExceeded

SYSTEM = "You are a patient statistics tutor who explains each idea with a small example. " * 30
MODEL = "mistral-medium-latest"  # its input costs 1.5 USD per 1M tokens: the saving shows


def session():
    return mistral_magic.session()


def list_price(model: str) -> tuple[float, float]:
    """(input, output) USD per 1M tokens, read from prices.json itself."""
    data = json.loads(resources.files("mistral_magic.money").joinpath("prices.json").read_text())
    assert data["cached_input_share"] == 0.1
    for model_id, entry in data["models"].items():
        if model == model_id or model in entry.get("aliases", []):
            return entry["input"], entry["output"]
    raise AssertionError(model)


def two_cells(ip, chat: str = "tutor"):
    run(ip, f'%%mistral -m {MODEL} -c {chat} -s "{SYSTEM}" --max-tokens 40\nWhat is a p-value?',
        cell_id="one")
    run(ip, f"%%mistral -m {MODEL} -c {chat} --max-tokens 40\nAnd a confidence interval?",
        cell_id="two")
    return session().ledger.records[-2:]


def test_a_chat_resending_its_history_pays_a_tenth_for_the_cached_prefix(ip):
    first, second = two_cells(ip)
    # The first cell has nothing cached; the second resends it, and the server says so.
    assert first.cached_tokens == 0 and first.cached_saved == 0
    assert second.cached_tokens >= 128 and second.cached_tokens % 64 == 0
    assert second.cached_tokens < second.prompt_tokens
    price_in, price_out = list_price(MODEL)
    uncached = second.prompt_tokens - second.cached_tokens
    expected = (uncached * price_in + second.cached_tokens * price_in * 0.1
                + second.completion_tokens * price_out) / 1e6
    assert second.cost == pytest.approx(expected, rel=1e-9)
    assert second.cached_saved == pytest.approx(second.cached_tokens * price_in * 0.9 / 1e6)
    assert session().last.cost == second.cost and session().last.cached_tokens == second.cached_tokens
    # The footer under the answer says how many tokens were cached and what that saved.
    plain = [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]
    text = plain["data"]["text/plain"]
    assert f"{second.prompt_tokens:,} in / {second.completion_tokens:,} out · $" in text
    assert f" · {second.cached_tokens:,} in from the prompt cache, saved $" in text
    assert plain["metadata"]["mistral_magic"]["usage"]["cached_tokens"] == second.cached_tokens
    # %mistral usage: a column for each, and the totals add them up.
    usage = ip.run_line_magic("mistral", "usage")
    assert usage["cached_tokens"].tolist() == [0, second.cached_tokens]
    assert usage["cached_saved"].iloc[1] == pytest.approx(second.cached_saved)
    totals = session().ledger.totals()
    assert totals["cached_tokens"] == second.cached_tokens
    assert totals["cached_saved"] == pytest.approx(second.cached_saved)


def test_the_key_is_the_notebooks_and_the_chats_never_the_api_key(ip, monkeypatch, tmp_path):
    run(ip, "%%mistral -c alpha\nHello.")
    alpha = session().last.request["prompt_cache_key"]
    assert alpha == cache_key(os.getcwd(), None, "alpha")
    run(ip, "%%mistral -c beta\nHello.")
    assert session().last.request["prompt_cache_key"] not in (alpha, None)
    # The notebook's name (as the front end gives it) is part of it.
    ip.user_ns["__session__"] = str(tmp_path / "lesson.ipynb")
    run(ip, "%%mistral -c alpha\nHello again.")
    assert session().last.request["prompt_cache_key"] == cache_key(os.getcwd(), "lesson.ipynb",
                                                                  "alpha") != alpha
    # A key in the environment changes nothing in it (here the offline backend is forced).
    secret = "sk-prompt-cache-test-0123456789"
    monkeypatch.setenv("MISTRAL_API_KEY", secret)
    run(ip, "%config MistralMagics.backend = 'offline'")
    run(ip, "%%mistral -c alpha\nOnce more.")
    keyed = session().last.request["prompt_cache_key"]
    assert keyed == cache_key(os.getcwd(), "lesson.ipynb", "alpha") and secret not in keyed
    # A dry run shows the key, as the request will carry it.
    run(ip, "%%mistral -c alpha --dry-run -o sent\nWhat would you send?")
    assert ip.user_ns["sent"]["prompt_cache_key"] == keyed


def test_calls_of_no_chat_send_no_key(ip):
    run(ip, "%%mistral --no-history\nJust this once.")
    assert "prompt_cache_key" not in session().last.request
    assert session().last.cached_tokens is None


def test_the_setting_turns_it_off(ip):
    run(ip, "%config MistralMagics.prompt_cache = False")
    first, second = two_cells(ip)
    assert "prompt_cache_key" not in session().last.request
    assert first.cached_tokens is None and second.cached_tokens is None
    price_in, price_out = list_price(MODEL)
    assert second.cost == pytest.approx(
        (second.prompt_tokens * price_in + second.completion_tokens * price_out) / 1e6)
    text = [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]
    assert "prompt cache" not in text["data"]["text/plain"]
    assert "prompt_cache" in {name for name in ip.find_magic("mistral").__self__.traits(config=True)}


def test_the_estimate_and_the_budget_stay_worst_case(ip):
    """The budget holds the second cell's prompt at full price, though most of it will be
    cached: a budget that only the cached price fits refuses it before sending."""
    run(ip, f'%%mistral -m {MODEL} -c tutor -s "{SYSTEM}" --max-tokens 40\nWhat is a p-value?',
        cell_id="one")
    prompt = f"%%mistral -m {MODEL} -c tutor --max-tokens 16\nAnd a confidence interval?"
    run(ip, prompt.replace("--max-tokens 16", "--max-tokens 16 --dry-run -o planned"))
    planned = session().estimate(ip.user_ns["planned"])
    price_in, price_out = list_price(MODEL)
    assert planned.worst_cost == pytest.approx(
        (planned.prompt_tokens * price_in + 16 * price_out) / 1e6)
    # Room for a tenth of the prompt and the answer, not for the prompt at full price.
    room = planned.prompt_tokens * price_in * 0.5 / 1e6
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {session().ledger.spent + room}")
    result = run(ip, prompt, cell_id="two", ok=False)
    assert isinstance(result.error_in_exec, BudgetExceeded)
    assert len(session().ledger.records) == 1
    # With the room to hold the worst case, the same cell costs far less than was held.
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {session().ledger.spent + 1}")
    run(ip, prompt, cell_id="two")
    second = session().ledger.records[-1]
    assert second.cached_tokens > 0 and second.cost < room


def test_cached_tokens_are_kept_in_the_store_for_every_kernel(ip):
    two_cells(ip)
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    every = ip.run_line_magic("mistral", "usage --all")
    assert every["cached_tokens"].iloc[-1] > 0 and every["cached_tokens"].iloc[0] == 0
    assert every["cached_saved"].iloc[-1] > 0
    assert str(every["cached_tokens"].dtype) == "Int64"


def test_each_step_of_a_tool_cell_counts_its_cached_tokens(ip):
    def lookup(term: str) -> str:
        """Look up a statistics term."""
        return f"{term}: a definition from the course notes. " * 20

    ip.user_ns["lookup"] = lookup
    run(ip, f'%%mistral -c tools -s "{SYSTEM}" --tools lookup\nLook up p-value, then explain it.')
    answer = session().last
    steps = [r for r in session().ledger.records if r.chat == "tools"]
    assert answer.steps == len(steps) >= 2
    assert answer.cached_tokens == sum(r.cached_tokens for r in steps) > 0


def test_a_call_whose_usage_never_arrived_is_priced_uncached(ip, magic_server):
    run(ip, f'%%mistral -m {MODEL} -c tutor -s "{SYSTEM}" --max-tokens 40\nWhat is a p-value?',
        cell_id="one")
    magic_server.set_faults({"drop_stream_after": 5})
    run(ip, f"%%mistral -m {MODEL} -c tutor --max-tokens 40\nAnd a confidence interval?",
        cell_id="two", ok=False)
    dropped = session().ledger.records[-1]
    assert dropped.status == "error" and dropped.cached_tokens is None
    price_in, price_out = list_price(MODEL)
    assert dropped.cost == pytest.approx(
        (dropped.prompt_tokens * price_in + dropped.completion_tokens * price_out) / 1e6)


def test_a_self_hosted_server_gets_no_key(ip):
    from mistral_magic.offline import OfflineServer

    with OfflineServer(api_key="self-hosted-key-0123") as server:
        run(ip, f"%config MistralMagics.server_url = {server.url!r}")
        run(ip, "%config MistralMagics.server_key = 'self-hosted-key-0123'")
        run(ip, "%%mistral -c alpha\nHello, my own server.")
        assert "prompt_cache_key" not in session().last.request
        assert session().last.cached_tokens is None
