"""The official OpenAI Python SDK streaming through a resumed stream: the
primary cuts its stream after three content chunks, the gateway continues
it on the backup (an OpenAI-compatible mock, then an Anthropic one), and
the SDK sees one coherent stream: one id, one role, one finish, and the
text of the primary's prefix followed by the backup's continuation. The
backup's request holds that prefix as an assistant turn."""
import json
import os
import urllib.request

import openai

SENTENCE = os.environ["RESUME_SENTENCE"]
client = openai.OpenAI(base_url=os.environ["UNDERSTUDY_URL"] + "/v1", api_key="unused")


def control(base, path):
    with urllib.request.urlopen(base + path) as response:
        return json.load(response)


def stream(model):
    chunks = list(
        client.chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say the sentence."}],
        )
    )
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1, [c.id for c in chunks]
    assert len({c.created for c in chunks}) == 1
    deltas = [choice.delta for c in chunks for choice in c.choices]
    assert [d.role for d in deltas if d.role] == ["assistant"], deltas
    finishes = [choice.finish_reason for c in chunks for choice in c.choices if choice.finish_reason]
    assert finishes == ["stop"], finishes
    assert all(choice.index == 0 for c in chunks for choice in c.choices)
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].total_tokens > 0, usage
    return "".join(d.content or "" for d in deltas)


def assistant_turn(backup):
    """The last assistant turn of the backup's last request, as text."""
    request = control(backup, "/__mock/last-request")["body"]
    turns = [m for m in request["messages"] if m["role"] == "assistant"]
    assert len(turns) == 1, request
    content = turns[0]["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content)


for model, backup in (
    ("resume-openai", os.environ["MOCK_RESUME_OPENAI"]),
    ("resume-anthropic", os.environ["MOCK_RESUME_ANTHROPIC"]),
):
    before = control(backup, "/__mock/stats")["chat_requests"]
    text = stream(model)
    assert text == SENTENCE, (model, text)
    prefix = assistant_turn(backup)
    assert prefix and SENTENCE.startswith(prefix) and prefix != SENTENCE, (model, prefix)
    # Three of eight near-equal chunks of the sentence came from the
    # primary.
    assert len(prefix) == 18, (model, prefix)
    assert control(backup, "/__mock/stats")["chat_requests"] == before + 1
    print(f"{model}: primary sent {prefix!r}, the backup continued; the SDK saw one stream")
print("resume: OK")
