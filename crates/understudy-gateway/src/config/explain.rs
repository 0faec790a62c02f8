//! `--check --explain`: the settings each route's targets run with, once
//! the route's own (`timeout_ms`, `first_chunk_timeout_ms`,
//! `[routes.retry]`, `fallback_on`, `resume`, `max_resume_bytes`, `hedge_after_ms`, `max_hedges`,
//! `hedge_budget_ratio`) are laid over the providers' and the
//! global `[retry]`, each marked with where it came from.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Config, RouteConfig};

/// Where an effective setting came from.
fn source(from_route: bool, otherwise: &'static str) -> &'static str {
    if from_route { "route" } else { otherwise }
}

fn ms(duration: Duration) -> u128 {
    duration.as_millis()
}

impl Config {
    /// The effective settings of every route, one block per route, for
    /// `--check --explain`. Names and numbers only: no value a secret
    /// could be in.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for route in &self.routes {
            explain_route(self, route, &mut out);
        }
        out
    }
}

fn explain_route(config: &Config, route: &RouteConfig, out: &mut String) {
    let kinds: Vec<&str> = route
        .fallback_on
        .kinds()
        .map(understudy_fallback::FallbackOn::as_str)
        .collect();
    let retry = route.effective_retry(config.retry);
    let own_retry = !route.retry.is_empty();
    // Writing to a `String` cannot fail.
    let _ = writeln!(out, "route `{}`", route.model);
    let _ = writeln!(
        out,
        "  fallback_on: {}",
        if kinds.is_empty() {
            "nothing (the first target's answer is final)".to_owned()
        } else {
            kinds.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  retry: max_retries {}, backoff {} ms to {} ms, Retry-After honoured up to {} ms ({})",
        retry.get_max_retries(),
        ms(retry.get_base_delay()),
        ms(retry.get_max_delay()),
        ms(retry.get_max_retry_after()),
        source(own_retry, "[retry]"),
    );
    if route.resume {
        let _ = writeln!(
            out,
            "  resume: on, up to {} bytes sent ({})",
            route.effective_max_resume_bytes(),
            source(route.max_resume_bytes.is_some(), "default"),
        );
    } else {
        let _ = writeln!(
            out,
            "  resume: off (a break after the commit ends the stream)"
        );
    }
    match route.effective_hedge() {
        Some((after, max, ratio)) => {
            let _ = writeln!(
                out,
                "  hedge: after {} ms, at most {max} per request, budget ratio {ratio}",
                ms(after)
            );
        }
        None => {
            let _ = writeln!(out, "  hedge: off");
        }
    }
    for (i, target) in route.targets.iter().enumerate() {
        let balanced = target.is_balanced();
        if balanced {
            let _ = writeln!(out, "  {}. {target}", i + 1);
        }
        for (provider_name, model, weight) in target.deployments() {
            let Some(entry) = config.provider(provider_name) else {
                continue;
            };
            let provider = &entry.provider;
            let lead = if balanced {
                format!("     {provider_name}/{model} ×{weight}")
            } else {
                format!("  {}. {provider_name}/{model}", i + 1)
            };
            let _ = writeln!(
                out,
                "{lead}: timeout {} ms ({}), first chunk {} ms ({}), prefill {}, stream usage {}",
                ms(route.attempt_timeout(provider)),
                source(route.timeout_ms.is_some(), "provider"),
                ms(route.first_chunk_timeout(provider)),
                source(route.first_chunk_timeout_ms.is_some(), "provider"),
                entry.effective_prefill().as_str(),
                if provider.stream_usage { "on" } else { "off" },
            );
        }
    }
}
