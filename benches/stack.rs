//! What the layers cost per request: the full stack over a service that
//! answers at once, against that service alone; each layer alone; the path
//! where the primary is ejected; Anthropic → OpenAI stream translation.
//!
//! Run with `cargo bench --bench stack`. Metrics go to an installed
//! Prometheus recorder, as in the gateway; no tracing subscriber is
//! installed (spans and events cost a level check). Memory comes from
//! mimalloc, the gateway's allocator.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use understudy::core::{
    BoxError, FailureKind, Outcome, ReplayBody, ReplayLayer, ResponseBody, RouteName, TargetName,
};
use understudy::fallback::{Fallback, FirstChunkLayer, Target};
use understudy::health::{HealthConfig, HealthLayer, HealthRegistry};
use understudy::observe::{AttemptLayer, ObserveLayer, Telemetry};
use understudy::provider::anthropic::AnthropicStreamTranslator;
use understudy::retry::{RetryConfig, RetryLayer};
use understudy::stack::{TargetService, TargetStack};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROMPT: &[u8] = br#"{"model":"chat","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],"temperature":0.2,"max_tokens":64}"#;
const ANSWER: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":2,"total_tokens":22}}"#;

/// A provider that answers at once.
fn instant()
-> impl Service<Request<ReplayBody>, Response = Response<ResponseBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_request: Request<ReplayBody>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(ResponseBody::from(Bytes::from_static(ANSWER)))
                .unwrap(),
        )
    })
}

fn target(registry: &HealthRegistry, name: &'static str) -> Target<TargetService> {
    TargetStack::new(name, "m", instant())
        .retry(RetryConfig::default())
        .health(registry)
        .timeout(Duration::from_secs(30))
        .first_chunk(Duration::from_secs(15))
        .telemetry(&Telemetry::new().into_shared())
        .build()
}

fn request() -> Request<Full<Bytes>> {
    let mut request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(PROMPT)))
        .unwrap();
    request.extensions_mut().insert(RouteName::new("chat"));
    request
}

/// The full per-request stack: observe → replay → fallback → (retry →
/// health → timeout → first chunk → attempt telemetry) → provider.
fn full_stack(
    registry: &HealthRegistry,
) -> BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody>, Infallible> {
    let fallback = Fallback::builder()
        .target(target(registry, "primary"))
        .target(target(registry, "backup"))
        .availability(registry.clone())
        .observer(Telemetry::new().into_shared())
        .build();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(ReplayLayer::new(1 << 20))
            .service(fallback),
    )
}

fn stack(c: &mut Criterion) {
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("request");

    // The baseline: the inner service alone, with the body collected the way
    // the replay layer would (so the difference is the layers).
    let bare = instant();
    group.bench_function("bare_service", |b| {
        b.iter_batched(
            request,
            |request| {
                runtime.block_on(async {
                    let (parts, body) = request.into_parts();
                    let body = ReplayBody::new(body.collect().await.unwrap().to_bytes());
                    let response = bare
                        .clone()
                        .oneshot(Request::from_parts(parts, body))
                        .await
                        .unwrap();
                    black_box(response.into_body().collect().await.unwrap());
                });
            },
            BatchSize::SmallInput,
        );
    });

    let healthy = HealthRegistry::new(HealthConfig::default());
    let full = full_stack(&healthy);
    group.bench_function("full_stack", |b| {
        b.iter_batched(
            request,
            |request| {
                runtime.block_on(async {
                    let response = full.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.headers()["x-understudy-provider"], "primary");
                    black_box(response.into_body().collect().await.unwrap());
                });
            },
            BatchSize::SmallInput,
        );
    });

    // The primary is ejected: skipped without a call or a timer.
    let ejected = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(1)
            .max_ejection(Duration::from_hours(1))
            .base_ejection(Duration::from_hours(1))
            .build()
            .unwrap(),
    );
    let full_ejected = runtime.block_on(async {
        let stack = full_stack(&ejected);
        ejected.record(
            "primary",
            Outcome::Failure(FailureKind::Connect),
            Duration::ZERO,
        );
        stack
    });
    group.bench_function("full_stack_primary_ejected", |b| {
        b.iter_batched(
            request,
            |request| {
                runtime.block_on(async {
                    let response = full_ejected.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.headers()["x-understudy-provider"], "backup");
                    black_box(response.into_body().collect().await.unwrap());
                });
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    // Each layer alone over the instant service.
    let mut layers = c.benchmark_group("layer");
    let replayed = || {
        let mut request = Request::new(ReplayBody::new(Bytes::from_static(PROMPT)));
        request
            .extensions_mut()
            .insert(TargetName::new("primary", "m"));
        request
    };
    macro_rules! layer_bench {
        ($name:literal, $service:expr) => {{
            let service = $service;
            layers.bench_function($name, |b| {
                b.iter_batched(
                    replayed,
                    |request| {
                        runtime.block_on(async {
                            let response = service.clone().oneshot(request).await.unwrap();
                            black_box(response);
                        });
                    },
                    BatchSize::SmallInput,
                );
            });
        }};
    }
    layer_bench!("none", instant());
    layer_bench!(
        "retry",
        RetryLayer::new(RetryConfig::default())
            .provider("primary")
            .layer(instant())
    );
    layer_bench!(
        "health",
        HealthLayer::new(healthy.clone(), "primary").layer(instant())
    );
    layer_bench!(
        "timeout",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(30)).layer(instant())
    );
    layer_bench!(
        "first_chunk",
        FirstChunkLayer::new(Duration::from_secs(15)).layer(instant())
    );
    layer_bench!(
        "attempt_telemetry",
        AttemptLayer::new("primary", "m").layer(instant())
    );
    layer_bench!(
        "fallback_one_target",
        Fallback::builder()
            .target(Target::new(
                TargetName::new("primary", "m"),
                TargetService::new(instant().map_err(BoxError::from))
            ))
            .build()
    );
    layers.finish();

    // The outer layers, over the bare service, from a caller's request.
    let mut outer = c.benchmark_group("outer");
    let replay_only = ServiceBuilder::new()
        .layer(ReplayLayer::new(1 << 20))
        .service(instant());
    let observe_replay = ServiceBuilder::new()
        .layer(ObserveLayer::new())
        .layer(ReplayLayer::new(1 << 20))
        .service(instant());
    outer.bench_function("replay", |b| {
        b.iter_batched(
            request,
            |request| {
                runtime.block_on(async {
                    black_box(replay_only.clone().oneshot(request).await.unwrap());
                });
            },
            BatchSize::SmallInput,
        );
    });
    outer.bench_function("observe_and_replay", |b| {
        b.iter_batched(
            request,
            |request| {
                runtime.block_on(async {
                    black_box(observe_replay.clone().oneshot(request).await.unwrap());
                });
            },
            BatchSize::SmallInput,
        );
    });
    outer.finish();
}

/// A realistic Anthropic stream: a text block in many deltas.
fn anthropic_stream() -> Vec<u8> {
    let mut stream = String::new();
    stream.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-latest\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
    stream.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    stream.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    for i in 0..200 {
        let _ = write!(
            stream,
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token{i} \"}}}}\n\n"
        );
    }
    stream.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    stream.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":200}}\n\n");
    stream.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    stream.into_bytes()
}

fn translation(c: &mut Criterion) {
    let stream = anthropic_stream();
    let events = 206;
    let mut group = c.benchmark_group("anthropic_stream");
    group.throughput(Throughput::Elements(events));
    group.bench_function("translate_206_events", |b| {
        b.iter(|| {
            let mut translator = AnthropicStreamTranslator::new(true);
            // As it arrives on the wire: a few hundred bytes at a time.
            for piece in stream.chunks(512) {
                black_box(translator.push(black_box(piece)).unwrap());
            }
            black_box(translator.finish().unwrap());
        });
    });
    group.finish();
}

/// What a large prompt costs: finding `model` (as the router does) and
/// rewriting it (as the OpenAI-compatible provider does), on a 100 KiB body
/// whose `model` comes last, as the OpenAI SDKs send it.
fn large_body(c: &mut Criterion) {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    let text = "All work and no play makes Jack a dull boy. ".repeat(2300);
    let body = format!(
        r#"{{"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{text}"}}],"temperature":0.2,"model":"chat"}}"#
    );
    let mut group = c.benchmark_group("large_body");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("router_finds_model", |b| {
        b.iter(|| {
            let head: Head<'_> = serde_json::from_slice(black_box(body.as_bytes())).unwrap();
            black_box(head.model);
        });
    });
    group.bench_function("provider_rewrites_model", |b| {
        b.iter(|| {
            black_box(
                understudy::provider::openai::rewrite_model(
                    black_box(body.as_bytes()),
                    "gpt-4o-mini",
                )
                .unwrap(),
            );
        });
    });
    group.finish();
}

criterion_group!(benches, stack, translation, large_body);
criterion_main!(benches);
