"""The official OpenAI Python SDK against the gateway's embedded demo, unchanged."""
import os
import sys

import openai

client = openai.OpenAI(base_url=os.environ["UNDERSTUDY_URL"] + "/v1", api_key="unused")

served = set()
for _ in range(6):
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    provider = raw.headers.get("x-understudy-provider")
    served.add(provider)
    assert completion.choices[0].message.content == f"Hello from {provider}.", completion
# The demo's primary fails its first request: the backup answered at least once.
assert "backup" in served, served

text = ""
usage = None
for chunk in client.chat.completions.create(
    model="chat",
    messages=[{"role": "user", "content": "hi"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
assert text.startswith("Hello from "), text
assert usage is not None and usage.total_tokens > 0, usage

try:
    client.chat.completions.create(model="no-such-route", messages=[])
    sys.exit("an unknown model was accepted")
except openai.NotFoundError as error:
    assert "chat" in error.body["message"], error.body

assert [m.id for m in client.models.list()] == ["chat"]
print("python openai", openai.__version__, "ok: served by", sorted(served), "streamed", repr(text))
