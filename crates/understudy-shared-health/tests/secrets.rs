//! A store behind a password: the password given alone or in the URL
//! authenticates, a wrong one keeps the replica on its local health, logged
//! once per outage, and no password reaches a log line or `Debug` output.
//!
//! Alone in its binary: it installs the global log subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a panic is a failed assertion

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use understudy_core::{FailureKind, Outcome};
use understudy_shared_health::{SharedHealthConfig, spawn};

use support::{RedisServer, eventually};

const PASSWORD: &str = "s3cret-pw-123";
const WRONG: &str = "wrong-pw-456";
const WRONG_IN_URL: &str = "wrong-url-pw-789";

/// Every log line, as the gateway's formatter would write it.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(url: String, replica: &str) -> SharedHealthConfig {
    SharedHealthConfig::new(url)
        .replica(replica)
        .key_prefix("t:secrets")
        .command_timeout(Duration::from_millis(250))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_authenticate_and_never_show() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let Some(redis) = RedisServer::start_with(&["--requirepass", PASSWORD]).await else {
        return;
    };
    let port = redis.url().rsplit(':').next().unwrap().to_owned();

    // The password given alone, and in the URL.
    let alone = config(redis.url(), "alone").password(PASSWORD);
    let in_url = config(format!("redis://:{PASSWORD}@127.0.0.1:{port}"), "in-url");
    assert!(!format!("{alone:?}").contains(PASSWORD));
    assert!(!format!("{in_url:?}").contains(PASSWORD));
    let r1 = support::registry(Duration::from_secs(30));
    let r2 = support::registry(Duration::from_secs(30));
    let s1 = spawn(r1.clone(), alone).unwrap();
    let s2 = spawn(r2.clone(), in_url).unwrap();
    eventually("both to authenticate", || {
        s1.is_connected() && s2.is_connected()
    })
    .await;
    r1.record(
        "openai",
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        }),
        Duration::from_millis(5),
    );
    eventually("the cooldown to reach the other", || {
        !r2.is_available("openai")
    })
    .await;

    // Wrong passwords: never connected, the failure logged once however
    // often it is retried, and no password in any line.
    let wrong = spawn(
        support::registry(Duration::from_secs(30)),
        config(redis.url(), "wrong").password(WRONG),
    )
    .unwrap();
    let wrong_url = spawn(
        support::registry(Duration::from_secs(30)),
        config(
            format!("redis://default:{WRONG_IN_URL}@127.0.0.1:{port}"),
            "wrong-url",
        ),
    )
    .unwrap();
    eventually("a few failed attempts", || {
        wrong.stats().failures >= 5 && wrong_url.stats().failures >= 5
    })
    .await;
    assert!(!wrong.is_connected() && !wrong_url.is_connected());
    assert!(!format!("{wrong:?}").contains(WRONG));

    let text = logs.text();
    for secret in [PASSWORD, WRONG, WRONG_IN_URL] {
        assert!(!text.contains(secret), "a password in the logs:\n{text}");
    }
    for replica in ["replica=wrong ", "replica=wrong-url "] {
        let warnings = text
            .lines()
            .filter(|line| line.contains("cannot reach the store") && line.contains(replica))
            .count();
        assert_eq!(warnings, 1, "{replica}:\n{text}");
    }
    assert!(text.contains("redis://default:***@127.0.0.1"), "{text}");
}
