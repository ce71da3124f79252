"""Function calling offline: arguments from the user's text, parallel calls, answers from results, hosted checks."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from offline_spec import check_error_fixture, check_fixture, spec_fixture  # noqa: F401

MODEL = "mistral-small-latest"


def tool(name, description, properties, required):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


WEATHER = tool("get_weather", "Current weather for a city",
               {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"])
DESCRIBE = tool("describe_column", "Summary statistics of one DataFrame column", {"column": {"type": "string"}},
                ["column"])
HIST = tool("plot_hist", "Plot a histogram of a DataFrame column",
            {"column": {"type": "string"}, "bins": {"type": "integer", "default": 10}}, ["column"])
CONVERT = tool("convert_currency", "Convert an amount of money between currencies",
               {"amount": {"type": "number"}, "to": {"type": "string", "enum": ["EUR", "USD", "GBP"]}},
               ["amount", "to"])


def user(text):
    return [{"role": "user", "content": text}]


def calls_of(response):
    return [(c.function.name, json.loads(c.function.arguments)) for c in response.choices[0].message.tool_calls or []]


def post(server, body):
    return httpx.post(server.url + "/v1/chat/completions", json={"model": MODEL, **body}, timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"})


# --- arguments from the text ---------------------------------------------------------------------

def test_a_city_and_an_enum_value_come_from_the_text(sdk):
    response = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("What's the weather in Lisbon in fahrenheit?"))
    assert calls_of(response) == [("get_weather", {"city": "Lisbon", "unit": "fahrenheit"})]


def test_two_cities_give_two_calls_when_parallel_calls_are_allowed(sdk):
    question = user("What's the weather in Paris and Berlin?")
    both = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=question)
    assert calls_of(both) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Berlin"})]
    assert [c.index for c in both.choices[0].message.tool_calls] == [0, 1]
    one = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=question, parallel_tool_calls=False)
    assert calls_of(one) == [("get_weather", {"city": "Paris"})]


def test_column_names_and_numbers_come_from_the_text(sdk):
    described = sdk.chat.complete(model=MODEL, tools=[DESCRIBE, HIST], tool_choice="any",
                                  messages=user("Describe the price column"))
    assert calls_of(described)[0] == ("describe_column", {"column": "price"})
    plotted = sdk.chat.complete(model=MODEL, tools=[HIST], tool_choice={"type": "function",
                                                                       "function": {"name": "plot_hist"}},
                                messages=user("Plot a histogram of price with 20 bins"))
    assert calls_of(plotted) == [("plot_hist", {"column": "price", "bins": 20})]
    both = sdk.chat.complete(model=MODEL, tools=[DESCRIBE], messages=user("Describe the price and qty columns"))
    assert [args["column"] for _, args in calls_of(both)] == ["price", "qty"]


def test_a_quoted_value_and_a_number_fill_their_parameters(sdk):
    described = sdk.chat.complete(model=MODEL, tools=[DESCRIBE], tool_choice="any",
                                  messages=user("describe 'total amount' please"))
    assert calls_of(described) == [("describe_column", {"column": "total amount"})]
    converted = sdk.chat.complete(model=MODEL, tools=[CONVERT], messages=user("Convert 250 dollars to EUR"))
    assert calls_of(converted) == [("convert_currency", {"amount": 250, "to": "EUR"})]


def test_without_a_value_in_the_text_a_required_parameter_comes_from_the_schema(sdk):
    schema_default = tool("set_mode", "Set the mode", {"mode": {"type": "string", "default": "fast"}}, ["mode"])
    response = sdk.chat.complete(model=MODEL, tools=[schema_default], tool_choice="any", messages=user("go"))
    assert calls_of(response) == [("set_mode", {"mode": "fast"})]
    # Optional parameters the text says nothing about are left out, as a model leaves them.
    weather = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("Weather in Oslo?"))
    assert calls_of(weather) == [("get_weather", {"city": "Oslo"})]


def test_tool_call_ids_are_nine_alphanumerics(sdk):
    response = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("Weather in Rome and Madrid?"))
    ids = [c.id for c in response.choices[0].message.tool_calls]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(re.fullmatch(r"[a-zA-Z0-9]{9}", i) for i in ids)


# --- tool_choice ------------------------------------------------------------------------------------

def test_every_tool_choice_behaves(sdk):
    ask = user("What is the weather in Nice?")
    assert calls_of(sdk.chat.complete(model=MODEL, tools=[WEATHER], tool_choice="auto", messages=ask))
    assert not calls_of(sdk.chat.complete(model=MODEL, tools=[WEATHER], tool_choice="none", messages=ask))
    unrelated = user("Write a haiku about tea")
    assert not calls_of(sdk.chat.complete(model=MODEL, tools=[WEATHER], tool_choice="auto", messages=unrelated))
    for forced in ("any", "required"):
        assert calls_of(sdk.chat.complete(model=MODEL, tools=[WEATHER], tool_choice=forced, messages=unrelated))
    named = sdk.chat.complete(model=MODEL, tools=[WEATHER, DESCRIBE], messages=ask,
                              tool_choice={"type": "function", "function": {"name": "describe_column"}})
    assert [name for name, _ in calls_of(named)] == ["describe_column"]


def test_a_named_choice_outside_the_tools_is_refused(offline_server):
    response = post(offline_server, {"messages": user("hi"), "tools": [WEATHER],
                                     "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert response.status_code == 400 and "nope" in response.json()["message"]


def test_a_model_without_function_calling_refuses_tools(offline_server):
    response = post(offline_server, {"model": "voxtral-mini-2507", "messages": user("weather?"), "tools": [WEATHER]})
    assert response.status_code == 400 and "cannot call functions" in response.json()["message"]


# --- results come back -------------------------------------------------------------------------------

def test_the_answer_after_results_quotes_them_with_their_arguments(sdk):
    first = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("What's the weather in Paris and Berlin?"))
    calls = first.choices[0].message.tool_calls
    results = [{"role": "tool", "name": "get_weather", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'},
               {"role": "tool", "name": "get_weather", "tool_call_id": calls[1].id, "content": '{"temp_c": 11}'}]
    messages = [*user("What's the weather in Paris and Berlin?"),
                {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]}, *results]
    final = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=messages)
    text = final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.tool_calls is None
    assert "get_weather(city='Paris')` returned: {\"temp_c\": 18}" in text
    assert "get_weather(city='Berlin')` returned: {\"temp_c\": 11}" in text


# --- the hosted API's checks --------------------------------------------------------------------------

def history(calls, results):
    return [*user("weather?"), {"role": "assistant", "content": "", "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}} for i in calls]},
        *[{"role": "tool", "name": "get_weather", "tool_call_id": i, "content": "sunny"} for i in results]]


MISMATCH = ("Not the same number of function calls and responses", "invalid_request_error", "3230")
BROKEN_RULES = {
    "bad-call-id": (["call_1234"], ["call_1234"], "Tool call id was call_1234 but must be a-z, A-Z, 0-9, "
                    "with a length of 9.", "invalid_function_call", "3280"),
    "bad-result-id": (["abcDEF123"], ["abc"], "Tool call id was abc but must be a-z, A-Z, 0-9, with a length "
                      "of 9.", "invalid_function_call", "3280"),
    "unanswered": (["abcDEF123", "xyzXYZ789"], ["abcDEF123"], *MISMATCH),
    "first-unanswered": (["abcDEF123", "xyzXYZ789"], ["xyzXYZ789"], *MISMATCH),
    "one-of-three-unanswered": (["abcDEF123", "xyzXYZ789", "qrsQRS456"], ["qrsQRS456", "abcDEF123"], *MISMATCH),
    "answered-twice": (["abcDEF123"], ["abcDEF123", "abcDEF123"], *MISMATCH),
    "unknown-id": (["abcDEF123"], ["zzzZZZ999"], "Tool message answers tool call id zzzZZZ999, but no assistant "
                   "message made a call", "invalid_request_error", "3230"),
}


def refused_step(server, calls, results):
    return post(server, {"messages": history(calls, results), "tools": [WEATHER]})


# The status, message and code need no spec: checked on their own, they can never be skipped
# with it; the body's shape against the spec is the next test's.
@pytest.mark.parametrize("calls, results, message, kind, code", BROKEN_RULES.values(), ids=BROKEN_RULES)
def test_tool_messages_that_break_the_rules_are_refused(offline_server, calls, results, message, kind, code):
    response = refused_step(offline_server, calls, results)
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith(message) and body["type"] == kind and body["code"] == code


def test_tool_step_refusals_have_the_apis_error_shape(offline_server, check_error):
    for calls, results, *_ in BROKEN_RULES.values():
        check_error(refused_step(offline_server, calls, results), "/v1/chat/completions", "post")


def test_every_call_answered_in_any_order_is_accepted(offline_server):
    response = refused_step(offline_server, ["abcDEF123", "xyzXYZ789", "qrsQRS456"],
                            ["qrsQRS456", "abcDEF123", "xyzXYZ789"])
    assert response.status_code == 200, response.text


def test_an_unanswered_call_followed_by_a_user_message_is_refused(offline_server):
    messages = [*history(["abcDEF123"], []), *user("and tomorrow?")]
    response = post(offline_server, {"messages": messages, "tools": [WEATHER]})
    assert response.status_code == 400
    assert response.json()["message"] == "Not the same number of function calls and responses"


def test_a_tool_message_without_a_call_is_refused(offline_server):
    messages = [*user("hi"), {"role": "tool", "name": "get_weather", "tool_call_id": "abcDEF123", "content": "x"}]
    response = post(offline_server, {"messages": messages})
    assert response.status_code == 400
    assert response.json()["message"] == "Not the same number of function calls and responses"


# --- which tools, and arguments that fit the whole schema (issue 24) -------------------------------

def test_only_the_tools_the_prompt_is_about_are_called(sdk):
    offered = [WEATHER, DESCRIBE, HIST, CONVERT]
    weather = sdk.chat.complete(model=MODEL, tools=offered, messages=user("What's the weather in Paris?"))
    assert calls_of(weather) == [("get_weather", {"city": "Paris"})]
    both = sdk.chat.complete(model=MODEL, tools=offered, messages=user(
        "Describe the price column, then plot its histogram with 12 bins."))
    assert calls_of(both) == [("describe_column", {"column": "price"}), ("plot_hist", {"column": "price", "bins": 12})]
    numbers = [tool("add", "Add two integers.", {"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"]),
               tool("multiply", "Multiply two integers.", {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    ["a", "b"])]
    assert calls_of(sdk.chat.complete(model=MODEL, tools=numbers, messages=user("Multiply 6 by 7"))) == [
        ("multiply", {"a": 6, "b": 7})]


def test_nested_parameters_get_objects_that_validate(sdk):
    from jsonschema import Draft202012Validator
    from pydantic import BaseModel, create_model

    class Person(BaseModel):
        name: str
        age: int
        email: str

    parameters = create_model("save_users", users=(list[Person], ...)).model_json_schema()
    assert "$defs" in parameters  # the README's case: a list of pydantic models
    save = {"type": "function", "function": {"name": "save_users", "description": "Save users to the database",
                                             "parameters": parameters}}
    response = sdk.chat.complete(model=MODEL, tools=[save], messages=user(
        "Save these users:\n- Alice Smith, 31, alice@example.com\n- Bob Jones, 45, bob@example.com"))
    [(name, args)] = calls_of(response)
    Draft202012Validator(parameters).validate(args)
    assert args == {"users": [{"name": "Alice Smith", "age": 31, "email": "alice@example.com"},
                              {"name": "Bob Jones", "age": 45, "email": "bob@example.com"}]}


def answered(first_call, content):
    call = first_call.choices[0].message.tool_calls[0]
    return [{"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
            {"role": "tool", "name": call.function.name, "tool_call_id": call.id, "content": content}]


def test_a_forced_choice_moves_on_to_a_tool_not_yet_called(sdk):
    output = tool("final_result", "The final response which ends this conversation",
                  {"city": {"type": "string"}, "temp_c": {"type": "number"}}, ["city", "temp_c"])
    ask = user("What is the weather in Oslo?")
    first = sdk.chat.complete(model=MODEL, tools=[WEATHER, output], tool_choice="required", messages=ask)
    assert calls_of(first) == [("get_weather", {"city": "Oslo"})]  # the output tool comes last
    then = sdk.chat.complete(model=MODEL, tools=[WEATHER, output], tool_choice="required",
                             messages=[*ask, *answered(first, '{"temp_c": -3.5}')])
    assert calls_of(then) == [("final_result", {"city": "Oslo", "temp_c": -3.5})]  # the result's number
    # Without an output tool, the other tool: never the same call again and again.
    plain = sdk.chat.complete(model=MODEL, tools=[WEATHER, DESCRIBE], tool_choice="any", messages=ask)
    again = sdk.chat.complete(model=MODEL, tools=[WEATHER, DESCRIBE], tool_choice="any",
                              messages=[*ask, *answered(plain, "sunny")])
    assert [name for name, _ in calls_of(again)] == ["describe_column"]
