"""The offline server's chat, FIM, embeddings and models, through the official SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import re

import httpx
import pytest
from jsonschema import Draft202012Validator
from mistralai.client import errors
from pydantic import BaseModel

from mistral_magic.money import tokens

MODEL = "mistral-small-latest"


def user(text):
    return [{"role": "user", "content": text}]


def raw(server, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {server.api_key}", **kwargs.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


# --- auth and validation ---------------------------------------------------------------

def test_missing_or_wrong_key_is_401(offline_server):
    from mistralai.client import Mistral

    for key in ("wrong", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(offline_server.url + "/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": "Unauthorized"}  # the hosted API's body
    with pytest.raises(errors.SDKError) as caught:
        Mistral(api_key="wrong", server_url=offline_server.url).models.list()
    assert caught.value.status_code == 401


def test_invalid_body_is_422_with_detail(offline_server, sdk):
    response = raw(offline_server, "POST", "/v1/chat/completions",
                   json={"model": MODEL, "messages": user("hi"), "temperature": 9, "bogus": 1})
    assert response.status_code == 422
    detail = response.json()["detail"]
    locs = {tuple(d["loc"]) for d in detail}
    assert ("body", "temperature") in locs and ("body", "bogus") in locs
    assert all(d["msg"] and d["type"] for d in detail)
    bad_json = raw(offline_server, "POST", "/v1/chat/completions", content=b"{nope")
    assert bad_json.status_code == 422
    with pytest.raises(errors.HTTPValidationError) as caught:
        sdk.chat.complete(model=MODEL, messages=[])
    assert caught.value.data.detail[0].loc == ["body", "messages"]


def test_unknown_model_is_invalid_model(offline_server, sdk):
    response = raw(offline_server, "POST", "/v1/chat/completions", json={"model": "xyz", "messages": user("hi")})
    assert response.status_code == 400
    body = response.json()
    assert {k: body[k] for k in ("object", "type", "param", "code")} == {
        "object": "error", "type": "invalid_model", "param": None, "code": "1500"}
    # The hosted message first, then why offline; how to list models is the client's to say.
    assert body["message"] == "Invalid model: xyz (not in the offline catalogue)"
    with pytest.raises(errors.SDKError) as caught:
        sdk.embeddings.create(model=MODEL, inputs=["chat models do not embed"])
    assert caught.value.status_code == 400
    assert "cannot embed text" in caught.value.body and "mistral-embed" in caught.value.body


# --- models ------------------------------------------------------------------------------

def test_models_catalogue_has_ids_aliases_and_capabilities(sdk):
    cards = {card.id: card for card in sdk.models.list().data}
    for name in ("mistral-large-2512", "mistral-large-latest", "mistral-medium-3-5", "mistral-medium-latest",
                 "mistral-small-2603", "mistral-small-latest", "ministral-8b-2512", "ministral-3b-latest",
                 "codestral-2508", "codestral-latest", "mistral-embed", "codestral-embed",
                 "mistral-moderation-latest", "mistral-ocr-latest"):
        assert name in cards, name
    small = cards["mistral-small-2603"]
    assert small.capabilities.completion_chat and small.capabilities.function_calling and small.capabilities.vision
    assert "mistral-small-latest" in small.aliases and small.max_context_length == 262144
    assert cards["codestral-latest"].capabilities.completion_fim
    assert cards["mistral-moderation-2603"].capabilities.moderation
    card = sdk.models.retrieve(model_id="mistral-large-latest")
    assert card.id == "mistral-large-latest" and "mistral-large-2512" in card.aliases and card.type == "base"


def test_unknown_model_card_is_404(offline_server):
    assert raw(offline_server, "GET", "/v1/models/not-a-model").status_code == 404


# --- chat: text ------------------------------------------------------------------------------

def test_answer_is_labelled_markdown_about_the_prompt(sdk):
    prompt = "Explain how photosynthesis converts sunlight in chloroplasts"
    answer = sdk.chat.complete(model=MODEL, messages=user(prompt))
    text = answer.choices[0].message.content
    assert text.startswith(f"*Offline answer from {MODEL}")
    assert "\n## " in text and "\n- " in text
    assert "photosynthesis" in text and "chloroplasts" in text
    assert "```" not in text
    assert answer.model == MODEL and answer.choices[0].finish_reason == "stop"


def test_code_requests_get_a_valid_python_function(sdk):
    text = sdk.chat.complete(model=MODEL, messages=user("Write a python function to merge sorted lists")).choices[0].message.content
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(code, "offline", "exec"), namespace)
    assert any(callable(v) for k, v in namespace.items() if not k.startswith("__"))


def test_history_is_referred_back_to(sdk):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is a Fourier transform?"},
        {"role": "assistant", "content": "A change of basis."},
        {"role": "user", "content": "And the inverse?"},
    ]
    text = sdk.chat.complete(model=MODEL, messages=messages).choices[0].message.content
    assert "Following up on your earlier question about “What is a Fourier transform?”" in text
    assert "inverse" in text


def test_images_and_chunk_lists_are_accepted(sdk):
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Describe this lighthouse picture"},
        {"type": "image_url", "image_url": pixel},
        {"type": "image_url", "image_url": {"url": pixel, "detail": "low"}},
    ]}]
    answer = sdk.chat.complete(model=MODEL, messages=messages)
    assert "lighthouse" in answer.choices[0].message.content
    assert "2 images received" in answer.choices[0].message.content
    assert answer.usage.prompt_tokens == tokens.count_messages(messages)


def test_same_seed_same_answer_other_seed_other_wording(sdk):
    ask = {"model": MODEL, "messages": user("Compare rivers and lakes for kayaking")}
    first = sdk.chat.complete(**ask, random_seed=1).choices[0].message.content
    assert sdk.chat.complete(**ask, random_seed=1).choices[0].message.content == first
    assert sdk.chat.complete(**ask, random_seed=2).choices[0].message.content != first
    # Greedy decoding does not sample: temperature 0 ignores the seed.
    cold = [sdk.chat.complete(**ask, random_seed=s, temperature=0).choices[0].message.content for s in (1, 2)]
    assert cold[0] == cold[1]


def test_max_tokens_cuts_with_length(sdk):
    answer = sdk.chat.complete(model=MODEL, messages=user("Tell me about volcanoes"), max_tokens=7)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == tokens.count_text(answer.choices[0].message.content) <= 7


def test_stop_cuts_before_the_stop_string(sdk):
    answer = sdk.chat.complete(model=MODEL, messages=user("Tell me about glaciers"), stop=["##"])
    text = answer.choices[0].message.content
    assert "##" not in text and text.startswith("*Offline answer")
    assert answer.choices[0].finish_reason == "stop"
    listed = sdk.chat.complete(model=MODEL, messages=user("Tell me about glaciers"), stop="Offline")
    assert listed.choices[0].message.content == "*"


def test_prefix_continues_the_assistant_message(sdk):
    messages = [*user("Name a colour"), {"role": "assistant", "content": "My answer:", "prefix": True}]
    text = sdk.chat.complete(model=MODEL, messages=messages).choices[0].message.content
    assert text.startswith("My answer: *Offline answer")


def test_assistant_last_without_prefix_is_refused(offline_server):
    messages = [*user("hi"), {"role": "assistant", "content": "hello"}]
    response = raw(offline_server, "POST", "/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert response.status_code == 400


def test_usage_matches_the_shared_tokenizer(sdk):
    messages = [{"role": "system", "content": "Be brief."}, *user("What is entropy?")]
    answer = sdk.chat.complete(model=MODEL, messages=messages)
    assert answer.usage.prompt_tokens == tokens.count_messages(messages)
    assert answer.usage.completion_tokens == tokens.count_text(answer.choices[0].message.content)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_n_gives_several_choices(offline_server):
    body = raw(offline_server, "POST", "/v1/chat/completions",
               json={"model": MODEL, "messages": user("Suggest a name for a cat"), "n": 2}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]


# --- chat: streaming -----------------------------------------------------------------------

def test_stream_matches_the_whole_answer(sdk):
    ask = {"model": MODEL, "messages": user("Describe the water cycle"), "random_seed": 3}
    whole = sdk.chat.complete(**ask)
    events = list(sdk.chat.stream(**ask))
    chunks = [e.data for e in events]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    # One chunk per token piece, plus the role chunk.
    assert len(chunks) == len(tokens.pieces(whole.choices[0].message.content)) + 1


def test_raw_stream_frames_are_exact(offline_server):
    body = {"model": MODEL, "messages": user("hello"), "stream": True, "max_tokens": 4}
    with httpx.stream("POST", offline_server.url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {offline_server.api_key}"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "x-model-deprecation-timestamp" not in response.headers
        text = response.read().decode()
    frames = text.split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    chunks = [json.loads(f[len("data: "):]) for f in frames[:-2]]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == MODEL
        assert set(chunk) >= {"id", "created", "choices"} and "finish_reason" in chunk["choices"][0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert "usage" not in chunks[-2]


def test_async_complete_and_stream(sdk):
    async def go():
        async with sdk:  # closes the async pool inside the loop that owns its connections
            whole = await sdk.chat.complete_async(model=MODEL, messages=user("Summarise async IO"),
                                                  random_seed=5)
            parts = []
            async for event in await sdk.chat.stream_async(
                model=MODEL, messages=user("Summarise async IO"), random_seed=5
            ):
                parts.append(event.data.choices[0].delta.content or "")
        return whole.choices[0].message.content, "".join(parts)

    whole, streamed = asyncio.run(go())
    assert whole == streamed


# --- chat: JSON and schemas --------------------------------------------------------------------

def test_json_object_mode_gives_records_for_lists(sdk):
    answer = sdk.chat.complete(model=MODEL, response_format={"type": "json_object"},
                               messages=user("List 3 French cheeses as JSON with fields name, region"))
    data = json.loads(answer.choices[0].message.content)
    # A list when a list is asked for (it was {"items": [...]} before issue 24).
    assert isinstance(data, list) and len(data) == 3
    assert all(set(item) == {"name", "region"} for item in data)
    fruits = json.loads(sdk.chat.complete(model=MODEL, response_format={"type": "json_object"}, messages=user(
        "Name three fruits with their name and color")).choices[0].message.content)
    assert isinstance(fruits, list) and len(fruits) == 3 and all(set(f) == {"name", "color"} for f in fruits)
    plain = json.loads(sdk.chat.complete(model=MODEL, response_format={"type": "json_object"},
                                         messages=user("What is the capital of Peru?")).choices[0].message.content)
    assert isinstance(plain, dict) and plain


def json_answer(sdk, messages, **options):
    return sdk.chat.complete(model=MODEL, messages=messages, **options).choices[0].message.content


def test_json_mode_writes_the_keys_and_the_schema_the_prompt_gives(sdk):
    mode = {"response_format": {"type": "json_object"}}
    joke = json.loads(json_answer(sdk, user("Tell me a joke about cats, respond in JSON with `setup` and "
                                            "`punchline` keys"), **mode))
    assert set(joke) == {"setup", "punchline"} and all(isinstance(v, str) and v for v in joke.values())
    assert set(json.loads(json_answer(sdk, user("Return JSON with the fields: title, year"), **mode))) == {
        "title", "year"}
    assert json.loads(json_answer(sdk, user('Give the product of 17 and 23 as {"product": n}.'), **mode)).keys() == {
        "product"}
    # A JSON Schema in the instructions (instructor's and pydantic-ai's prompted modes) is filled.
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    system = {"role": "system", "content": f"Answer with JSON matching this schema:\n{json.dumps(schema)}"}
    assert json.loads(json_answer(sdk, [system, *user("Grace Hopper is 85.")], **mode)) == {
        "name": "Grace Hopper", "age": 85}


def test_json_asked_for_in_the_prompt_comes_back_as_json(sdk):
    bare = json_answer(sdk, user("Respond in JSON with `city` and `country` keys: Lyon is in France."))
    assert json.loads(bare) == {"city": "Lyon", "country": "France"}
    fenced = json_answer(sdk, user("Return the person as JSON within a ```json codeblock: Ada Lovelace"))
    assert fenced.startswith("```json\n") and fenced.endswith("\n```")
    assert isinstance(json.loads(fenced[8:-4]), dict)
    assert "Offline answer" in json_answer(sdk, user("Explain what JSON is"))  # about JSON is not asking for it


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "seen": {"type": "string", "format": "date-time"},
        "member": {"type": "boolean"},
        "level": {"enum": ["junior", "senior", "lead"]},
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "address": {"$ref": "#/$defs/Address"},
        "contact": {"oneOf": [{"type": "string", "format": "email"}, {"type": "integer"}]},
    },
    "required": ["name", "age", "city", "born", "seen", "member", "level", "nickname", "score", "tags",
                 "address", "contact"],
    "additionalProperties": False,
    "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string"}},
                          "required": ["street"], "additionalProperties": False}},
}


def _schema_format(schema, name="person"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def test_json_schema_answer_validates_and_uses_the_text(sdk):
    text = "Alice Martin is 34, a senior engineer living in Lyon, born 1990-05-04. She is a member."
    answer = sdk.chat.complete(model=MODEL, messages=user(text), response_format=_schema_format(PERSON))
    data = json.loads(answer.choices[0].message.content)
    Draft202012Validator(PERSON).validate(data)
    assert data["name"] == "Alice Martin" and data["age"] == 34 and data["city"] == "Lyon"
    assert data["born"] == "1990-05-04" and data["level"] == "senior" and data["member"] is True


def test_many_records_one_per_line(sdk):
    schema = {"type": "object", "additionalProperties": False, "required": ["items"],
              "properties": {"items": {"type": "array", "items": {
                  "type": "object", "additionalProperties": False, "required": ["name", "age"],
                  "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}}}
    text = "Bob Stone, 40\nCarla Diaz is 25\nDan Wu, age: 61"
    data = json.loads(sdk.chat.complete(model=MODEL, messages=user(text),
                                        response_format=_schema_format(schema, "people")).choices[0].message.content)
    assert data["items"] == [{"name": "Bob Stone", "age": 40}, {"name": "Carla Diaz", "age": 25},
                             {"name": "Dan Wu", "age": 61}]


def test_chat_parse_gives_a_pydantic_instance(sdk):
    class Book(BaseModel):
        title: str
        year: int
        authors: list[str]

    parsed = sdk.chat.parse(response_format=Book, model=MODEL,
                            messages=user("Title: Dune, year 1965, by Frank Herbert")).choices[0].message.parsed
    assert isinstance(parsed, Book) and parsed.year == 1965 and parsed.title == "Dune"


# --- chat: tools --------------------------------------------------------------------------------

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


def test_auto_calls_the_matching_tool(sdk):
    answer = sdk.chat.complete(model=MODEL, tools=[WEATHER, TIME], tool_choice="auto",
                               messages=user("What's the weather in Paris, in celsius?"))
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == ""
    (call,) = choice.message.tool_calls
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", call.id) and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    Draft202012Validator(WEATHER["function"]["parameters"]).validate(args)
    assert args == {"city": "Paris", "unit": "celsius"}
    calls_json = json.dumps([{"name": "get_weather", "arguments": call.function.arguments}], ensure_ascii=False)
    assert answer.usage.completion_tokens == tokens.count_text(calls_json)


def test_auto_answers_when_no_tool_matches_and_none_never_calls(sdk):
    unrelated = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("Write a haiku about tea"))
    assert unrelated.choices[0].message.tool_calls is None
    never = sdk.chat.complete(model=MODEL, tools=[WEATHER], tool_choice="none", messages=user("weather in Rome?"))
    assert never.choices[0].finish_reason == "stop" and never.choices[0].message.tool_calls is None


def test_any_and_named_choices_force_a_call(sdk):
    forced = sdk.chat.complete(model=MODEL, tools=[WEATHER, TIME], tool_choice="any", messages=user("Hello there"))
    assert forced.choices[0].message.tool_calls
    named = sdk.chat.complete(model=MODEL, tools=[WEATHER, TIME], messages=user("weather please"),
                              tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]


def test_tool_results_are_used_in_the_final_answer(sdk):
    first = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=user("Weather in Oslo?"))
    call = first.choices[0].message.tool_calls[0]
    messages = [*user("Weather in Oslo?"),
                {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
                {"role": "tool", "name": "get_weather", "tool_call_id": call.id, "content": '{"temp_c": -3, "sky": "snow"}'}]
    final = sdk.chat.complete(model=MODEL, tools=[WEATHER], messages=messages)
    text = final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop" and '{"temp_c": -3, "sky": "snow"}' in text
    assert "get_weather" in text and text.startswith("*Offline answer")


def test_streamed_tool_calls_arrive_in_a_delta(sdk):
    chunks = [e.data for e in sdk.chat.stream(model=MODEL, tools=[WEATHER], messages=user("weather in Nice"))]
    calls = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather" and chunks[-1].choices[0].finish_reason == "tool_calls"


# --- FIM and embeddings ----------------------------------------------------------------------------

def test_fim_completes_code_whole_and_streamed(sdk):
    answer = sdk.fim.complete(model="codestral-latest", prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))")
    code = answer.choices[0].message.content
    namespace = {}
    exec("def add(a, b):\n" + code + "\nresult = add(1, 2)", namespace)
    assert namespace["result"] == 3 and "offline" in code
    streamed = "".join(e.data.choices[0].delta.content or "" for e in
                       sdk.fim.stream(model="codestral-latest", prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))"))
    assert streamed == code
    cut = sdk.fim.complete(model="codestral-2508", prompt="def f(x):", max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens <= 3
    with pytest.raises(errors.SDKError):
        sdk.fim.complete(model=MODEL, prompt="def f(x):")


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_unit_deterministic_and_similar_for_similar_texts(sdk):
    texts = ["cat sat on the mat", "a cat on a mat", "quarterly revenue grew"]
    result = sdk.embeddings.create(model="mistral-embed", inputs=texts)
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 1024 and math.isclose(math.sqrt(sum(x * x for x in v)), 1, rel_tol=1e-4) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    assert sdk.embeddings.create(model="mistral-embed", inputs="cat sat on the mat").data[0].embedding == vectors[0]
    assert result.usage.prompt_tokens == sum(tokens.count_text(t) for t in texts)
    code = sdk.embeddings.create(model="codestral-embed", inputs=["def f(): pass"])
    assert len(code.data[0].embedding) == 1536
    small = sdk.embeddings.create(model="codestral-embed", inputs=["x"], output_dimension=256, output_dtype="int8")
    assert len(small.data[0].embedding) == 256 and all(-128 <= v <= 127 for v in small.data[0].embedding)


def test_schema_values_come_from_the_data_not_the_instruction(sdk):
    import json

    schema = {"type": "object", "additionalProperties": False, "required": ["product", "price", "stars"],
              "properties": {"product": {"type": "string"},
                             "price": {"type": "number", "description": "in euros"},
                             "stars": {"type": "integer"}}}
    response = sdk.chat.complete(
        model="mistral-small-latest",
        messages=[{"role": "user", "content":
                   "Extract the fields from this review: Zephyr kettle: 25 euros. 1 star. Broke."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "r", "schema": schema, "strict": True}},
    )
    value = json.loads(response.choices[0].message.content)
    assert value == {"product": "Zephyr", "price": 25, "stars": 1}
