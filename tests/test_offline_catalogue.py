"""The offline catalogue: every model id the spec, the SDK's examples and the docs use, and strict refusals."""

from __future__ import annotations

import json

import httpx
import pytest
from mistralai.client import errors

from mistral_magic.offline import catalogue

# Model ids the official SDK's examples use (mistralai/client-python, examples/), and the spec's.
SDK_EXAMPLE_IDS = ["mistral-large-latest", "mistral-small-latest", "mistral-medium-latest", "mistral-embed",
                   "codestral-latest", "voxtral-mini-latest", "mistral-medium-3-5", "voxtral-small-latest",
                   "mistral-ocr-latest", "voxtral-mini-transcribe-realtime-2602", "mistral-moderation-latest",
                   "mistral-medium-2505", "voxtral-mini-2602", "voxtral-mini-2507", "pixtral-12b-2409",
                   "mistral-large-2411", "ministral-3b-latest", "magistral-small-latest", "codestral-2508"]
SPEC_IDS = ["mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "mistral-embed",
            "mistral-moderation-latest", "mistral-moderation-2603", "mistral-moderation-2411", "codestral-latest",
            "codestral-2508", "voxtral-mini-2507", "voxtral-mini-latest"]
# Used by the SDK's examples or the spec, but retired (the docs give the date and successor) or never listed.
RETIRED_IDS = {"mistral-small-2503": "mistral-small-2603", "codestral-2405": "codestral-2508",
               "open-mistral-7b": "ministral-8b-2512", "open-mixtral-8x7b": "mistral-small-2603",
               # The 2023 endpoint names (mistral-tiny was "not in the catalogue" before issue 24).
               "mistral-tiny": "ministral-8b-2512", "mistral-medium": "mistral-medium-3-5",
               "codestral-mamba-2407": "codestral-2508"}
NEVER_LISTED = ["voxtral-mini-2601", "codestral-2404", "mistral-ocr-2503-completion"]
FAMILIES = ("mistral-large", "mistral-medium", "mistral-small", "ministral", "magistral", "devstral", "codestral",
            "pixtral", "voxtral", "embed", "moderation", "mistral-ocr")


@pytest.fixture(scope="module")
def cards(offline_server):
    from mistralai.client import Mistral

    with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
        return {card.id: card for card in client.models.list().data}


def test_every_id_the_spec_and_the_sdk_examples_use_is_served(cards):
    for name in SDK_EXAMPLE_IDS + SPEC_IDS:
        assert name in cards, name


def test_every_family_has_a_dated_id_and_a_latest_alias(cards):
    for family in FAMILIES:
        ids = [name for name in cards if family in name]
        # Embeddings have undated aliases (mistral-embed, codestral-embed) rather than -latest ones.
        alias = ("-latest", "-embed") if family == "embed" else ("-latest",)
        assert any(name.endswith(alias) for name in ids), family
        assert any(name[-4:].isdigit() for name in ids), family


def test_cards_carry_the_docs_capabilities_and_contexts(cards):
    assert cards["magistral-medium-latest"].capabilities.reasoning
    assert cards["magistral-medium-latest"].capabilities.vision
    assert cards["mistral-small-2603"].capabilities.reasoning and cards["mistral-medium-3-5"].capabilities.reasoning
    assert not cards["mistral-large-2512"].capabilities.reasoning
    assert cards["codestral-latest"].capabilities.completion_fim and not cards["codestral-latest"].capabilities.vision
    assert cards["pixtral-large-latest"].capabilities.vision
    assert cards["devstral-latest"].capabilities.function_calling
    assert cards["voxtral-small-latest"].capabilities.audio and cards["voxtral-small-latest"].capabilities.completion_chat
    assert cards["voxtral-mini-latest"].capabilities.audio_transcription
    assert not cards["voxtral-mini-latest"].capabilities.completion_chat
    assert cards["voxtral-mini-tts-latest"].capabilities.audio_speech
    assert cards["mistral-ocr-latest"].capabilities.ocr and not cards["mistral-ocr-latest"].capabilities.completion_chat
    assert cards["mistral-moderation-latest"].capabilities.moderation
    contexts = {"mistral-large-latest": 262144, "magistral-small-latest": 131072, "voxtral-small-latest": 32768,
                "mistral-embed": 8192, "zai-glm-5-2": 1048576, "codestral-latest": 131072}
    assert {name: cards[name].max_context_length for name in contexts} == contexts


def test_an_alias_answers_as_itself_and_names_its_model(cards):
    card = cards["mistral-ocr-latest"]
    assert card.name == "mistral-ocr-4-1" and {"mistral-ocr-4-1", "mistral-ocr-4"} <= set(card.aliases)
    assert cards["mistral-medium-latest"].name == "mistral-medium-3-5"


def test_deprecated_models_carry_their_retirement_and_successor(cards):
    card = cards["magistral-medium-2509"]
    assert card.deprecation.isoformat().startswith("2026-07-31")
    assert card.deprecation_replacement_model == "mistral-medium-3-5"
    assert cards["mistral-large-2512"].deprecation is None


def test_created_is_the_release_date(cards):
    import datetime as dt

    created = dt.datetime.fromtimestamp(cards["mistral-small-2603"].created, dt.timezone.utc).date()
    assert created == dt.date(2026, 3, 16)


@pytest.mark.parametrize("name, successor", RETIRED_IDS.items())
def test_a_retired_model_is_refused_naming_its_successor(sdk, name, successor):
    with pytest.raises(errors.SDKError) as caught:
        sdk.chat.complete(model=name, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    message = caught.value.body
    assert f"Invalid model: {name}" in message and "retired" in message and successor in message
    body = json.loads(caught.value.body)
    assert body["type"] == "invalid_model" and body["code"] == "1500"


@pytest.mark.parametrize("name", NEVER_LISTED)
def test_a_model_not_in_the_catalogue_is_invalid_model(offline_server, name):
    response = httpx.post(offline_server.url + "/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {offline_server.api_key}"},
                          json={"model": name, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "invalid_model" and body["code"] == "1500"
    assert "not in the offline catalogue" in body["message"]
    # How to list the models is the client's to say (once), in its own terms.
    assert "models.list" not in body["message"] and "%mistral" not in body["message"]


def test_a_misspelt_model_is_told_the_nearest_id(sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.chat.complete(model="mistral-lage-latest", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body and "did you mean mistral-large-latest?" in caught.value.body


def test_a_model_without_the_capability_says_which_models_have_it(sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.chat.complete(model="mistral-ocr-latest", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400 and "cannot chat" in caught.value.body
    with pytest.raises(errors.SDKError) as caught:
        sdk.fim.complete(model="mistral-small-latest", prompt="def f():")
    assert "cannot fill in the middle" in caught.value.body and "codestral-2508" in caught.value.body
    with pytest.raises(errors.SDKError) as caught:
        sdk.ocr.process(model="mistral-small-latest",
                        document={"type": "document_url", "document_url": "data:text/plain;base64,aGk="})
    assert "cannot run OCR" in caught.value.body


def test_a_transcription_model_cannot_chat(sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.chat.complete(model="voxtral-mini-latest", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400


def test_every_catalogue_id_is_unique_and_retired_ids_are_not_served():
    names = [name for model in catalogue.MODELS for name in model.names()]
    assert len(names) == len(set(names))
    assert not set(names) & set(catalogue.RETIRED)
    assert all(catalogue.find(successor) for _, successor in catalogue.RETIRED.values())
    assert all(catalogue.find(m.replacement) for m in catalogue.MODELS if m.replacement)


def test_retrieving_a_card_it_lacks_says_why(offline_server):
    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    retired = httpx.get(offline_server.url + "/v1/models/open-mistral-7b", headers=headers, timeout=30)
    assert retired.status_code == 404
    assert retired.json()["message"].startswith("Model open-mistral-7b not found (Mistral retired it on 2025-03-30")
    unknown = httpx.get(offline_server.url + "/v1/models/gpt-4", headers=headers, timeout=30)
    assert "not in the offline catalogue" in unknown.json()["message"]
