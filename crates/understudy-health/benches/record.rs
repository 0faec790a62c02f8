//! Cost of recording an outcome, alone and from two threads at once.
#![allow(clippy::disallowed_types)] // wall-clock timing of the benchmark itself
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use understudy_core::{Outcome, ProviderAvailability};
use understudy_health::{HealthConfig, HealthRegistry};

fn record(c: &mut Criterion) {
    let registry = HealthRegistry::new(HealthConfig::default());
    registry.register("openai");
    let latency = Duration::from_millis(120);

    c.bench_function("record_success_one_thread", |b| {
        b.iter(|| registry.record(black_box("openai"), Outcome::Success, latency));
    });

    c.bench_function("availability_healthy", |b| {
        b.iter(|| black_box(registry.availability(black_box("openai"))));
    });

    for (name, providers) in [
        (
            "record_success_two_threads_same_provider",
            ["openai", "openai"],
        ),
        (
            "record_success_two_threads_two_providers",
            ["openai", "anthropic"],
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for provider in providers {
                        let registry = registry.clone();
                        scope.spawn(move || {
                            for _ in 0..iters {
                                registry.record(black_box(provider), Outcome::Success, latency);
                            }
                        });
                    }
                });
                // Per recorded outcome: two threads each recorded `iters`.
                start.elapsed() / 2
            });
        });
    }
}

criterion_group!(benches, record);
criterion_main!(benches);
