//! OTLP trace export: the request span under the caller's `traceparent`,
//! its attempts as children, each attempt's own `traceparent` upstream.
//! (A dead or silent collector: `trace_export_bounds.rs`.)
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use understudy_mock::WireFormat;
use understudy_observe::{LogFormat, OtlpConfig, subscriber_with};

mod support;
use support::{LIMIT, Served, fault, mock, primary_and_backup};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: every span of every export it takes.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    received: watch::Receiver<usize>,
}

impl Collector {
    /// Answers every export with 200 and keeps its spans.
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (count, received) = watch::channel(0);
        let count = Arc::new(count);
        let kept = Arc::clone(&spans);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let kept = Arc::clone(&kept);
                let count = Arc::clone(&count);
                let service = service_fn(move |request: Request<Incoming>| {
                    let kept = Arc::clone(&kept);
                    let count = Arc::clone(&count);
                    async move {
                        assert_eq!(request.uri().path(), "/v1/traces");
                        assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut kept = kept.lock().unwrap();
                        for resource in export.resource_spans {
                            for scope in resource.scope_spans {
                                kept.extend(scope.spans);
                            }
                        }
                        count.send_replace(kept.len());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self {
            addr,
            spans,
            received,
        }
    }

    /// Waits until at least `n` spans arrived; all of them.
    async fn spans(&mut self, n: usize) -> Vec<Span> {
        let arrived =
            tokio::time::timeout(LIMIT, self.received.wait_for(|count| *count >= n)).await;
        assert!(
            arrived.is_ok(),
            "{n} spans were not exported in time: {:#?}",
            self.spans.lock().unwrap()
        );
        self.spans.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::BoolValue(b) => b.to_string(),
                Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

const CHAT: &str = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn a_fallback_is_one_trace_under_the_caller_s_traceparent() {
    let mut collector = Collector::start().await;
    let config = OtlpConfig::new(format!("http://{}", collector.addr))
        .service_name("gateway-under-test")
        .scheduled_delay(Duration::from_millis(20));
    let (subscriber, guard) =
        subscriber_with(LogFormat::Json, "off", std::io::sink, &config).unwrap();
    let default_guard = tracing::subscriber::set_default(subscriber);

    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    primary.set_fault(fault("status:503"));
    let served = Served::start(&primary_and_backup(&primary, &backup), |_| None).await;
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = served
        .send(
            Method::POST,
            "/v1/chat/completions",
            &[
                ("traceparent", &caller),
                ("tracestate", "vendor=opaque"),
                ("x-request-id", "trace-test-1"),
            ],
            CHAT,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "backup");

    let spans = collector.spans(3).await;
    let request = spans
        .iter()
        .find(|span| span.kind == 2) // SERVER
        .expect("the request span");
    assert_eq!(hex(&request.trace_id), TRACE_ID);
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    let attrs = attributes(request);
    assert_eq!(request.name, "chat chat", "{attrs:?}");
    assert_eq!(attrs["gen_ai.operation.name"], "chat");
    assert_eq!(attrs["gen_ai.request.model"], "chat");
    assert_eq!(attrs["gen_ai.response.model"], "small-model");
    assert_eq!(attrs["gen_ai.system"], "openai");
    assert_eq!(attrs["understudy.fallback.reason"], "overloaded");
    assert_eq!(attrs["understudy.route"], "chat");
    assert_eq!(attrs["http.response.status_code"], "200");
    assert_eq!(attrs["request_id"], "trace-test-1");
    let input: u64 = attrs["gen_ai.usage.input_tokens"].parse().unwrap();
    let output: u64 = attrs["gen_ai.usage.output_tokens"].parse().unwrap();
    assert!(input > 0 && output > 0, "{attrs:?}");

    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|span| span.parent_span_id == request.span_id)
        .collect();
    attempts.sort_by_key(|span| span.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let (failed, served_by) = (attempts[0], attempts[1]);
    for attempt in [failed, served_by] {
        assert_eq!(attempt.trace_id, request.trace_id);
        assert_eq!(attempt.kind, 3); // CLIENT
    }
    assert_eq!(failed.name, "chat big-model");
    let failed_attrs = attributes(failed);
    assert_eq!(failed_attrs["understudy.provider"], "primary");
    assert_eq!(failed_attrs["understudy.attempt"], "1");
    assert_eq!(failed_attrs["http.response.status_code"], "503");
    assert_eq!(failed_attrs["error.type"], "overloaded");
    assert_eq!(failed.status.as_ref().unwrap().code, 2); // ERROR
    // The log events at INFO and above travel as span events.
    let named = |span: &Span, name: &str| {
        span.events.iter().any(|event| {
            event.attributes.iter().any(|kv| {
                kv.key == "event"
                    && matches!(
                        kv.value.as_ref().and_then(|v| v.value.as_ref()),
                        Some(Value::StringValue(value)) if value == name
                    )
            })
        })
    };
    assert!(named(failed, "provider_failure"), "{failed:#?}");
    assert!(named(request, "fallback"), "{request:#?}");
    assert_eq!(served_by.name, "chat small-model");
    let served_attrs = attributes(served_by);
    assert_eq!(served_attrs["understudy.provider"], "backup");
    assert_eq!(served_attrs["understudy.attempt"], "1");
    assert_eq!(served_attrs["gen_ai.system"], "openai");
    assert_eq!(served_attrs["gen_ai.response.model"], "small-model");
    assert_eq!(served_attrs["http.response.status_code"], "200");

    // Each upstream saw its own attempt as the parent, in the caller's trace.
    for (mock, attempt) in [(&primary, failed), (&backup, served_by)] {
        let sent = mock.last_request().expect("the mock was called");
        let traceparent = sent.headers["traceparent"].to_str().unwrap();
        assert_eq!(
            traceparent,
            format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id)),
        );
        assert_eq!(sent.headers["tracestate"], "vendor=opaque");
    }

    served.stop_with([primary, backup]).await;
    drop(default_guard);
    tokio::task::spawn_blocking(move || assert!(guard.shutdown(Duration::from_secs(5))))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_caller_s_traceparent_the_request_starts_a_trace() {
    let mut collector = Collector::start().await;
    let config = OtlpConfig::new(format!("http://{}/v1/traces", collector.addr))
        .scheduled_delay(Duration::from_millis(20));
    let (subscriber, guard) =
        subscriber_with(LogFormat::Text, "off", std::io::sink, &config).unwrap();
    let default_guard = tracing::subscriber::set_default(subscriber);
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let served = Served::start(&primary_and_backup(&primary, &backup), |_| None).await;
    // An invalid caller header is ignored, never forwarded as ours.
    let reply = served
        .send(
            Method::POST,
            "/v1/chat/completions",
            &[
                ("traceparent", "00-not-a-trace-01"),
                ("tracestate", "vendor=of-another-trace"),
            ],
            CHAT,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let spans = collector.spans(2).await;
    let request = spans.iter().find(|span| span.kind == 2).unwrap();
    assert!(request.parent_span_id.is_empty());
    let attempt = spans
        .iter()
        .find(|span| span.parent_span_id == request.span_id)
        .unwrap();
    let sent = primary.last_request().unwrap();
    assert_eq!(
        sent.headers["traceparent"].to_str().unwrap(),
        format!("00-{}-{}-01", hex(&request.trace_id), hex(&attempt.span_id))
    );
    assert!(sent.headers.get("tracestate").is_none());
    served.stop_with([primary, backup]).await;
    drop(default_guard);
    tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(5)))
        .await
        .unwrap();
}

/// The binary exports what waits when it stops: the spans of a request
/// served just before a SIGTERM reach the collector before it exits (the
/// scheduled export would wait 5 s).
#[tokio::test]
async fn the_binary_flushes_its_spans_when_it_stops() {
    use tokio::io::AsyncBufReadExt;

    let collector = Collector::start().await;
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let path = std::env::temp_dir().join(format!(
        "understudy-traces-{}-flush.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!(
            "{}\n[telemetry]\notlp_endpoint = \"http://{}\"\n",
            primary_and_backup(&primary, &backup),
            collector.addr
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("--config")
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("understudy gateway listening") {
                return;
            }
        }
        panic!("the gateway ended before listening");
    })
    .await
    .expect("the gateway listened in time");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(CHAT.as_bytes())))
        .unwrap();
    let response = tokio::time::timeout(LIMIT, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the gateway stopped in time")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let spans = collector.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "the request and its attempt: {spans:#?}");
    assert!(spans.iter().any(|span| span.name == "chat chat"));
    assert!(spans.iter().any(|span| span.name == "chat big-model"));
    primary.shutdown().await;
    backup.shutdown().await;
}
