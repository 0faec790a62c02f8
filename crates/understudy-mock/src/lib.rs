//! A fault-injecting mock LLM provider over real HTTP.
//!
//! [`MockProvider`] serves one of five [wire formats](#wire-formats) (the
//! OpenAI Chat Completions API, the Anthropic Messages API, Azure OpenAI,
//! the Gemini API and Bedrock's Converse API), streamed and not, plus the
//! format's models listing and, where the provider has them,
//! [embeddings](#embeddings), on a real socket, with deterministic content
//! (`Hello from {name}.`, or [`MockConfig::text`], split into [`MockConfig::stream_chunks`] chunks
//! when streamed). It can be told to fail in every way a provider fails:
//! error statuses, rate limits, refused and reset connections, hangs, slow
//! heads, slow or cut streams, garbage bodies and in-stream error events,
//! each rendered the way that provider fails. Tests start it on port 0; the
//! `understudy-mock` binary runs it from the command line.
//!
//! # Example
//!
//! ```
//! use understudy_mock::{FaultRule, MockConfig, MockProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mock = MockProvider::start(MockConfig::openai().name("primary")).await?;
//! // Point a provider at `mock.base_url()`; make the next three chat
//! // requests fail with 503, then serve normally again.
//! mock.set_fault("status:503*3".parse::<FaultRule>().unwrap());
//! assert_eq!(mock.stats().faulted, 0);
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Wire formats
//!
//! | [`WireFormat`] | Chat paths | Models path | Model and stream from |
//! | --- | --- | --- | --- |
//! | `openai` | `POST /v1/chat/completions` | `GET /v1/models` | the body (`model`, `stream`, `stream_options.include_usage`) |
//! | `anthropic` | `POST /v1/messages` | `GET /v1/models` | the body (`model`, `stream`) |
//! | `azure` | `POST /openai/deployments/{deployment}/chat/completions?api-version=…` | `GET /openai/models?api-version=…` | the path (the deployment is the answer's model); `stream` from the body |
//! | `gemini` | `POST /v1beta/models/{model}:generateContent`, `…:streamGenerateContent?alt=sse` (`/v1/` too) | `GET /v1beta/models` | the path |
//! | `bedrock` | `POST /model/{modelId}/converse`, `…/converse-stream` (the id percent-decoded) | `GET /foundation-models` | the path |
//!
//! - **openai** streams, with `stream_options.include_usage`, end with a
//!   usage chunk (`"choices": []`) and carry `"usage": null` on every other
//!   chunk, as OpenAI's do (Azure's too).
//! - **azure** answers in OpenAI's shapes plus Azure's content filter
//!   results: `prompt_filter_results` on a whole answer, or as a first
//!   stream chunk with empty `choices`, and `content_filter_results` on each
//!   choice. Without `api-version`, every path is a 404
//!   `{"error":{"code":"404","message":"Resource not found"}}`.
//! - **gemini** answers `GenerateContentResponse`s (`candidates`,
//!   `usageMetadata`, `modelVersion`); a stream is SSE whose lines end in
//!   `\r\n`, one text part per event, the last one with `finishReason` and
//!   `usageMetadata`. The body must hold `contents`.
//! - **bedrock** answers `{"output":{"message":…},"stopReason","usage","metrics"}`;
//!   a stream is `application/vnd.amazon.eventstream` frames (`messageStart`,
//!   `contentBlockDelta`s, `contentBlockStop`, `messageStop`, `metadata`).
//!   Every request must carry an `authorization` header starting
//!   `AWS4-HMAC-SHA256 ` and an `x-amz-date` header (the signature is not
//!   checked), or it is answered 403 `MissingAuthenticationTokenException`
//!   before any fault. The body must hold `messages`.
//!
//! # Embeddings
//!
//! | [`WireFormat`] | Embeddings paths | Request | Answer |
//! | --- | --- | --- | --- |
//! | `openai` | `POST /v1/embeddings` | `{"model","input","encoding_format"?,"dimensions"?}`, `input` a string, strings, tokens (`[1,2]`, one input) or lists of tokens | `{"object":"list","data":[{"object":"embedding","index":i,"embedding":…}],"model","usage":{"prompt_tokens":n,"total_tokens":n}}` |
//! | `azure` | `POST /openai/deployments/{deployment}/embeddings?api-version=…` | as `openai`, `model` optional | as `openai`, the deployment as `model` |
//! | `gemini` | `POST /v1beta/models/{model}:batchEmbedContents` (`/v1/` too) | `{"requests":[{"model":"models/{model}","content":{"parts":[{"text"}]},"outputDimensionality"?,"taskType"?}]}` | `{"embeddings":[{"values":[…]}]}` |
//! | `gemini` | `POST /v1beta/models/{model}:embedContent` (`/v1/` too) | one such request, `model` optional | `{"embedding":{"values":[…]}}` |
//! | `anthropic`, `bedrock` | none: a 404 in the provider's shape, as the real APIs (Bedrock's embedding models are behind `InvokeModel`, which the mock does not serve) | | |
//!
//! A vector is a function of the mock's name and the input's text alone
//! (token inputs: the tokens as decimal numbers between spaces; Gemini: the
//! parts' texts joined by newlines): unit length, `dimensions` (Gemini:
//! `outputDimensionality`) values long, 8 when the request does not say.
//! So the same input gets the same vector from mocks of the same name, in
//! every format, and a test can tell which mock served it. OpenAI's
//! `encoding_format: "base64"` sends each vector as standard base64 (with
//! padding) of its little-endian `f32`s. The usage counts the words of each
//! text (at least one) and the tokens of each token input. A request that
//! is not valid JSON or lacks what the format requires (`input`, and
//! OpenAI's `model`; Gemini's `requests` or `content`, a text part, a
//! `model` that is the path's), has no input, an unknown `encoding_format`,
//! a length outside 1..=3072, or more than 2^20 values in all, is answered
//! 400 in the provider's shape and does not spend a rule.
//!
//! # Forced tools
//!
//! A request that forces one tool (OpenAI's and Azure's `tool_choice`
//! `{"type":"function","function":{"name":…}}`, Anthropic's
//! `{"type":"tool","name":…}`, Gemini's `toolConfig.functionCallingConfig`
//! with mode `ANY` and one allowed name, Bedrock's
//! `toolConfig.toolChoice.tool.name`) is answered with a call of that tool
//! with the arguments `{"mock":true}`, in the format's shape, streamed or
//! not.
//!
//! # Fault specs
//!
//! A plan is a comma-separated list of rules (or, on the command line, one
//! rule per `--fault`). For each chat or embeddings request the **first
//! rule that matches** applies; a request no rule matches is served normally.
//!
//! ```text
//! PLAN  := RULE ( "," RULE )*
//! RULE  := FAULT [ MODE ]
//! MODE  := "*" N          the next N matching requests, then the rule is spent
//!        | "@" P          each matching request with probability P (0.0..=1.0),
//!                         drawn from an RNG seeded with the mock's seed
//!        | "~" DURATION   every matching request for DURATION after the plan is set
//!        (none)           every matching request until the plan changes
//! DURATION := N | N "ms" | N "s"        (a bare number is milliseconds)
//! ```
//!
//! | `FAULT` | What the client sees |
//! | --- | --- |
//! | `none` | a normal answer (useful as `none*5,status:503`) |
//! | `status:<code>` | that status (400–599) with an error body in the provider's shape: OpenAI `{"error":{…,"type":"server_error"}}`, Anthropic `{"type":"error","error":{"type":"overloaded_error",…}}` for 529, Azure `{"error":{"code":"503","message":…}}`, Gemini `{"error":{"code":503,"message":…,"status":"UNAVAILABLE"}}`, Bedrock `{"message":…}` with `x-amzn-ErrorType: ServiceUnavailableException:…` |
//! | `rate-limit:<secs>` | 429 in the provider's shape, saying when to retry as that provider does: OpenAI and Anthropic `Retry-After: <secs>` and `retry-after-ms`; Azure those and `x-ratelimit-reset-requests`; Gemini a `RetryInfo` detail with `retryDelay: "<secs>s"`; Bedrock `ThrottlingException` (no retry hint) |
//! | `refuse` | connection refused: the listening socket is closed, then bound again on the **same port** when the rule ends |
//! | `reset` | the request is read, then the connection is closed with no answer |
//! | `hang` | the request is read and never answered; the connection ends when the client goes away or the mock shuts down |
//! | `delay:<ms>` | the answer, after a wait before the head |
//! | `first-chunk-delay:<ms>` | streaming: the head at once, the first event after the wait; non-streaming: as `delay` |
//! | `drop-after:<n>` | streaming: exactly `n` SSE events (Bedrock: frames), then the connection is cut (the body ends in an error); non-streaming: the head and at most `n` of the body's pieces, never all of it, then the cut |
//! | `cut-after-chunks:<n>` | streaming: the events before the content (a role chunk, `message_start`, `content_block_start`) and `n` content chunks, then the cut; non-streaming: no fault |
//! | `stall-after-chunks:<n>:<ms>` | streaming: the events before the content and `n` content chunks, then a wait of `ms` before the rest; non-streaming: no fault |
//! | `error-event-after-chunks:<n>` | streaming: the events before the content and `n` content chunks, then an error event in the provider's shape, and the end; non-streaming: no fault |
//! | `drip:<ms>` | every SSE event or Bedrock frame (or, non-streaming, every piece of the body) the wait after the previous one, the first one too |
//! | `garbage` | 200 with the content type the client expects and a body that is neither JSON nor SSE; a Bedrock stream gets a frame whose checksum is wrong |
//! | `error-event` | streaming: 200 and an error event before any content, in the provider's shape (OpenAI and Azure `data: {"error":{…}}`, Anthropic `event: error`, Gemini `data: {"error":{"code":503,…,"status":"UNAVAILABLE"}}`, Bedrock an exception frame, `:exception-type: serviceUnavailableException`), with nothing after it; non-streaming: 200 with an error envelope as the JSON body |
//! | `content-filter` | the prompt refused by the provider's content filter: Azure 400 `{"error":{"code":"content_filter",…,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{…}}}}`; OpenAI 400 `content_policy_violation`; Anthropic 400 `invalid_request_error`; Gemini 200 `{"promptFeedback":{"blockReason":"SAFETY"},…}` with no candidate (streaming: one such event); Bedrock 200 with `stopReason: guardrail_intervened` (streaming: frames ending so) |
//!
//! Examples: `status:503`, `status:503*3`, `reset@0.3`, `refuse~2s`,
//! `none*10,hang`.
//!
//! In JSON (the control endpoint), a plan is `{"rules":[…],"seed":7}` (the
//! seed is optional) or a bare list of rules, and a rule is a spec string or
//! an object: `{"fault":"status:503","times":3}`,
//! `{"fault":"reset","probability":0.3}`, `{"fault":"refuse","for_ms":2000}`.
//!
//! ## What the faults apply to
//!
//! - **Chat requests** (the format's chat paths) get every fault but
//!   `refuse`. **Embeddings requests** get them too, as non-streamed chat
//!   requests do (`first-chunk-delay` as `delay`, `drop-after` and `drip`
//!   on the body's pieces, `error-event` a 200 with an error envelope),
//!   except `content-filter`: no provider's filter refuses an input to
//!   embed, so it is answered as `status:400`. A chat request whose body is not valid JSON, or lacks what the
//!   format requires (`model` and `messages`; Azure `messages`; Gemini
//!   `contents`; Bedrock `messages`), is answered 400 in the provider's
//!   shape and does not spend a rule; nor does a Bedrock request without a
//!   signature.
//! - **The models path** (`GET /v1/models`, `/openai/models`,
//!   `/v1beta/models`, `/foundation-models`), the health-probe path, gets only `status`,
//!   `rate-limit`, `reset` and `hang` (and `refuse`, which acts on
//!   connections), so a provider that is down looks down to its prober too.
//!   A probe does not spend a `*N` rule (it applies while the rule has
//!   requests left) and is not subject to `@p` rules.
//! - **`refuse`** acts on connections. Without a mode or with `~DURATION`,
//!   the listener is closed, so connecting fails with "connection refused".
//!   A closed socket cannot count attempts, so with `*N` or `@p` each new
//!   connection that the rule takes is accepted and reset at once (a zero
//!   linger), before anything is read. Setting a plan with a `refuse` rule
//!   also closes every open keep-alive connection once its current answer
//!   is sent, so that clients connect again; and while the listener is
//!   closed, a request that still arrives on a connection opened before
//!   (the close is asynchronous) is closed unanswered, as `reset` does. So
//!   from the moment [`MockProvider::set_fault`] returns, no chat,
//!   embeddings or models request is answered.
//!
//! # Control endpoint
//!
//! The same server answers, whatever the format:
//!
//! - `POST /__mock/faults` with a JSON plan: replaces the plan; answers the
//!   plan as JSON (400 if it does not parse).
//! - `GET /__mock/faults`: the plan in force.
//! - `DELETE /__mock/faults`: removes every fault.
//! - `GET /__mock/stats`: the [`MockStats`] as JSON.
//! - `GET /__mock/last-request`: the last chat or embeddings request
//!   (`{"method","path","body"}`, the body as JSON when it is), or `null`.
//!
//! A first-chunk delay applies per request through the plan's count:
//! `first-chunk-delay:2000*1` delays the next stream only. A request whose
//! messages end with an assistant turn (a prefill), or with a user turn
//! starting `Continue` after one, asks to continue that turn's text: when
//! the mock's answer starts with it, the mock answers the rest (so a
//! prefix from one mock and the continuation from another with the same
//! [`MockConfig::text`] make the whole answer).
//!
//! Control requests are never faulted, but while `refuse` holds the
//! listener closed the control endpoint is unreachable too; use a duration
//! (`refuse~2s`), or [`MockProvider::set_fault`], which works regardless.
//!
//! ```text
//! curl -X POST localhost:8089/__mock/faults -d '{"rules":[{"fault":"status:503","times":3}]}'
//! curl -X POST localhost:8089/__mock/faults -d '["reset@0.2", "delay:100"]'
//! curl localhost:8089/__mock/stats
//! curl -X DELETE localhost:8089/__mock/faults
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod config;
mod fault;
mod plan;
mod server;
mod service;
mod stats;
mod wire;

pub use self::config::{MockConfig, UnknownWireFormat, WireFormat};
pub use self::fault::{Fault, FaultMode, FaultPlan, FaultRule, ParseFaultError};
pub use self::server::{MockProvider, RecordedRequest};
pub use self::stats::MockStats;
