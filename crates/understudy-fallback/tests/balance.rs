//! Balanced tiers: weighted power of two choices on requests in flight,
//! fallback within a tier before the next.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use understudy_core::events::SharedObserver;
use understudy_core::{
    Availability, BoxError, ProviderAvailability, ReplayBody, ResponseBody, RouteName, TargetName,
    UnavailableKind,
};
use understudy_fallback::{Fallback, FallbackRules, Target};

use support::{Events, Log, ROLE_CHUNK, TargetService, chunk, completion, json, sse, target};

const PROMPT: &str = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;

fn request() -> Request<ReplayBody> {
    let mut request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(ReplayBody::from(PROMPT))
        .unwrap();
    request.extensions_mut().insert(RouteName::new("chat"));
    request
}

fn named(provider: &str, service: TargetService) -> Target<TargetService> {
    Target::new(TargetName::new(provider, "gpt-4o"), service)
}

fn serving(log: &Log, name: &'static str) -> TargetService {
    target(log, move || std::future::ready(Ok(completion(name))))
}

fn failing(log: &Log, status: u16) -> TargetService {
    target(log, move || {
        std::future::ready(Ok::<_, BoxError>(json(
            status,
            r#"{"error":{"message":"nope","type":"server_error"}}"#,
        )))
    })
}

fn provider(response: &Response<ResponseBody>) -> String {
    response.headers()["x-understudy-provider"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn in_flight(fallback: &Fallback<TargetService>) -> Vec<usize> {
    fallback.tiers().next().unwrap().in_flight().collect()
}

/// Reports the providers it names unavailable.
struct Down(&'static [&'static str]);

impl ProviderAvailability for Down {
    fn availability(&self, provider: &str) -> Availability {
        if self.0.contains(&provider) {
            Availability::Unavailable {
                kind: UnavailableKind::Ejected,
                until: None,
            }
        } else {
            Availability::Available
        }
    }
}

#[tokio::test]
async fn weights_split_sequential_traffic_in_proportion() {
    let (east, west) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .balanced([
            (named("east", serving(&east, "east")), 2),
            (named("west", serving(&west, "west")), 1),
        ])
        .build();

    for _ in 0..1000 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-understudy-attempts"], "1");
    }

    // 2:1 of 1,000 is 667:333; within ±10%.
    assert_eq!(east.len() + west.len(), 1000);
    assert!((600..=733).contains(&east.len()), "east {}", east.len());
    assert_eq!(in_flight(&fallback), [0, 0]);
}

#[tokio::test]
async fn the_deployment_with_fewer_requests_in_flight_is_preferred() {
    let (east, west) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .balanced([
            (named("east", serving(&east, "east")), 1),
            (named("west", serving(&west, "west")), 1),
        ])
        .build();

    // One response held open (its body not yet read) keeps its deployment
    // busy: every request meanwhile goes to the other one.
    let held = fallback.clone().oneshot(request()).await.unwrap();
    let busy = provider(&held);
    let counts = in_flight(&fallback);
    assert_eq!(counts.iter().sum::<usize>(), 1, "{counts:?}");
    for _ in 0..50 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        assert_ne!(provider(&response), busy);
    }
    let (busy_log, idle_log) = if busy == "east" {
        (&east, &west)
    } else {
        (&west, &east)
    };
    assert_eq!((busy_log.len(), idle_log.len()), (1, 50));

    // One held at the idle one too, and the first released: now the first
    // one has fewer in flight and is preferred.
    let a = fallback.clone().oneshot(request()).await.unwrap();
    assert_ne!(provider(&a), busy);
    drop(held);
    for _ in 0..20 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        assert_eq!(provider(&response), busy);
    }
    drop(a);
    assert_eq!(in_flight(&fallback), [0, 0]);
}

#[tokio::test]
async fn an_unavailable_deployment_takes_no_traffic_while_its_sibling_serves_all() {
    let (east, west) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .balanced([
            (named("east", serving(&east, "east")), 5),
            (named("west", serving(&west, "west")), 1),
        ])
        .availability(Down(&["east"]))
        .build();

    for _ in 0..100 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(provider(&response), "west");
        assert_eq!(response.headers()["x-understudy-attempts"], "1");
    }
    assert_eq!((east.len(), west.len()), (0, 100));
}

#[tokio::test]
async fn a_failing_deployment_moves_to_its_sibling_before_the_next_tier() {
    let (east, west, backup) = (Log::default(), Log::default(), Log::default());
    let events = Arc::new(Events::default());
    let observer: SharedObserver = events.clone();
    let fallback = Fallback::builder()
        .balanced([
            (named("east", failing(&east, 503)), 1),
            (named("west", serving(&west, "west")), 1),
        ])
        .target(named("backup", serving(&backup, "backup")))
        .observer(observer)
        .build();

    for _ in 0..50 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(provider(&response), "west");
        assert_eq!(response.headers()["x-understudy-model"], "gpt-4o");
    }
    assert_eq!(backup.len(), 0);
    assert_eq!(west.len(), 50);
    // East was tried first by about half the requests, each falling over
    // to west.
    assert!(east.len() > 5 && east.len() < 45, "east {}", east.len());
    let lines = events.lines();
    assert_eq!(lines.len(), east.len());
    assert!(
        lines.iter().all(|l| l.starts_with("fallback east->west")),
        "{lines:?}"
    );
    assert_eq!(in_flight(&fallback), [0, 0]);
}

#[tokio::test]
async fn the_next_tier_serves_only_when_the_whole_tier_failed() {
    let (east, west, backup) = (Log::default(), Log::default(), Log::default());
    let events = Arc::new(Events::default());
    let observer: SharedObserver = events.clone();
    let fallback = Fallback::builder()
        .balanced([
            (named("east", failing(&east, 503)), 1),
            (named("west", failing(&west, 500)), 1),
        ])
        .target(named("backup", serving(&backup, "backup")))
        .observer(observer)
        .build();

    let response = fallback.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(provider(&response), "backup");
    assert_eq!(response.headers()["x-understudy-attempts"], "3");
    assert_eq!((east.len(), west.len(), backup.len()), (1, 1, 1));
    let lines = events.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("->backup"), "{lines:?}");
    assert_eq!(in_flight(&fallback), [0, 0]);
}

#[tokio::test]
async fn the_target_limit_counts_attempts_within_a_tier() {
    let (east, west, backup) = (Log::default(), Log::default(), Log::default());
    let fallback = Fallback::builder()
        .balanced([
            (named("east", failing(&east, 503)), 1),
            (named("west", failing(&west, 503)), 1),
        ])
        .target(named("backup", serving(&backup, "backup")))
        .policy(FallbackRules::default().max_targets(2))
        .build();

    let response = fallback.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["x-understudy-attempts"], "2");
    assert_eq!((east.len(), west.len(), backup.len()), (1, 1, 0));
}

#[tokio::test]
async fn panic_mode_tries_every_deployment_of_every_tier() {
    let (east, west, backup) = (Log::default(), Log::default(), Log::default());
    let fallback = Fallback::builder()
        .balanced([
            (named("east", failing(&east, 503)), 1),
            (named("west", failing(&west, 503)), 1),
        ])
        .target(named("backup", serving(&backup, "backup")))
        .availability(Down(&["east", "west", "backup"]))
        .build();

    let response = fallback.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(provider(&response), "backup");
    assert_eq!(response.headers()["x-understudy-attempts"], "3");
}

#[tokio::test]
async fn in_flight_lasts_until_a_stream_ends_or_its_body_is_dropped() {
    let (east, west) = (Log::default(), Log::default());
    let senders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let streaming = |log: &Log| {
        let senders = senders.clone();
        target(log, move || {
            let (response, tx) = sse();
            tx.send(Ok(bytes::Bytes::from_static(ROLE_CHUNK.as_bytes())))
                .unwrap();
            senders.lock().unwrap().push(tx);
            std::future::ready(Ok(response))
        })
    };
    let fallback = Fallback::builder()
        .balanced([
            (named("east", streaming(&east)), 1),
            (named("west", streaming(&west)), 1),
        ])
        .build();

    let mut bodies = Vec::new();
    for _ in 0..4 {
        let response = fallback.clone().oneshot(request()).await.unwrap();
        bodies.push(response.into_body());
    }
    // Balanced by in flight: two streams at each.
    assert_eq!(in_flight(&fallback), [2, 2]);

    // A stream read to its end stops counting, its body still alive.
    let mut first = bodies.remove(0);
    {
        let mut senders = senders.lock().unwrap();
        senders[0].send(Ok(chunk("hi"))).unwrap();
        senders.remove(0);
    }
    while let Some(frame) = first.frame().await {
        frame.unwrap();
    }
    assert_eq!(in_flight(&fallback).iter().sum::<usize>(), 3);

    // Dropped bodies stop counting.
    drop(bodies);
    assert_eq!(in_flight(&fallback), [0, 0]);
    drop(first);
}

#[tokio::test]
async fn single_targets_are_not_counted() {
    let log = Log::default();
    let fallback = Fallback::builder()
        .target(named("only", serving(&log, "only")))
        .balanced([(named("alone", serving(&log, "alone")), 3)])
        .build();
    let held = fallback.clone().oneshot(request()).await.unwrap();
    assert_eq!(provider(&held), "only");
    let tiers: Vec<_> = fallback.tiers().collect();
    assert_eq!(tiers.len(), 2);
    assert!(tiers.iter().all(|tier| !tier.is_balanced()));
    assert_eq!(tiers[0].in_flight().collect::<Vec<_>>(), [0]);
    assert_eq!(tiers[1].weights().collect::<Vec<_>>(), [3]);
    assert_eq!(fallback.targets().len(), 2);
}
