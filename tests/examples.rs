//! The examples compile and run to success: each one's `main` is called
//! here, as `cargo run --example <name>` would.

use std::process::ExitCode;

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/fallback_demo.rs"]
mod fallback_demo;

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/axum_app.rs"]
mod axum_app;

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/hyper_sidecar.rs"]
mod hyper_sidecar;

/// `ExitCode` has no `PartialEq`; its `Debug` tells success apart.
fn succeeded(code: ExitCode) -> bool {
    format!("{code:?}") == format!("{:?}", ExitCode::SUCCESS)
}

#[test]
fn fallback_demo_serves_every_request_and_returns_to_the_primary() {
    assert!(succeeded(fallback_demo::main()));
}

#[test]
fn axum_app_serves_chat_next_to_its_own_routes() {
    assert!(succeeded(axum_app::main()));
}

#[test]
fn hyper_sidecar_serves_chat_without_axum() {
    if let Err(error) = hyper_sidecar::main() {
        panic!("hyper_sidecar failed: {error}");
    }
}
