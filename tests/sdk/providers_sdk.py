"""The official OpenAI Python SDK against the gateway in front of four mock
providers, each speaking its own wire format (Azure OpenAI, AWS Bedrock
Converse, Google Gemini, Anthropic): every kind serves text, streams, tool
calls and structured output in OpenAI's shape, and a failing provider falls
over to the next kind."""
import json
import os
import urllib.request

import openai

client = openai.OpenAI(base_url=os.environ["UNDERSTUDY_URL"] + "/v1", api_key="unused")
MOCKS = {kind: os.environ[f"MOCK_{kind.upper()}"] for kind in ("azure", "bedrock", "gemini", "anthropic")}
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "mock", "schema": {"type": "object", "properties": {"mock": {"type": "boolean"}}}},
}


def fault(kind, spec):
    request = urllib.request.Request(
        MOCKS[kind] + "/__mock/faults", data=json.dumps(spec).encode(), method="POST",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request).read()


def ask(model, **extra):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)
    return raw.headers.get("x-understudy-provider"), raw.parse()


def stream(model, **extra):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **extra
    )
    text, calls, finish, usage = "", {}, None, None
    for chunk in raw.parse():
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                if call.function.name:
                    entry["name"] = call.function.name
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return raw.headers.get("x-understudy-provider"), text, calls, finish, usage


for kind in MOCKS:
    provider, completion = ask(kind)
    assert provider == kind, provider
    assert completion.choices[0].message.content == f"Hello from {kind}.", completion
    assert completion.choices[0].finish_reason == "stop", completion
    assert completion.usage.total_tokens > 0, completion

    provider, text, _, finish, usage = stream(kind)
    assert (provider, text, finish) == (kind, f"Hello from {kind}.", "stop"), (provider, text, finish)
    assert usage is not None and usage.total_tokens > 0, usage

    forced = {"type": "function", "function": {"name": "get_weather"}}
    _, completion = ask(kind, tools=[WEATHER], tool_choice=forced)
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather", completion
    assert json.loads(call.function.arguments) == {"mock": True}, call
    assert completion.choices[0].finish_reason == "tool_calls", completion

    _, _, calls, finish, _ = stream(kind, tools=[WEATHER], tool_choice=forced)
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"mock": True}, calls
    assert finish == "tool_calls", finish

    # Structured output: Anthropic and Bedrock answer through a forced tool
    # whose input is the content; OpenAI-shaped and Gemini servers take the
    # schema natively (the mocks then answer their usual text).
    _, completion = ask(kind, response_format=SCHEMA)
    content = completion.choices[0].message.content
    assert not completion.choices[0].message.tool_calls, completion
    if kind in ("anthropic", "bedrock"):
        assert json.loads(content) == {"mock": True}, content
        _, text, calls, finish, _ = stream(kind, response_format=SCHEMA)
        assert (json.loads(text), calls, finish) == ({"mock": True}, {}, "stop"), (text, calls, finish)
    else:
        assert content == f"Hello from {kind}.", content

# Azure answers 429: Bedrock serves, streaming and not.
fault("azure", "status:429")
provider, completion = ask("chain")
assert provider == "bedrock", provider
assert completion.choices[0].message.content == "Hello from bedrock.", completion
provider, text, _, _, _ = stream("chain")
assert (provider, text) == ("bedrock", "Hello from bedrock."), (provider, text)

# Bedrock throttles: Gemini serves.
fault("bedrock", "status:429")
provider, completion = ask("bedrock-first")
assert provider == "gemini", provider
provider, text, _, _, _ = stream("bedrock-first")
assert (provider, text) == ("gemini", "Hello from gemini."), (provider, text)

# Gemini fails too: the chain ends at Anthropic.
fault("gemini", "status:503")
provider, completion = ask("chain")
assert provider == "anthropic", provider
assert completion.choices[0].message.content == "Hello from anthropic.", completion

print("python openai", openai.__version__, "ok: azure, bedrock, gemini, anthropic served; chain fell over to bedrock, gemini, anthropic")
