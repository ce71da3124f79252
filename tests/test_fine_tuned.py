"""Fine-tuned models today: listed with --mine, used with -m and in row methods, priced by their
base model (never $0), archived, unarchived and renamed through the SDK, against the real
offline server (which has one fine-tuned model in its catalogue)."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest
from conftest import run
from offline_spec import check_error_fixture, check_fixture, spec_fixture  # noqa: F401

import mistral_magic
from mistral_magic.money.prices import load_prices
from mistral_magic.offline import catalogue

FT = catalogue.FINE_TUNED[0].id
BASE = "mistral-small-2603"


def session():
    return mistral_magic.session()


def one_line(result) -> str:
    text = str(result.error_in_exec)
    assert "\n" not in text
    return text


def test_mine_lists_the_accounts_fine_tuned_models(ip):
    mine = ip.run_line_magic("mistral", "models --mine")
    assert list(mine.columns) == ["id", "name", "base", "archived", "created", "description",
                                  "context", "input_per_1m", "output_per_1m", "job"]
    [row] = mine.itertuples()
    assert row.id == FT and row.id.startswith("ft:") and row.base == BASE and not row.archived
    assert row.input_per_1m == pytest.approx(0.15) and row.output_per_1m == pytest.approx(0.6)
    assert str(mine["created"].dtype) == "datetime64[ns, UTC]" and row.created.year == 2026
    # The full list has it too, among the base models, priced by its base.
    every = ip.run_line_magic("mistral", "models")
    assert FT in set(every["id"]) and len(every) > len(mine)
    assert every.loc[every["id"] == FT, "input_per_1m"].item() == pytest.approx(0.15)


def test_a_fine_tuned_model_answers_a_cell_priced_by_its_base(ip):
    run(ip, f"%%mistral -m {FT} --max-tokens 30\nDraft a polite reply to a late-delivery complaint.")
    answer = session().last
    assert answer.status == "ok" and answer.model == FT and answer.text
    expected = load_prices().cost(BASE, answer.prompt_tokens, answer.completion_tokens)
    assert answer.cost == pytest.approx(expected) and answer.cost > 0
    # With a budget it is held like its base model, not refused as unpriced.
    run(ip, "%config MistralMagics.budget_usd = 0.10")
    run(ip, f"%%mistral -m {FT} --max-tokens 20\nAnd a shorter one.")
    assert session().last.cost > 0
    # A misspelt fine-tuned id is refused before anything is sent, with the nearest one.
    calls = len(session().ledger)
    result = run(ip, f"%%mistral -m {FT[:-1]}x\nHello.", ok=False)
    assert f"did you mean {FT}?" in one_line(result) and len(session().ledger) == calls


def test_a_fine_tuned_model_works_in_row_methods(ip):
    ip.user_ns["df"] = pd.DataFrame({"text": ["My parcel is a week late.", "Thanks, it arrived!"]})
    run(ip, f"out = df.mistral.extract('{{text}}', schema='mood, urgent bool', model='{FT}', "
            "progress=False)")
    out = ip.user_ns["out"]
    assert out["_error"].isna().all() and list(out.columns) == ["mood", "urgent", "_error"]
    rows = [r for r in session().ledger.records if r.kind == "extract"]
    assert [r.model for r in rows] == [FT, FT] and all(r.cost > 0 for r in rows)


def test_an_override_for_the_fine_tuned_id_is_its_own():
    prices = load_prices({FT: {"input": 1.0, "output": 2.0}})
    assert prices.price(FT) == (1.0, 2.0) and prices.price(BASE) == (0.15, 0.6)
    assert load_prices().price(FT) == (0.15, 0.6)
    # A fine-tuned id whose base has no price costs "unknown", never 0.
    assert load_prices().cost("ft:open-mistral-7b:587a6b29:20240514:7e773925", 100, 10) is None


def test_archive_unarchive_and_rename_through_the_sdk(ip, magic_server):
    try:
        note = ip.run_line_magic("mistral", f"models archive {FT}")
        assert f"Archived {FT}" in note and f"unarchive {FT}" in note
        mine = ip.run_line_magic("mistral", "models --mine")
        assert mine["archived"].tolist() == [True]
        assert "Unarchived" in ip.run_line_magic("mistral", f"models unarchive {FT}")
        assert ip.run_line_magic("mistral", "models --mine")["archived"].tolist() == [False]
        note = ip.run_line_magic("mistral", f"models rename {FT} Support desk tone v2")
        assert "'Support desk tone v2'" in note and f"stays {FT}" in note
        assert ip.run_line_magic("mistral", "models --mine")["name"].tolist() == ["Support desk tone v2"]
    finally:  # the offline server is shared by the tests of this process
        from mistralai.client import Mistral

        with Mistral(api_key=magic_server.api_key, server_url=magic_server.url) as sdk:
            sdk.models.unarchive(model_id=FT)
            sdk.models.update(model_id=FT, name=FT)


@pytest.mark.parametrize("line, said", [
    ("models archive", "needs a fine-tuned model's id"),
    ("models rename " + FT, "needs the new name"),
    ("models archve " + FT, "did you mean %mistral models archive?"),
    ("models archive mistral-small-latest", "is a base model"),
    ("models archive ft:mistral-small-2603:0ff11ce0:20261115:5eedcafx", f"did you mean {FT}?"),
    ("models archive ft:nothing:like:it", "%mistral models --mine lists yours"),
    ("models --mine archive " + FT, "takes no action"),
])
def test_bad_management_lines_are_refused_in_one_line(ip, magic_server, line, said):
    before = magic_server.request_count("/v1/fine_tuning/models/" + FT + "/archive")
    result = run(ip, f"%mistral {line}", ok=False)
    assert said in one_line(result)
    assert magic_server.request_count("/v1/fine_tuning/models/" + FT + "/archive") == before


def test_the_offline_routes_conform_to_the_spec(offline_server, check, check_error):
    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    base = f"{offline_server.url}/v1/fine_tuning/models/{FT}"
    try:
        archived = httpx.post(f"{base}/archive", headers=headers, timeout=30)
        check(archived.json(), "/v1/fine_tuning/models/{model_id}/archive", "post")
        assert archived.json() == {"id": FT, "object": "model", "archived": True}
        listed = httpx.get(f"{offline_server.url}/v1/models", headers=headers, timeout=30).json()
        check(listed, "/v1/models", "get")
        [card] = [c for c in listed["data"] if c["type"] == "fine-tuned"]
        assert card["archived"] and card["root"] == BASE and card["job"]
        one = httpx.get(f"{offline_server.url}/v1/models/{FT}", headers=headers, timeout=30).json()
        check(one, "/v1/models/{model_id}", "get")
        unarchived = httpx.delete(f"{base}/archive", headers=headers, timeout=30)
        check(unarchived.json(), "/v1/fine_tuning/models/{model_id}/archive", "delete")
        updated = httpx.patch(base, headers=headers, timeout=30, json={"description": "tone"})
        check(updated.json(), "/v1/fine_tuning/models/{model_id}", "patch")
        assert updated.json()["description"] == "tone" and updated.json()["model_type"] == "completion"
    finally:
        httpx.delete(f"{base}/archive", headers=headers, timeout=30)
        httpx.patch(base, headers=headers, timeout=30,
                    json={"description": catalogue.FINE_TUNED[0].description})
    missing = httpx.post(f"{offline_server.url}/v1/fine_tuning/models/ft:nope:1:2:3/archive",
                         headers=headers, timeout=30)
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    check_error(missing, "/v1/fine_tuning/models/{model_id}/archive", "post")
