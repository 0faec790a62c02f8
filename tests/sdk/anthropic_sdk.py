"""The official Anthropic Python SDK against the gateway's /v1/messages, the
route's primary failing with 503: served once by an Anthropic provider
(natively) and once by an OpenAI-compatible one (translated), streaming and
not, with a tool round trip; then the official OpenAI SDK's embeddings call
falling over past a provider without embeddings and a failing primary."""
import json
import os

import anthropic
import openai

URL = os.environ["UNDERSTUDY_URL"]
client = anthropic.Anthropic(base_url=URL, api_key="caller-key")
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

for route, backup in (("msg-anthropic", "anthropic"), ("msg-openai", "openai")):
    raw = client.messages.with_raw_response.create(
        model=route, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers.get("x-understudy-provider") == backup, raw.headers
    assert raw.headers.get("x-understudy-attempts") == "2", raw.headers
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant", message
    assert message.content[0].text == f"Hello from {backup}.", message
    assert message.stop_reason == "end_turn", message
    assert message.usage.output_tokens > 0, message

    with client.messages.stream(
        model=route, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"Hello from {backup}.", text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0, final

    # A tool round trip: the forced tool is called, its result sent back.
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    message = client.messages.create(
        model=route, max_tokens=64, messages=asked, tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert message.stop_reason == "tool_use", message
    call = next(block for block in message.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"mock": True}, call
    with client.messages.stream(
        model=route, max_tokens=64, messages=asked, tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        streamed = stream.get_final_message()
    streamed_call = next(block for block in streamed.content if block.type == "tool_use")
    assert streamed_call.input == {"mock": True} and streamed.stop_reason == "tool_use", streamed
    answer = client.messages.create(
        model=route, max_tokens=64, tools=[WEATHER],
        messages=asked + [
            {"role": "assistant", "content": [block.model_dump() for block in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}]},
        ],
    )
    assert answer.content[0].text == f"Hello from {backup}.", answer

# An unknown route: Anthropic's error shape, which the SDK raises as NotFoundError.
try:
    client.messages.create(model="no-such-route", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("an unknown route was accepted")
except anthropic.NotFoundError as error:
    assert error.body["error"]["type"] == "not_found_error", error.body

models = client.models.list()
assert "msg-anthropic" in [model.id for model in models.data], models

# Embeddings with the OpenAI SDK (which asks for base64 by default).
oai = openai.OpenAI(base_url=URL + "/v1", api_key="unused")
raw = oai.embeddings.with_raw_response.create(model="embed", input=["one", "two"])
assert raw.headers.get("x-understudy-provider") == "openai", raw.headers
embeddings = raw.parse()
assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 8, embeddings
floats = oai.embeddings.create(model="embed", input="one", encoding_format="float", dimensions=4)
assert len(floats.data[0].embedding) == 4, floats

print("python anthropic", anthropic.__version__, "ok: messages served by anthropic and openai after a 503; embeddings fell over")
