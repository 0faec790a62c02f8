//! The `[server]` limits over raw sockets: a slow-loris head, a body that
//! stalls behind a lying `Content-Length`, idle keep-alive connections, the
//! connection and request limits, the idle upstream connections kept, and
//! the drain at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use understudy_mock::{FaultRule, MockConfig, MockProvider};

mod support;
use support::Served;

/// No step here should take anywhere near this long; it only turns a hang
/// into a failure.
const GUARD: Duration = Duration::from_secs(20);

struct Harness {
    addr: SocketAddr,
    mock: MockProvider,
    served: Served,
}

async fn start(server: &str) -> Harness {
    let mock = MockProvider::start(MockConfig::openai().name("upstream"))
        .await
        .unwrap();
    let toml = format!(
        r#"
[server]
request_timeout_ms = 10000
{server}

[[providers]]
name = "upstream"
kind = "openai"
base_url = "{}"

[[routes]]
model = "chat"
targets = [{{ provider = "upstream", model = "m" }}]
"#,
        mock.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    Harness {
        addr: served.addr,
        mock,
        served,
    }
}

impl Harness {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    async fn stop(self) {
        self.served.stop(GUARD).await;
        self.mock.shutdown().await;
    }
}

fn chat_request(body: &str, stream: bool) -> String {
    let body = body.replace("STREAM", if stream { "true" } else { "false" });
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

const CHAT: &str =
    r#"{"model":"chat","stream":STREAM,"messages":[{"role":"user","content":"hi"}]}"#;

/// Reads until the peer closes the connection (or resets it).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("the gateway closed the connection in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `needle` has arrived.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        let n = tokio::time::timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("the answer came in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_head_is_closed_after_the_header_read_timeout() {
    let h = start("header_read_timeout_ms = 300").await;
    // From before the connection: the gateway's clock starts when it
    // accepts it.
    let started = tokio::time::Instant::now();
    let mut loris = h.connect().await;
    loris
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut loris).await;
    let waited = started.elapsed();
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // A connection that never sends a byte is closed too.
    let mut silent = h.connect().await;
    read_to_close(&mut silent).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_behind_its_length_gets_a_408() {
    let h = start("body_read_timeout_ms = 300").await;
    let mut caller = h.connect().await;
    caller
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
        )
        .await
        .unwrap();
    let answer = read_until(&mut caller, "request_timeout").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(h.mock.stats().chat_requests, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let h = start("keep_alive_timeout_ms = 300").await;
    let mut caller = h.connect().await;
    // From before the request: the gateway's idle clock starts once it has
    // read it.
    let started = tokio::time::Instant::now();
    caller
        .write_all(chat_request(CHAT, false).as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut caller).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_a_503_and_are_closed() {
    let h = start("max_connections = 3").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = h.connect().await;
        // A request proves the connection was accepted and counted.
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut stream, "\"status\"").await;
        held.push(stream);
    }
    let mut extra = h.connect().await;
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");

    // Freeing one lets the next in.
    drop(held.pop());
    let mut next = loop {
        let mut stream = h.connect().await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        if stream.read_exact(&mut first).await.is_ok() && &first == b"HTTP/1.1 200" {
            break stream;
        }
        // The freed slot is returned when its connection task ends.
        tokio::task::yield_now().await;
    };
    next.shutdown().await.unwrap();
    drop(held);
    h.stop().await;
}

/// Sends `n` chat requests one after another and gives back how many
/// connections the provider accepted for them.
async fn upstream_connections_for(server: &str, n: usize) -> u64 {
    let h = start(server).await;
    let body = CHAT.replace("STREAM", "false");
    for _ in 0..n {
        let reply = h
            .served
            .send(http::Method::POST, "/v1/chat/completions", &[], &body)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let accepted = h.mock.stats().connections_accepted;
    h.stop().await;
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_idle_up_to_upstream_max_idle_per_host() {
    // One serving thread, so every request draws on the same pool.
    assert_eq!(upstream_connections_for("workers = 1", 3).await, 1);
    assert_eq!(
        upstream_connections_for("workers = 1\nupstream_max_idle_per_host = 0", 3).await,
        3,
        "with no idle connection kept, every request connects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_concurrency_limit_are_shed_with_retry_after() {
    let h = start("max_concurrent_requests = 1").await;
    // The first request holds the only permit while the provider takes its
    // time; it holds it for certain once the provider has it.
    h.mock.set_fault("delay:2000".parse::<FaultRule>().unwrap());
    let mut holder = h.connect().await;
    holder
        .write_all(chat_request(CHAT, false).as_bytes())
        .await
        .unwrap();
    tokio::time::timeout(GUARD, async {
        while h.mock.stats().chat_requests == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first request reached the provider");
    let mut caller = h.connect().await;
    caller
        .write_all(chat_request(CHAT, false).as_bytes())
        .await
        .unwrap();
    let shed = read_until(&mut caller, "}").await;
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{shed}"
    );
    assert!(shed.contains("\"code\":\"overloaded\""), "{shed}");
    drop(holder);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_still_running_when_the_drain_ends_gets_an_error_event() {
    let h = start("drain_timeout_ms = 100").await;
    h.mock.set_fault("drip:400".parse::<FaultRule>().unwrap());
    let mut caller = h.connect().await;
    caller
        .write_all(chat_request(CHAT, true).as_bytes())
        .await
        .unwrap();
    // Committed: the first content chunk has reached the caller.
    read_until(&mut caller, "\"content\":\"").await;
    let mut h = h;
    h.served.signal_stop();
    let rest = read_to_close(&mut caller).await;
    assert!(rest.contains("\"code\":\"shutting_down\""), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    h.stop().await;
}
