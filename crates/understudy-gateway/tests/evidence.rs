//! The evidence on every response: `Server-Timing` (the gateway's own time
//! and the upstream's) and `x-understudy-attempt-chain` (every attempt and
//! skipped target), and the same split as histograms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

struct Harness {
    primary: MockProvider,
    backup: MockProvider,
    served: Served,
}

/// A primary and a backup mock behind one route `chat`, with `extra`
/// appended to the configuration.
async fn start(extra: &str) -> Harness {
    start_route("chat", extra).await
}

/// As [`start`], the route named `route`.
async fn start_route(route: &str, extra: &str) -> Harness {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"

[[routes]]
model = "{route}"
targets = [
  {{ provider = "primary", model = "big-model" }},
  {{ provider = "backup", model = "small-model" }},
]
{extra}
"#,
        primary.base_url(),
        backup.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    Harness {
        primary,
        backup,
        served,
    }
}

impl Harness {
    async fn chat(&self, model: &str, stream: bool) -> Reply {
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        self.served
            .send(Method::POST, "/v1/chat/completions", &[], &body)
            .await
    }

    async fn stop(self) {
        self.served.stop_with([self.primary, self.backup]).await;
    }
}

/// The two durations of `Server-Timing`, in milliseconds: the gateway's
/// own and the upstream's.
fn server_timing(reply: &Reply) -> (f64, f64) {
    let value = reply.header("server-timing");
    let mut parts = value.split(", ");
    let mut dur = |name: &str| -> f64 {
        let part = parts.next().unwrap_or_else(|| panic!("{value}"));
        let (metric, dur) = part
            .split_once(";dur=")
            .unwrap_or_else(|| panic!("{value}"));
        assert_eq!(metric, name, "{value}");
        // Three decimals.
        assert_eq!(dur.split_once('.').unwrap().1.len(), 3, "{value}");
        dur.parse().unwrap()
    };
    let own = dur("understudy");
    let upstream = dur("upstream");
    assert!(parts.next().is_none(), "{value}");
    (own, upstream)
}

/// The attempt chain's entries, each as (provider, fields).
fn chain(reply: &Reply) -> Vec<(String, Vec<String>)> {
    reply
        .header("x-understudy-attempt-chain")
        .split(", ")
        .map(|entry| {
            let mut fields = entry.split(';').map(str::to_owned);
            let provider = fields.next().unwrap();
            (provider, fields.collect())
        })
        .collect()
}

fn ms(field: &str) -> f64 {
    field.strip_prefix("ms=").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_shows_each_attempt_and_splits_the_time() {
    let h = start("[retry]\nmax_retries = 0\n").await;
    h.primary.set_fault(fault("status:503"));
    // The backup takes a while, so the upstream share is plainly visible.
    h.backup.set_fault(fault("delay:150"));

    let reply = h.chat("chat", false).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let chain = chain(&reply);
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(chain[0].0, "primary");
    assert_eq!(chain[0].1[0], "status=503");
    assert_eq!(chain[1].0, "backup");
    assert_eq!(chain[1].1[0], "status=200");
    let backup_ms = ms(&chain[1].1[1]);
    assert!(backup_ms >= 150.0, "{chain:?}");
    let (own, upstream) = server_timing(&reply);
    assert!(upstream >= backup_ms, "{own} {upstream} {chain:?}");
    assert!(
        upstream <= ms(&chain[0].1[1]) + backup_ms + 2.0,
        "{upstream} {chain:?}"
    );
    assert!(own >= 0.0 && own < upstream, "{own} {upstream}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_skipped_targets_are_in_the_chain() {
    let h = start(
        r"
[retry]
max_retries = 1
base_delay_ms = 1
max_delay_ms = 2
budget_ratio = 1.0

[health]
consecutive_failures = 2
min_requests = 1000
probe_interval_secs = 0
base_ejection_secs = 60
",
    )
    .await;
    h.primary.set_fault(fault("status:500"));

    // Two failures on the primary (the first try and its retry) eject it.
    let first = h.chat("chat", false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let providers: Vec<_> = chain(&first)
        .into_iter()
        .map(|(provider, fields)| format!("{provider};{}", fields[0]))
        .collect();
    assert_eq!(
        providers,
        [
            "primary;status=500",
            "primary;status=500",
            "backup;status=200"
        ],
        "{}",
        first.header("x-understudy-attempt-chain")
    );

    // Now ejected, the primary is skipped without a call.
    let second = h.chat("chat", true).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    second.assert_event_stream();
    let chain = chain(&second);
    assert_eq!(
        chain[0],
        ("primary".to_owned(), vec!["skipped=ejected".to_owned()])
    );
    assert_eq!(chain[1].0, "backup");
    assert_eq!(chain[1].1[0], "status=200");
    assert_eq!(chain.len(), 2);
    assert_eq!(h.primary.stats().chat_requests, 2);
    server_timing(&second);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_attempts_has_timing_and_no_chain() {
    let h = start("").await;

    let reply = h.chat("no-such-model", false).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let (_, upstream) = server_timing(&reply);
    assert!(upstream.abs() < f64::EPSILON, "{upstream}");
    assert!(!reply.headers.contains_key("x-understudy-attempt-chain"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_is_exported_as_histograms() {
    let h = start_route("split", "").await;
    let served = h.chat("split", false).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    let refused = h.chat("no-such-model", false).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    let metrics = h.served.send(Method::GET, "/metrics", &[], "").await.body;
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    // Each request counts for the gateway's own time; only the one that
    // went upstream for the upstream's (the refused one has no route).
    assert_eq!(
        line("understudy_overhead_seconds_count{route=\"split\"}"),
        "1"
    );
    assert_eq!(
        line("understudy_upstream_seconds_count{route=\"split\"}"),
        "1"
    );
    assert_ne!(
        line("understudy_overhead_seconds_count{route=\"unknown\"}"),
        "0"
    );
    assert!(
        !metrics.contains("understudy_upstream_seconds_count{route=\"unknown\"}"),
        "{metrics}"
    );
    // Sub-millisecond buckets for the gateway's own time.
    line("understudy_overhead_seconds_bucket{route=\"split\",le=\"0.00005\"}");
    line("understudy_upstream_seconds_bucket{route=\"split\",le=\"0.005\"}");
    h.stop().await;
}
