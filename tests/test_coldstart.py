"""The first cell of a fresh kernel: what it loads, what it counts, and the server it starts.

Each case runs in a fresh Python process, as a new kernel would; none asserts on speed
(the timings are in `benchmarks/run.py`, section "coldstart").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mistral_magic.calls.budget import MIN_ANSWER_TOKENS, Budget
from mistral_magic.errors import BudgetExceeded
from mistral_magic.money import tokens
from mistral_magic.money.prices import load_prices
from mistral_magic.money.tokens import count_messages, count_text

MODEL = "mistral-small-latest"
PROMPT = "Say hello in one short sentence."


def fresh(code: str, cwd, **env: str) -> dict:
    """Run `code` in a fresh interpreter with no key, in `cwd` (where its store goes);
    it prints one JSON line, returned here."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")}
    root = str(Path(__file__).resolve().parents[1])
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environ.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=240, env={**environ, **env}, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


SHELL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
import mistral_magic
from mistral_magic.money import tokens
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "mistral_magic")
session = mistral_magic.session()
"""


def test_first_cell_without_a_budget_counts_nothing_before_sending(offline_server, tmp_path):
    """No budget and no dry run: the prompt count is the server's usage, no tokenizer loads."""
    result = fresh(SHELL + f"""
shell.run_line_magic("config", "MistralMagics.server_url = {offline_server.url!r}")
shell.run_line_magic("config", "MistralMagics.server_key = {offline_server.api_key!r}")
shell.run_cell_magic("mistral", "--max-tokens 20", {PROMPT!r})
last = session.last
print(json.dumps({{"status": last.status, "prompt": last.prompt_tokens,
                  "completion": last.completion_tokens, "ledger": len(session.ledger),
                  "vocabulary": tokens.loaded(),
                  "mistral_common": "mistral_common" in sys.modules}}))
""", tmp_path, XDG_CACHE_HOME=str(tmp_path))
    assert result["status"] == "ok" and result["ledger"] == 1
    assert not result["vocabulary"] and not result["mistral_common"]
    # The server counts with the same tokenizer: the usage recorded is the exact count.
    assert result["prompt"] == count_messages([{"role": "user", "content": PROMPT}])
    assert 0 < result["completion"] <= 20


def test_first_cell_cut_before_its_usage_still_records_its_prompt_exactly(offline_server, tmp_path):
    """A stream dropped before the usage arrives: the deferred count is taken then, exactly."""
    offline_server.set_faults({"drop_stream_after": 3})
    try:
        result = fresh(SHELL + f"""
shell.run_line_magic("config", "MistralMagics.server_url = {offline_server.url!r}")
shell.run_line_magic("config", "MistralMagics.server_key = {offline_server.api_key!r}")
shell.run_line_magic("config", "MistralMagics.max_retries = 0")
cell = shell.run_cell("%%mistral --max-tokens 50\\n{PROMPT}")
record = session.ledger.records[-1]
print(json.dumps({{"success": cell.success, "status": record.status,
                  "prompt": record.prompt_tokens, "completion": record.completion_tokens,
                  "text": session.last.text}}))
""", tmp_path, XDG_CACHE_HOME=str(tmp_path))
    finally:
        offline_server.set_faults(None)
    assert not result["success"] and result["status"] == "error" and result["text"]
    assert result["prompt"] == count_messages([{"role": "user", "content": PROMPT}])
    assert result["completion"] == count_text(result["text"])


def test_first_cell_under_a_budget_that_covers_it_counts_nothing_before_sending(offline_server,
                                                                               tmp_path):
    """A budget that covers the call at a bound from the prompt's bytes holds it there: no
    tokenizer loads before sending, and what is sent and recorded is what a count gives."""
    result = fresh(SHELL + f"""
shell.run_line_magic("config", "MistralMagics.server_url = {offline_server.url!r}")
shell.run_line_magic("config", "MistralMagics.server_key = {offline_server.api_key!r}")
shell.run_line_magic("config", "MistralMagics.budget_usd = 5.0")
sent = []
for line in ("--max-tokens 20", "--no-history"):
    shell.run_cell_magic("mistral", line, {PROMPT!r})
    sent.append(session.last.request.get("max_tokens"))
last = session.last
print(json.dumps({{"status": last.status, "prompt": last.prompt_tokens, "sent": sent,
                  "capped": last.budget_capped, "ledger": len(session.ledger),
                  "vocabulary": tokens.loaded(), "tiktoken": "tiktoken" in sys.modules,
                  "held": session.budget.reserved, "spent": session.ledger.spent}}))
""", tmp_path, XDG_CACHE_HOME=str(tmp_path))
    assert result["status"] == "ok" and result["ledger"] == 2 and result["held"] == 0
    assert not result["vocabulary"] and not result["tiktoken"]
    assert result["prompt"] == count_messages([{"role": "user", "content": PROMPT}])
    # Its own max_tokens, and none at all (the budget covers the whole context): not capped.
    assert result["sent"] == [20, None] and not result["capped"]
    assert 0 < result["spent"] <= 5.0


def test_a_model_listed_for_an_earlier_kernel_is_not_listed_again_first(offline_server,
                                                                        tmp_path):
    """The listing's names are remembered between kernels: a model named there is sent at
    once; one not named there is still checked against a new listing, and refused."""
    cell = SHELL + f"""
shell.run_line_magic("config", "MistralMagics.server_url = {offline_server.url!r}")
shell.run_line_magic("config", "MistralMagics.server_key = {offline_server.api_key!r}")
shell.run_line_magic("config", "MistralMagics.max_retries = 0")
result = shell.run_cell("%%mistral -m MODEL --max-tokens 5\\n{PROMPT}")
print(json.dumps({{"success": result.success, "error": str(result.error_in_exec or "")}}))
"""
    def listings() -> int:
        return offline_server.request_count("/v1/models")

    for model, listed, success in ((MODEL, 1, True), (MODEL, 0, True),
                                   ("mistral-smal-latest", 1, False)):
        before = listings()
        result = fresh(cell.replace("MODEL", model), tmp_path, XDG_CACHE_HOME=str(tmp_path))
        assert (listings() - before, result["success"]) == (listed, success), result
    assert "did you mean mistral-small-latest?" in result["error"]
    # A day later the names are listed again before a first cell.
    kept = next((tmp_path / "mistral_magic" / "models").glob("*.json"))
    data = json.loads(kept.read_text())
    data["listed"] -= 2 * 24 * 3600
    kept.write_text(json.dumps(data))
    before = listings()
    assert fresh(cell.replace("MODEL", MODEL), tmp_path, XDG_CACHE_HOME=str(tmp_path))["success"]
    assert listings() - before == 1


def test_a_bound_that_does_not_fit_is_counted_and_holds_as_a_count_would():
    """Held at a bound only when the bound decides nothing; otherwise counted, then as usual."""
    prices = load_prices({})
    messages = [{"role": "user", "content": PROMPT}]
    exact = count_messages(messages)
    bound = tokens.bound_messages(messages)
    assert bound >= exact
    counts = []

    def recount():
        counts.append(exact)
        return exact, exact

    # Room for the bound and the answer: held at the bound, nothing counted.
    roomy = Budget(1.0)
    held = roomy.reserve(prices, MODEL, bound, 40, exact_prompt=lambda: exact, recount=recount)
    assert counts == [] and held.max_tokens == 40 and not held.capped
    assert held.held == pytest.approx(prices.cost(MODEL, bound, 40)) and held.prompt_tokens == exact
    # Room for the exact count and 40 answer tokens, not for the bound: counted, capped as a
    # count caps, and held at the count.
    tight = prices.cost(MODEL, exact, 40)
    for limit in (tight, prices.cost(MODEL, exact, MIN_ANSWER_TOKENS - 1)):
        budget, plain = Budget(limit), Budget(limit)
        try:
            expected = plain.reserve(prices, MODEL, exact, 1000, exact_prompt=exact)
        except BudgetExceeded:
            with pytest.raises(BudgetExceeded):
                budget.reserve(prices, MODEL, bound, 1000, exact_prompt=lambda: exact,
                               recount=recount)
            continue
        got = budget.reserve(prices, MODEL, bound, 1000, exact_prompt=lambda: exact,
                             recount=recount)
        assert (got.max_tokens, got.capped, got.held) == (expected.max_tokens, expected.capped,
                                                          expected.held) == (40, True, tight)
    assert counts == [exact, exact]


@pytest.mark.parametrize("case", ["refused", "capped"])
def test_first_cell_with_a_budget_refuses_or_caps_exactly(tmp_path, case):
    """With a budget the first cell counts before sending (offline: exactly) and holds to it."""
    prices = load_prices({})
    prompt = count_messages([{"role": "user", "content": PROMPT}])
    if case == "refused":
        limit = prices.cost(MODEL, prompt, MIN_ANSWER_TOKENS - 1)
    else:
        limit = prices.cost(MODEL, prompt, 40)
    result = fresh(SHELL + f"""
shell.run_line_magic("config", "MistralMagics.budget_usd = {limit!r}")
cell = shell.run_cell("%%mistral\\n{PROMPT}")
from mistral_magic.calls import backend
server = backend.offline_server() if backend.offline_running() else None
last = session.last
print(json.dumps({{"success": cell.success, "error": repr(cell.error_in_exec),
                  "sent": server.request_count("/v1/chat/completions") if server else 0,
                  "max_tokens": last.request.get("max_tokens") if last else None,
                  "prompt": last.prompt_tokens if last else None,
                  "completion": last.completion_tokens if last else None,
                  "spent": session.ledger.spent, "held": session.budget.reserved}}))
""", tmp_path, XDG_CACHE_HOME=str(tmp_path))
    assert result["held"] == 0
    if case == "refused":
        assert not result["success"] and "BudgetExceeded" in result["error"]
        assert result["sent"] == 0 and result["spent"] == 0
        return
    affordable = 0
    while prices.cost(MODEL, prompt, affordable + 1) <= limit:
        affordable += 1
    assert result["success"] and result["prompt"] == prompt
    assert result["max_tokens"] == affordable == 40
    assert result["spent"] <= limit


def test_a_limit_set_while_a_call_is_prepared_is_not_passed_uncounted():
    """A reservation prepared without a limit (its count deferred) is refused if one appears."""
    prices = load_prices({})
    budget = Budget(1.0)
    with pytest.raises(BudgetExceeded) as info:
        budget.reserve(prices, MODEL, lambda: 12, max_tokens=10)
    assert "budget_usd" in str(info.value) and "\n" not in str(info.value)
    assert budget.reserved == 0
    free = Budget(None).reserve(prices, MODEL, lambda: 12, max_tokens=10)
    assert free.prompt_tokens == 12 and free.held == 0


def test_offline_server_answers_while_its_tokenizer_loads(tmp_path):
    """Requests that count wait for the vocabulary; the others are answered meanwhile."""
    result = fresh("""
import json, threading
import httpx
from mistral_magic.money import tokens
from mistral_magic.offline import OfflineServer

tokens._vocab_lock.acquire()  # the vocabulary is "still loading" until released below
with OfflineServer() as server:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    models = httpx.get(server.url + "/v1/models", headers=headers, timeout=60)
    loading = not tokens.loaded()
    body = {"model": "mistral-small-latest", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Count me exactly"}]}
    answers = []
    chat = threading.Thread(target=lambda: answers.append(
        httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=120)))
    chat.start()
    chat.join(1.0)
    waited = chat.is_alive() and not answers  # it cannot count before the vocabulary is there
    tokens._vocab_lock.release()
    chat.join(120)
    usage = answers[0].json()["usage"]
print(json.dumps({"models": models.status_code, "loading": loading, "waited": waited,
                  "chat": answers[0].status_code, "prompt": usage["prompt_tokens"],
                  "expected": tokens.count_messages(body["messages"])}))
""", tmp_path, XDG_CACHE_HOME=str(tmp_path))
    assert result["models"] == 200 and result["loading"]
    assert result["waited"] and result["chat"] == 200
    assert result["prompt"] == result["expected"]
