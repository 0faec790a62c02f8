//! Balanced tiers end to end: deployments of one model sharing a route's
//! traffic by weight, health ejecting one of them, and fallback to the next
//! tier only once the whole tier has failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use http::{Method, StatusCode};
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

/// Two mocks in one tier (`east` weighted 2, `west` 1), then `backup`.
struct Tiers {
    east: MockProvider,
    west: MockProvider,
    backup: MockProvider,
    served: Served,
}

async fn start(health: &str) -> Tiers {
    let east = mock(WireFormat::OpenAi, "east").await;
    let west = mock(WireFormat::OpenAi, "west").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[[providers]]
name = "east"
kind = "openai"
base_url = "{}"

[[providers]]
name = "west"
kind = "openai"
base_url = "{}"

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"

[[routes]]
model = "chat"
targets = [
  {{ balance = [{{ provider = "east", model = "gpt-4o", weight = 2 }}, {{ provider = "west", model = "gpt-4o" }}] }},
  {{ provider = "backup", model = "gpt-4o-mini" }},
]

[retry]
max_retries = 0

[health]
probe_interval_secs = 0
{health}
"#,
        east.base_url(),
        west.base_url(),
        backup.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    Tiers {
        east,
        west,
        backup,
        served,
    }
}

impl Tiers {
    async fn chat(&self) -> Reply {
        self.served
            .send(
                Method::POST,
                "/v1/chat/completions",
                &[],
                r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
            )
            .await
    }

    /// Sends `n` chats, `concurrency` at a time.
    async fn chats(&self, n: usize, concurrency: usize) -> Vec<Reply> {
        futures_util::stream::iter(0..n)
            .map(|_| self.chat())
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    fn chat_requests(&self) -> (u64, u64, u64) {
        (
            self.east.stats().chat_requests,
            self.west.stats().chat_requests,
            self.backup.stats().chat_requests,
        )
    }

    async fn stop(self) {
        self.served
            .stop_with([self.east, self.west, self.backup])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_the_traffic_of_a_tier() {
    let t = start("").await;

    let replies = t.chats(1000, 16).await;

    let mut east = 0;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-understudy-model"), "gpt-4o");
        assert_eq!(reply.header("x-understudy-attempts"), "1");
        match reply.header("x-understudy-provider") {
            "east" => east += 1,
            "west" => {}
            other => panic!("served by {other}"),
        }
    }
    // 2:1 of 1,000 is 667:333; within ±10%.
    assert!((600..=733).contains(&east), "east served {east}");
    assert_eq!(t.chat_requests(), (east, 1000 - east, 0));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_is_down_is_ejected_and_its_sibling_serves_all() {
    let t = start("consecutive_failures = 2\nbase_ejection_secs = 300\n").await;
    t.east.set_fault(fault("status:503"));

    let replies = t.chats(200, 16).await;

    // No caller saw a failure: each 503 moved to west within the tier.
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-understudy-provider"), "west");
    }
    let (east, west, backup) = t.chat_requests();
    assert_eq!((west, backup), (200, 0));
    // East took requests only until its ejection: at most the two that
    // ejected it and those already on their way then.
    assert!((2..=17).contains(&east), "east took {east}");

    // Ejected: every request now goes straight to west.
    let replies = t.chats(50, 4).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-understudy-provider"), "west");
        assert_eq!(reply.header("x-understudy-attempts"), "1");
    }
    assert_eq!(t.chat_requests(), (east, 250, 0));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_tier_serves_only_when_the_whole_tier_failed() {
    let t = start("consecutive_failures = 1000\n").await;

    // One deployment failing: its sibling serves, the backup is untouched.
    t.west.set_fault(fault("status:503"));
    let replies = t.chats(20, 4).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-understudy-provider"), "east");
    }
    assert_eq!(t.backup.stats().chat_requests, 0);

    // Both failing: the backup serves, after both were tried.
    t.east.set_fault(fault("status:503"));
    let before = t.chat_requests();
    let reply = t.chat().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "backup");
    assert_eq!(reply.header("x-understudy-model"), "gpt-4o-mini");
    assert_eq!(reply.header("x-understudy-attempts"), "3");
    assert_eq!(
        t.chat_requests(),
        (before.0 + 1, before.1 + 1, before.2 + 1)
    );
    t.stop().await;
}
