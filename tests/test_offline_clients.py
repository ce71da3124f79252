"""Clients no one here wrote, run against the offline server: the SDK's function-calling example
flow, pydantic-ai, instructor, langchain and the OpenAI client, each as its users write it."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

MODEL = "mistral-small-latest"


class User(BaseModel):
    name: str
    age: int
    email: str


class CityInfo(BaseModel):
    city: str
    temperature_c: float


# --- the SDK's own example: examples/mistral/chat/function_calling.py ---------------------------

PAYMENTS = {"T1001": ("Paid", "2021-10-05"), "T1002": ("Unpaid", "2021-10-06")}


def payment_tool(name: str, what: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": f"Get payment {what} of a transaction id",
        "parameters": {"type": "object", "required": ["transaction_id"],
                       "properties": {"transaction_id": {"type": "string", "description": "The transaction id."}}}}}


def test_the_sdk_function_calling_example_runs_to_its_answer(sdk):
    tools = [payment_tool("retrieve_payment_status", "status"), payment_tool("retrieve_payment_date", "date")]
    run = {"retrieve_payment_status": lambda transaction_id: json.dumps({"status": PAYMENTS[transaction_id][0]}),
           "retrieve_payment_date": lambda transaction_id: json.dumps({"date": PAYMENTS[transaction_id][1]})}
    messages = [{"role": "user", "content": "What's the status of my transaction?"}]
    first = sdk.chat.complete(model=MODEL, messages=messages, tools=tools, temperature=0).choices[0].message
    # No transaction id yet: a model asks for it rather than call with a made-up one.
    assert not first.tool_calls and "transaction id" in first.content
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": "My transaction ID is T1001."}]
    second = sdk.chat.complete(model=MODEL, messages=messages, tools=tools, temperature=0).choices[0].message
    # One call, the one the conversation is about: the example answers only the first call.
    assert [(c.function.name, json.loads(c.function.arguments)) for c in second.tool_calls] == [
        ("retrieve_payment_status", {"transaction_id": "T1001"})]
    call = second.tool_calls[0]
    messages += [{"role": "assistant", "content": second.content, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "name": call.function.name, "tool_call_id": call.id,
                  "content": run[call.function.name](**json.loads(call.function.arguments))}]
    final = sdk.chat.complete(model=MODEL, messages=messages, tools=tools, temperature=0).choices[0]
    assert final.finish_reason == "stop" and not final.message.tool_calls and "Paid" in final.message.content


# --- pydantic-ai ----------------------------------------------------------------------------------

def run_agent(server, build, prompt: str):
    """`build(model)`'s agent run on `prompt`, on a client closed afterwards (run_sync keeps its loop open)."""
    from mistralai.client import Mistral
    from pydantic_ai.models.mistral import MistralModel
    from pydantic_ai.providers.mistral import MistralProvider
    from pydantic_ai.usage import UsageLimits

    async def run():
        async with Mistral(api_key=server.api_key, server_url=server.url) as client:
            agent = build(MistralModel(MODEL, provider=MistralProvider(mistral_client=client)))
            return await agent.run(prompt, usage_limits=UsageLimits(request_limit=4))

    return asyncio.run(run())


def test_a_pydantic_ai_agent_calls_its_tool_then_ends_with_its_structured_output(offline_server):
    from pydantic_ai import Agent

    asked = []

    def build(model):
        agent = Agent(model, output_type=CityInfo)

        @agent.tool_plain
        def get_temperature(city: str) -> float:
            """Current temperature in Celsius for a city."""
            asked.append(city)
            return 21.5

        return agent

    result = run_agent(offline_server, build, "What is the temperature in Lyon?")
    # The output tool is a required choice: after the tool's result the model calls it, once.
    assert asked == ["Lyon"] and result.output == CityInfo(city="Lyon", temperature_c=21.5)
    assert result.usage.requests == 2


def test_a_pydantic_ai_prompted_output_is_json_with_the_schemas_keys(offline_server):
    from pydantic_ai import Agent, PromptedOutput

    result = run_agent(offline_server, lambda model: Agent(model, output_type=PromptedOutput(User)),
                       "Ada Lovelace is 36, her address is ada@example.com.")
    assert result.output == User(name="Ada Lovelace", age=36, email="ada@example.com")


# --- instructor ------------------------------------------------------------------------------------

@pytest.fixture
def instructed(sdk):
    import instructor

    return lambda mode: instructor.from_mistral(sdk, mode=mode)


@pytest.mark.parametrize("mode", ["TOOLS", "MD_JSON", "JSON_SCHEMA"])
def test_instructor_fills_a_model_in_each_mode(instructed, mode):
    import instructor

    client = instructed(getattr(instructor.Mode, mode))
    user = client.create(model=MODEL, response_model=User, max_retries=0, messages=[
        {"role": "user", "content": "Extract: Grace Hopper is 85 years old, grace@example.com"}])
    assert user.model_dump() == {"name": "Grace Hopper", "age": 85, "email": "grace@example.com"}


def test_instructor_create_iterable_gives_one_record_per_person(instructed):
    import instructor

    client = instructed(instructor.Mode.TOOLS)
    users = list(client.create_iterable(model=MODEL, response_model=User, max_retries=0, messages=[
        {"role": "user", "content": "Alice is 31, alice@example.com.\nBob is 45, bob@example.com."}]))
    assert [u.model_dump() for u in users] == [{"name": "Alice", "age": 31, "email": "alice@example.com"},
                                               {"name": "Bob", "age": 45, "email": "bob@example.com"}]


# --- langchain --------------------------------------------------------------------------------------

@pytest.fixture
def chat_model(offline_server):
    from langchain_mistralai import ChatMistralAI

    model = ChatMistralAI(model=MODEL, api_key=offline_server.api_key, endpoint=offline_server.url + "/v1",
                          max_retries=0, temperature=0)
    yield model
    model.client.close()


def test_langchain_bind_tools_calls_the_tool_asked_for_and_answers_with_its_result(chat_model):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    bound = chat_model.bind_tools([add, multiply])
    messages = [HumanMessage("Multiply 6 by 7")]
    reply = bound.invoke(messages)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("multiply", {"a": 6, "b": 7})]
    call = reply.tool_calls[0]
    messages += [reply, ToolMessage(str(multiply.invoke(call["args"])), tool_call_id=call["id"])]
    final = bound.invoke(messages)
    assert not final.tool_calls and "42" in final.content
    # Nothing a tool does: an answer in text.
    assert not bound.invoke([HumanMessage("Write a haiku about tea")]).tool_calls


def test_langchain_json_mode_gives_the_keys_the_prompt_names(chat_model):
    class Joke(BaseModel):
        setup: str
        punchline: str

    structured = chat_model.with_structured_output(Joke, method="json_mode")
    joke = structured.invoke("Tell me a joke about cats, respond in JSON with `setup` and `punchline` keys")
    assert isinstance(joke, Joke) and joke.setup and joke.punchline


# --- the OpenAI client ---------------------------------------------------------------------------------

def test_the_openai_client_reads_base64_embeddings(offline_server, sdk):
    import numpy as np
    from openai import OpenAI

    texts = ["a refund for a damaged order", "the weather in Lyon"]
    with OpenAI(api_key=offline_server.api_key, base_url=offline_server.url + "/v1", max_retries=0) as client:
        # The OpenAI client asks for base64 unless told otherwise, and decodes float32 from it.
        packed = client.embeddings.create(model="mistral-embed", input=texts)
        plain = client.embeddings.create(model="mistral-embed", input=texts, encoding_format="float")
    floats = [d.embedding for d in sdk.embeddings.create(model="mistral-embed", inputs=texts).data]
    assert [len(d.embedding) for d in packed.data] == [1024, 1024]
    assert np.allclose([d.embedding for d in packed.data], floats, atol=1e-6)
    assert np.allclose([d.embedding for d in plain.data], floats)
