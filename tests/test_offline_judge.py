"""The offline server's judgements of labelled records, through the official SDK: a match by
shared words, and a choice that does not depend on the order the records come in."""

from __future__ import annotations

import json

import pytest


def ask(sdk, text: str, field: dict) -> dict:
    schema = {"type": "object", "properties": {"verdict": field}, "required": ["verdict"],
              "additionalProperties": False}
    response = sdk.chat.complete(
        model="mistral-small-latest", messages=[{"role": "user", "content": text}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "judge", "schema": schema, "strict": True}})
    return json.loads(response.choices[0].message.content)


@pytest.mark.parametrize("a, b, same", [
    ("Apple iPhone 13 128GB", "iPhone 13 (128 GB) by Apple", True),
    ("Apple iPhone 13 128GB", "Samsung Galaxy S22 128 GB", False),
    ("Kindle Paperwhite 8GB", "Amazon Kindle Paperwhite (8 GB)", True),
    ("Kindle Paperwhite 8GB", "Kobo Clara HD e-reader", False),
])
def test_two_records_match_when_they_share_their_words(sdk, a, b, same):
    text = f"Is this the same product?\n\nRecord A (title): {a}\nRecord B (name): {b}"
    assert ask(sdk, text, {"type": "boolean"}) == {"verdict": same}


def test_the_closer_record_wins_in_either_order(sdk):
    urgent = "Payment failed twice and I was charged"
    calm = "How do I change my avatar?"
    question = "Which fits better: most urgent, payments fail or data is lost"
    enum = {"type": "string", "enum": ["A", "B"]}
    assert ask(sdk, f"{question}\n\nRecord A: {urgent}\nRecord B: {calm}", enum) == {"verdict": "A"}
    assert ask(sdk, f"{question}\n\nRecord A: {calm}\nRecord B: {urgent}", enum) == {"verdict": "B"}
    # A tie (neither shares a word with the question) goes to the same text either way.
    one, two = "Feature request: dark mode", "Change my avatar"
    first = ask(sdk, f"Which is bluer?\n\nRecord A: {one}\nRecord B: {two}", enum)["verdict"]
    second = ask(sdk, f"Which is bluer?\n\nRecord A: {two}\nRecord B: {one}", enum)["verdict"]
    assert {"A": one, "B": two}[first] == {"A": two, "B": one}[second]


def test_other_schemas_are_filled_as_before(sdk):
    # One record, or two fields: not a judgement; the generic filler answers.
    text = "Record A: a kettle that costs 12 euros"
    answer = ask(sdk, text, {"type": "number"})
    assert answer == {"verdict": 12}
