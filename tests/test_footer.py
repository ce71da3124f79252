"""The footer and the ledger show a known call's exact tokens and its own cost, unrounded.

Known usage: the prompt is counted with the same tokenizer the offline server uses,
and the `answer_tokens` fault makes the answer exactly N tokens. The expected cost is
worked out here from `prices.json` itself, not through the package's price table.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources

import pytest
from conftest import run

import mistral_magic
from mistral_magic.money import tokens

FOOTER = re.compile(
    r"^(?P<model>\S+) · (?P<prompt>[\d,]+) in / (?P<completion>[\d,]+) out · "
    r"\$(?P<cost>[\d,.]+) · .*\bsession \$(?P<session>[\d,.]+) over (?P<calls>\d+) calls?\b",
    re.M,
)


def list_price(model: str) -> tuple[float, float]:
    """(input, output) USD per 1M tokens for a model id or alias, read from prices.json."""
    data = json.loads(resources.files("mistral_magic.money").joinpath("prices.json").read_text())
    for model_id, entry in data["models"].items():
        if model == model_id or model in entry.get("aliases", []):
            return entry["input"], entry["output"]
    raise AssertionError(f"{model} is not in prices.json")


def expected_cost(model: str, prompt: int, completion: int) -> float:
    price_in, price_out = list_price(model)
    return (prompt * price_in + completion * price_out) / 1e6


def dollars(text: str) -> float:
    return float(text.replace(",", ""))


def shown_like(shown: float, exact: float) -> bool:
    """True when `shown` is `exact` to the three significant digits the footer keeps."""
    return abs(shown - exact) <= 0.005 * exact


def visible_text(bundle: dict) -> str:
    """What a reader of the rich output sees: tags dropped, entities decoded."""
    rich = bundle.get("text/markdown") or bundle.get("text/html") or ""
    return html.unescape(re.sub(r"<[^>]+>", "", rich))


def footer_of(bundle: dict) -> re.Match:
    match = FOOTER.search(bundle["text/plain"])
    assert match, f"no footer with tokens, cost and session total in {bundle['text/plain']!r}"
    return match


def answers(shell) -> list[dict]:
    return [m for m in shell.display_pub.finals() if "mistral_magic" in m["metadata"]]


FIRST = "Count my tokens."
SECOND = "Now count these, a somewhat longer prompt on a dearer model, please."


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_footer_and_ledger_show_the_exact_tokens_and_own_cost_of_each_call(
        ip, magic_server, stream):
    flag = "" if stream else " --no-stream"
    magic_server.set_faults({"answer_tokens": 37})
    run(ip, f"%%mistral --seed 1{flag}\n{FIRST}", cell_id="one")
    magic_server.set_faults({"answer_tokens": 250})
    run(ip, f"%%mistral --seed 1 --no-history -m mistral-large-latest{flag}\n{SECOND}",
        cell_id="two")

    calls = [
        ("mistral-small-latest", tokens.count_messages([{"role": "user", "content": FIRST}]), 37),
        ("mistral-large-latest", tokens.count_messages([{"role": "user", "content": SECOND}]),
         250),
    ]
    costs = [expected_cost(*call) for call in calls]
    session_total = sum(costs)
    # The session total must not look like either call's cost, or the test proves nothing.
    assert all(not shown_like(session_total, c) for c in costs)

    shown = answers(ip)
    assert len(shown) == 2
    for i, (bundle, (model, prompt, completion), cost) in enumerate(
            zip(shown, calls, costs, strict=True)):
        footer = footer_of(bundle["data"])
        assert footer["model"] == model
        assert (int(footer["prompt"].replace(",", "")),
                int(footer["completion"].replace(",", ""))) == (prompt, completion)
        # The call's own cost, to three significant digits: not rounded to cents.
        assert shown_like(dollars(footer["cost"]), cost), (footer["cost"], cost)
        # The session total so far, beside it.
        assert shown_like(dollars(footer["session"]), sum(costs[: i + 1]))
        assert int(footer["calls"]) == i + 1
        # The rich output a notebook shows carries the same figures.
        seen = visible_text(bundle["data"])
        assert f"{footer['prompt']} in / {footer['completion']} out" in seen
        assert f"${footer['cost']}" in seen and f"session ${footer['session']}" in seen
        meta = bundle["metadata"]["mistral_magic"]
        assert meta["usage"] == {"prompt_tokens": prompt, "completion_tokens": completion}
        assert meta["cost_usd"] == pytest.approx(cost, rel=1e-9)

    records = mistral_magic.session().ledger.records
    assert [(r.model, r.prompt_tokens, r.completion_tokens) for r in records] == calls
    assert [r.cost for r in records] == pytest.approx(costs, rel=1e-9)
    usage = ip.run_line_magic("mistral", "usage")
    assert list(usage["prompt_tokens"]) == [c[1] for c in calls]
    assert list(usage["completion_tokens"]) == [c[2] for c in calls]
    assert list(usage["cost"]) == pytest.approx(costs, rel=1e-9)


def test_the_server_reports_the_usage_the_footer_shows(ip, magic_server):
    """The expected usage above is what the server itself reports for the same request."""
    from mistralai.client import Mistral

    magic_server.set_faults({"answer_tokens": 37})
    run(ip, f"%%mistral --seed 1 --no-stream\n{FIRST}")
    client = Mistral(api_key=magic_server.api_key, server_url=magic_server.url)
    reply = client.chat.complete(model="mistral-small-latest", random_seed=1,
                                 messages=[{"role": "user", "content": FIRST}])
    footer = footer_of(answers(ip)[-1]["data"])
    assert (int(footer["prompt"]), int(footer["completion"])) == (
        reply.usage.prompt_tokens, reply.usage.completion_tokens)
    cost = expected_cost("mistral-small-latest", reply.usage.prompt_tokens,
                         reply.usage.completion_tokens)
    assert shown_like(dollars(footer["cost"]), cost)


def test_terminal_footer_shows_the_same_figures(ip, magic_server, capsys):
    from IPython.core.displaypub import DisplayPublisher

    ip.display_pub = DisplayPublisher(shell=ip)
    magic_server.set_faults({"answer_tokens": 37})
    run(ip, f"%%mistral --seed 1\n{FIRST}")
    run(ip, f"%%mistral --seed 1 --no-history -m mistral-large-latest\n{SECOND}")
    footers = list(FOOTER.finditer(capsys.readouterr().out))
    assert len(footers) == 2
    prompt = tokens.count_messages([{"role": "user", "content": SECOND}])
    cost = expected_cost("mistral-large-latest", prompt, 37)
    first = expected_cost(
        "mistral-small-latest", tokens.count_messages([{"role": "user", "content": FIRST}]), 37)
    last = footers[-1]
    assert (int(last["prompt"]), int(last["completion"])) == (prompt, 37)
    assert shown_like(dollars(last["cost"]), cost)
    assert shown_like(dollars(last["session"]), first + cost)
