//! What sharing health costs a request: the health layer's admission and
//! record over a service that answers at once, with the registry on its own
//! and with the same registry shared through a live `redis-server`.
//!
//! Method: criterion, on a current-thread Tokio runtime; each iteration
//! sends one request through `HealthLayer` (admit, call, classify, record)
//! to a `service_fn` answering 200. The shared variant has a sharer
//! connected to a `redis-server` on loopback (started here; the bench
//! prints a notice and measures only the unshared variant when it is not
//! installed). A healthy provider's request touches no lock and no store in
//! either case, so the two should be equal within noise: the store is off
//! the request path.
//!
//! Run: `cargo bench -p understudy-shared-health --bench request_path`
//! (not run in CI).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};
use understudy_core::ReplayBody;
use understudy_health::{HealthLayer, HealthRegistry};

fn bench(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    registry: &HealthRegistry,
) {
    let service = HealthLayer::new(registry.clone(), "openai").layer(service_fn(
        |_: Request<ReplayBody>| async { Ok::<_, Infallible>(Response::new(())) },
    ));
    c.bench_function(name, |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = service
                    .clone()
                    .oneshot(Request::new(ReplayBody::from("{}")))
                    .await
                    .unwrap();
                black_box(response);
            });
        });
    });
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = support::registry(Duration::from_secs(30));
    bench(c, &runtime, "health_layer/local", &local);

    let redis = runtime.block_on(support::RedisServer::start());
    if let Some(redis) = &redis {
        let (shared, sharer) = runtime.block_on(support::replica(
            redis,
            "bench",
            "bench:request-path",
            Duration::from_secs(30),
        ));
        bench(c, &runtime, "health_layer/shared", &shared);
        drop(sharer);
    }
}

criterion_group!(benches, request_path);
criterion_main!(benches);
