//! The gateway binary against callers and providers that misbehave on
//! purpose, over loopback: it must stay up, keep answering `/health`
//! quickly, keep its memory bounded, and answer every caller.
//!
//! Runs the binary cargo built for this test, or the one `UNDERSTUDY_BIN`
//! names (CI points it at the release build). An "evil" upstream, a raw
//! HTTP/1.1 server in this file, speaks the OpenAI and Anthropic wire
//! formats and misbehaves according to the model it is asked for; every
//! route falls back to a well-behaved mock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::time::Instant;
use understudy_mock::{MockConfig, MockProvider};

const GUARD: Duration = Duration::from_secs(30);

/// What the evil upstream does for each model it is asked for.
async fn misbehave(mut stream: TcpStream) {
    let Some((path, body)) = read_request(&mut stream).await else {
        return;
    };
    let model = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["model"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let anthropic = path.contains("/messages");
    let head = |status: &str, extra: &str, content_type: &str| {
        format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}connection: close\r\n")
    };
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "{}content-length: {}\r\n\r\n{body}",
            head(status, extra, "application/json"),
            body.len()
        )
    };
    let answer = match model.as_str() {
        "huge-retry-after" => reply(
            "429 Too Many Requests",
            "retry-after: 10000000000000000000\r\n",
            r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
        ),
        "huge-reset" => reply(
            "429 Too Many Requests",
            "x-ratelimit-reset-requests: 99999999999h\r\nx-ratelimit-remaining-requests: 0\r\n",
            r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
        ),
        "empty-object" => reply("200 OK", "", "{}"),
        "not-json" => reply("200 OK", "", "{this is not json}"),
        "revoked" => reply(
            "401 Unauthorized",
            "",
            r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ),
        "endless-line" | "pings" => {
            let mut head = head("200 OK", "", "text/event-stream");
            head.push_str("\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece: Vec<u8> = if model == "pings" && anthropic {
                b"event: ping\ndata: {\"type\": \"ping\"}\n\n".repeat(256)
            } else {
                let mut line = b"data: ".to_vec();
                line.extend(std::iter::repeat_n(b'x', 16 * 1024));
                line
            };
            // Until the gateway hangs up, or 256 MiB, whichever comes first.
            let mut sent = 0usize;
            while sent < 256 << 20 {
                if stream.write_all(&piece).await.is_err() {
                    return;
                }
                sent += piece.len();
            }
            return;
        }
        _ => reply(
            "500 Internal Server Error",
            "",
            r#"{"error":{"message":"unknown"}}"#,
        ),
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one request: its path and body.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some((path, buffer[head_end..head_end + length].to_vec()))
}

async fn start_evil() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream));
        }
    });
    addr
}

struct Gateway {
    child: Child,
    addr: SocketAddr,
    log_bytes: Arc<AtomicU64>,
}

impl Gateway {
    async fn start(config: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("understudy-abuse-{}.toml", std::process::id()));
        std::fs::write(&path, config).unwrap();
        // A free port: bound, read, released for the gateway.
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let binary = std::env::var("UNDERSTUDY_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_understudy").to_owned());
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "info")
            .env("EVIL_KEY", "sk-gateway-own-key")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let log_bytes = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let counted = log_bytes.clone();
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                counted.fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
                if line.contains("understudy gateway listening")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(GUARD, ready_rx)
            .await
            .expect("the gateway started in time")
            .expect("the gateway logged that it listens");
        Self {
            child,
            addr,
            log_bytes,
        }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the gateway is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn caller(&self) -> Caller {
        Caller { addr: self.addr }
    }
}

/// Sends requests to the gateway, each on a fresh connection.
#[derive(Clone, Copy)]
struct Caller {
    addr: SocketAddr,
}

impl Caller {
    /// One HTTP/1.1 request on a fresh connection: (status, body).
    async fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(GUARD, stream.read_to_end(&mut answer))
            .await
            .expect("the gateway answered in time")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    async fn chat(&self, model: &str, stream: bool) -> (u16, String) {
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        self.request("POST", "/v1/chat/completions", &body).await
    }

    /// How long `/health` takes to answer.
    async fn health_latency(&self) -> Duration {
        let started = Instant::now();
        let (status, _) = self.request("GET", "/health", "").await;
        assert!(status == 200 || status == 503, "{status}");
        started.elapsed()
    }
}

fn config(evil: SocketAddr, backup: &str) -> String {
    let mut routes = String::new();
    for (route, provider) in [
        ("huge-retry-after", "evil"),
        ("huge-reset", "evil"),
        ("empty-object", "evil"),
        ("not-json", "evil"),
        ("revoked", "evil"),
        ("endless-line", "evil"),
        ("endless-line", "evil-anthropic"),
        ("pings", "evil-anthropic"),
    ] {
        writeln!(
            routes,
            "[[routes]]\nmodel = \"{route}-{provider}\"\ntargets = [{{ provider = \"{provider}\", model = \"{route}\" }}, {{ provider = \"backup\", model = \"good\" }}]\n"
        )
        .unwrap();
    }
    format!(
        r#"
[server]
request_timeout_ms = 10000
# Long enough that all 300 idle sockets below are open at once even on a
# loaded machine; a shorter one closes the first before the last arrive.
header_read_timeout_ms = 4000
max_connections = 256
direct_addressing = true
direct_cache_size = 16

[[providers]]
name = "evil"
kind = "openai"
base_url = "http://{evil}/v1"
api_key_env = "EVIL_KEY"
first_chunk_timeout_ms = 1500
timeout_ms = 3000

[[providers]]
name = "evil-anthropic"
kind = "anthropic"
base_url = "http://{evil}/v1"
first_chunk_timeout_ms = 1500
timeout_ms = 3000

[[providers]]
name = "backup"
kind = "openai"
base_url = "{backup}"

{routes}
[retry]
max_retries = 1
base_delay_ms = 10
max_delay_ms = 20

[health]
probe_interval_secs = 0
"#
    )
}

/// The `/health` bound: the release build must answer well within 50 ms
/// while under attack; a debug build gets more room.
fn health_bound() -> Duration {
    if std::env::var_os("UNDERSTUDY_BIN").is_some() {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(250)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_survives_callers_and_providers_that_misbehave() {
    let evil = start_evil().await;
    let backup = MockProvider::start(MockConfig::openai().name("backup"))
        .await
        .unwrap();
    let mut gateway = Gateway::start(&config(evil, &backup.base_url())).await;
    let caller = gateway.caller();
    let rss_at_start = gateway.rss_kib();
    let mut slowest_health = Duration::ZERO;

    // Providers: every misbehaviour is a failure the caller never sees.
    for route in [
        "huge-retry-after-evil",
        "huge-reset-evil",
        "empty-object-evil",
        "not-json-evil",
        "revoked-evil",
    ] {
        for stream in [false, true] {
            let (status, body) = caller.chat(route, stream).await;
            assert_eq!(status, 200, "{route} stream={stream}: {body}");
            assert!(!body.contains("sk-abc"), "{route}: {body}");
            assert!(gateway.alive(), "the gateway died on {route}");
        }
    }

    // Endless lines and endless pings, several at once, while /health is
    // asked throughout.
    let started = Instant::now();
    let floods = [
        "endless-line-evil",
        "endless-line-evil-anthropic",
        "pings-evil-anthropic",
    ]
    .into_iter()
    .flat_map(|route| [route; 2])
    .map(|route| {
        let caller = gateway.caller();
        tokio::spawn(async move { (route, caller.chat(route, true).await) })
    })
    .collect::<Vec<_>>();
    let mut floods = futures_util::future::join_all(floods);
    let results = loop {
        tokio::select! {
            results = &mut floods => break results,
            latency = caller.health_latency() => {
                slowest_health = slowest_health.max(latency);
            }
        }
    };
    for result in results {
        let (route, (status, body)) = result.unwrap();
        assert_eq!(status, 200, "{route}: {body}");
        assert!(
            body.contains("[DONE]"),
            "{route}: the backup's stream: {body}"
        );
    }
    // The first-chunk timeout (1.5 s) bounds each flood; the backup then
    // answers at once.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the floods took {:?}",
        started.elapsed()
    );
    assert!(gateway.alive());

    // Callers: invented models (direct addressing is on here) and the
    // longest model names allowed do not grow memory or logs without bound.
    let logs_before = gateway.log_bytes.load(Ordering::Relaxed);
    for i in 0..2000 {
        let model = format!("backup/invented-{i}-{}", "m".repeat(200));
        let (status, body) = caller.chat(&model, false).await;
        assert_eq!(status, 200, "{body}");
        if i % 200 == 0 {
            slowest_health = slowest_health.max(caller.health_latency().await);
        }
    }
    let (status, _) = caller
        .chat(&format!("backup/{}", "m".repeat(1 << 20)), false)
        .await;
    assert_eq!(status, 400, "a 1 MiB model name is refused");
    let logs = gateway.log_bytes.load(Ordering::Relaxed) - logs_before;
    assert!(logs < 2001 * 4096, "{logs} bytes of log for 2001 requests");

    // Slow-loris connections are closed by the header timeout, and the
    // gateway keeps answering meanwhile.
    let mut lorises = Vec::new();
    for _ in 0..64 {
        let mut loris = TcpStream::connect(gateway.addr).await.unwrap();
        loris
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
            .await
            .unwrap();
        lorises.push(loris);
    }
    slowest_health = slowest_health.max(caller.health_latency().await);
    for mut loris in lorises {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(GUARD, loris.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a slow-loris connection outlived the header timeout"
        );
    }

    // Idle sockets past the connection limit: the ones over it are
    // refused at once, the rest closed by the header timeout; the gateway
    // serves again as soon as they are gone.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    let mut refused = 0;
    for mut socket in idle {
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(GUARD, socket.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "an idle socket outlived the header timeout");
        if answer.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert!(refused >= 300 - 256, "{refused} refused");
    slowest_health = slowest_health.max(caller.health_latency().await);

    let rss = gateway.rss_kib();
    eprintln!("abuse: rss {rss_at_start} → {rss} KiB; slowest /health {slowest_health:?}");
    assert!(gateway.alive());
    assert!(
        rss < rss_at_start + 96 * 1024,
        "memory grew from {rss_at_start} to {rss} KiB"
    );
    assert!(
        slowest_health < health_bound(),
        "/health took {slowest_health:?} under attack"
    );
    backup.shutdown().await;
}
