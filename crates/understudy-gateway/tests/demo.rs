//! The embedded demo: its first request falls back, and every request is
//! served.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use understudy_gateway::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_fallback_and_serves_every_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let demo = demo::start(addr).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(demo.gateway.serve(listener, async move {
        let _ = stopped.await;
    }));

    let first = tokio::time::timeout(Duration::from_secs(10), demo::ask(addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            first.status,
            first.provider.as_str(),
            first.attempts.as_str()
        ),
        (200, "backup", "2")
    );
    assert_eq!(first.content, "Hello from backup.");

    let mut served_by = Vec::new();
    for _ in 0..20 {
        let answer = tokio::time::timeout(Duration::from_secs(10), demo::ask(addr))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        served_by.push(answer.provider);
    }
    assert!(served_by.iter().any(|p| p == "primary"), "{served_by:?}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
