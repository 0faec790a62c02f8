// The official OpenAI Node SDK against the gateway's embedded demo, unchanged.
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.env.UNDERSTUDY_URL + "/v1", apiKey: "unused" });

const { data: completion, response } = await client.chat.completions
  .create({ model: "chat", messages: [{ role: "user", content: "hi" }] })
  .withResponse();
const provider = response.headers.get("x-understudy-provider");
assert.equal(completion.choices[0].message.content, `Hello from ${provider}.`);

const stream = await client.chat.completions.create({
  model: "chat",
  stream: true,
  messages: [{ role: "user", content: "hi" }],
});
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
assert.match(text, /^Hello from (primary|backup)\.$/);

await assert.rejects(
  client.chat.completions.create({ model: "no-such-route", messages: [] }),
  (error) => error.status === 404,
);
console.log(`node openai ok: served by ${provider}, streamed ${JSON.stringify(text)}`);
