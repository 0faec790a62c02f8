//! One builder for a provider's target stack.
//!
//! A target is one model at one provider, wrapped in the layers that keep
//! calls to it alive. [`TargetStack`] puts them in the one order that works
//! and wires them to each other:
//!
//! ```text
//! Retry → Health → Timeout → FirstChunk → Attempt telemetry → the provider's service
//! ```
//!
//! - retry is outermost, so each try is recorded by health and bounded by
//!   the timeout on its own;
//! - health also hears of streams that break after the commit (the
//!   first-chunk guard reports them), without being told;
//! - one [`Classify`](understudy_core::Classify) decides retry, health, the
//!   commit point and telemetry alike;
//! - every layer is optional, and the result is one nameable, boxed
//!   [`TargetService`] in a [`Target`](understudy_fallback::Target) ready
//!   for a [`Fallback`](understudy_fallback::Fallback).
//!
//! The gateway builds every target with it, and so can an application:
//!
//! ```
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use tower::{ServiceExt, service_fn};
//! use understudy_core::{ReplayBody, ResponseBody};
//! use understudy_fallback::Fallback;
//! use understudy_health::{HealthConfig, HealthRegistry};
//! use understudy_retry::RetryConfig;
//! use understudy_stack::TargetStack;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = HealthRegistry::new(HealthConfig::default());
//! let provider = service_fn(|_: Request<ReplayBody>| async {
//!     let answer = r#"{"id":"c1","object":"chat.completion","choices":[]}"#;
//!     Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::from(answer)))
//! });
//! let target = TargetStack::new("openai", "gpt-4o-mini", provider)
//!     .retry(RetryConfig::default())
//!     .health(&registry)
//!     .timeout(Duration::from_secs(30))
//!     .first_chunk(Duration::from_secs(15))
//!     .build();
//! let fallback = Fallback::builder().target(target).availability(registry).build();
//!
//! let response = fallback.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```
#![deny(missing_docs)]

mod target;

pub use self::target::{TargetService, TargetStack};
