//! Live reload over loopback: a new file swapped in without a failed
//! request, a bad one refused, health carried over, streams in flight kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode};
use understudy_core::ProviderState;
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;
use understudy_gateway::reload::{ReloadError, Reloader};
use understudy_mock::{MockConfig, MockProvider, WireFormat};

mod support;
use support::{Served, fault, mock};

fn provider(name: &str, mock: &MockProvider) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"KEY\"\n",
        mock.base_url()
    )
}

fn route(model: &str, provider: &str) -> String {
    format!(
        "[[routes]]\nmodel = \"{model}\"\ntargets = [ {{ provider = \"{provider}\", model = \"m\" }} ]\n"
    )
}

const HEAD: &str = "[server]\nlisten = \"127.0.0.1:0\"\nrequest_timeout_ms = 60000\n\n[health]\nconsecutive_failures = 2\nprobe_interval_secs = 0\nbase_ejection_secs = 300\n\n";

/// A file of its own per test.
fn file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "understudy-reload-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Serves the gateway `text` describes, reloading from `path`.
async fn serve(path: &PathBuf, text: &str) -> (Served, Reloader) {
    std::fs::write(path, text).unwrap();
    let config = Config::from_file(path).unwrap();
    let gateway = Gateway::new(&config, |_| Some("sk-test".to_owned())).unwrap();
    let reloader = gateway.reloader();
    reloader.watch_file(path.clone(), |_| Some("sk-test".to_owned()));
    (Served::serve(gateway).await, reloader)
}

async fn ask(served: &Served, model: &str) -> support::Reply {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    served
        .send(Method::POST, "/v1/chat/completions", &[], &body)
        .await
}

#[tokio::test]
async fn a_reload_swaps_routes_and_a_bad_file_keeps_the_running_ones() {
    let one = mock(WireFormat::OpenAi, "one").await;
    let two = mock(WireFormat::OpenAi, "two").await;
    let path = file("swap", "");
    let first = format!(
        "{HEAD}{}{}{}",
        provider("one", &one),
        provider("two", &two),
        route("chat", "one")
    );
    let (served, reloader) = serve(&path, &first).await;
    assert_eq!(
        ask(&served, "chat").await.header("x-understudy-provider"),
        "one"
    );

    let second = format!(
        "{HEAD}{}{}{}{}",
        provider("one", &one),
        provider("two", &two),
        route("chat", "two"),
        route("extra", "one")
    );
    std::fs::write(&path, &second).unwrap();
    let reloaded = reloader.reload().unwrap();
    assert_eq!(reloaded.routes, 2);
    assert!(reloaded.restart_needed.is_empty(), "{reloaded:?}");
    assert_eq!(
        ask(&served, "chat").await.header("x-understudy-provider"),
        "two"
    );
    assert_eq!(ask(&served, "extra").await.status, StatusCode::OK);
    let models = served.send(Method::GET, "/v1/models", &[], "").await;
    assert!(models.body.contains("\"extra\""), "{}", models.body);

    // A typo: refused, naming the key; the running routes stay.
    std::fs::write(&path, second.replace("targets =", "tragets =")).unwrap();
    let error = reloader.reload().unwrap_err();
    assert!(matches!(error, ReloadError::Config { .. }));
    assert!(error.to_string().contains("tragets"), "{error}");
    assert_eq!(
        ask(&served, "chat").await.header("x-understudy-provider"),
        "two"
    );
    assert_eq!(ask(&served, "extra").await.status, StatusCode::OK);

    // A value out of range names its key too, and so does an unset key
    // variable.
    std::fs::write(
        &path,
        second.replace("request_timeout_ms = 60000", "request_timeout_ms = 0"),
    )
    .unwrap();
    let error = reloader.reload().unwrap_err().to_string();
    assert!(error.contains("server.request_timeout_ms"), "{error}");
    assert_eq!(ask(&served, "chat").await.status, StatusCode::OK);

    // Both kinds were counted.
    let metrics = served.send(Method::GET, "/metrics", &[], "").await.body;
    let ok = metric(&metrics, "understudy_config_reloads_total{result=\"ok\"}");
    let failed = metric(
        &metrics,
        "understudy_config_reloads_total{result=\"error\"}",
    );
    assert!(ok >= 1.0 && failed >= 2.0, "{metrics}");
    served.stop_with([one, two]).await;
}

/// The value of the sample `series` in a Prometheus text page (0 without
/// one; tests in this binary share the process's recorder, so counts are
/// lower bounds).
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn server_changes_wait_for_a_restart_and_are_named() {
    let one = mock(WireFormat::OpenAi, "one").await;
    let path = file("server", "");
    let text = format!("{HEAD}{}{}", provider("one", &one), route("chat", "one"));
    let (served, reloader) = serve(&path, &text).await;
    std::fs::write(
        &path,
        text.replace("request_timeout_ms = 60000", "request_timeout_ms = 50000"),
    )
    .unwrap();
    let reloaded = reloader.reload().unwrap();
    assert_eq!(reloaded.restart_needed, ["server"]);
    assert_eq!(ask(&served, "chat").await.status, StatusCode::OK);
    served.stop_with([one]).await;
}

#[tokio::test]
async fn health_carries_over_unless_the_provider_moved() {
    let stays = mock(WireFormat::OpenAi, "stays").await;
    let moves = mock(WireFormat::OpenAi, "moves").await;
    let elsewhere = mock(WireFormat::OpenAi, "elsewhere").await;
    stays.set_fault(fault("status:503"));
    moves.set_fault(fault("status:503"));
    let path = file("health", "");
    let text = format!(
        "{HEAD}{}{}{}{}[retry]\nmax_retries = 0\n",
        provider("stays", &stays),
        provider("moves", &moves),
        route("a", "stays"),
        route("b", "moves")
    );
    std::fs::write(&path, &text).unwrap();
    let config = Config::from_file(&path).unwrap();
    let gateway = Gateway::new(&config, |_| Some("sk-test".to_owned())).unwrap();
    let registry = gateway.registry().clone();
    let reloader = gateway.reloader();
    reloader.watch_file(path.clone(), |_| Some("sk-test".to_owned()));
    let served = Served::serve(gateway).await;
    for model in ["a", "a", "b", "b"] {
        assert_eq!(ask(&served, model).await.status, StatusCode::BAD_GATEWAY);
    }
    let state = |name: &str| {
        registry
            .snapshot()
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.state)
    };
    assert_eq!(state("stays"), Some(ProviderState::Ejected));
    assert_eq!(state("moves"), Some(ProviderState::Ejected));

    // `moves` now points elsewhere: it starts afresh; `stays` is still out.
    std::fs::write(
        &path,
        text.replace(&moves.base_url(), &elsewhere.base_url()),
    )
    .unwrap();
    let reloaded = reloader.reload().unwrap();
    assert_eq!(reloaded.reset, ["moves"]);
    assert_eq!(state("stays"), Some(ProviderState::Ejected));
    assert_eq!(state("moves"), Some(ProviderState::Healthy));
    assert_eq!(ask(&served, "b").await.status, StatusCode::OK);
    assert_eq!(
        state("stays"),
        Some(ProviderState::Ejected),
        "the ejection outlived the reload"
    );
    served.stop_with([stays, moves, elsewhere]).await;
}

#[tokio::test]
async fn a_reload_under_load_fails_no_request_and_keeps_streams_in_flight() {
    // A stream of 20 chunks, one every 500 ms: 10 s in flight.
    let long = MockProvider::start(
        MockConfig::new()
            .name("long")
            .stream_chunks(20)
            .fault(fault("drip:500")),
    )
    .await
    .unwrap();
    let before = mock(WireFormat::OpenAi, "before").await;
    let after = mock(WireFormat::OpenAi, "after").await;
    let path = file("load", "");
    let providers = format!(
        "{}{}{}",
        provider("long", &long),
        provider("before", &before),
        provider("after", &after)
    );
    let first = format!(
        "{HEAD}{providers}{}{}",
        route("chat", "before"),
        route("story", "long")
    );
    // The second file drops the streaming route altogether.
    let second = format!("{HEAD}{providers}{}", route("chat", "after"));
    let (served, reloader) = serve(&path, &first).await;
    let served = Arc::new(served);

    let stream = {
        let served = served.clone();
        tokio::spawn(async move {
            let body =
                r#"{"model":"story","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
            served
                .send(Method::POST, "/v1/chat/completions", &[], body)
                .await
        })
    };
    // The stream has started (the mock has its request) before the reload.
    while long.stats().requests == 0 {
        tokio::task::yield_now().await;
    }

    let sent = Arc::new(AtomicUsize::new(0));
    let load = (0..16)
        .map(|_| {
            let served = served.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while sent.fetch_add(1, Ordering::Relaxed) < 1000 {
                    statuses.push(ask(&served, "chat").await.status);
                }
                statuses
            })
        })
        .collect::<Vec<_>>();
    // Reload once a third of the requests have gone out.
    while sent.load(Ordering::Relaxed) < 330 {
        tokio::task::yield_now().await;
    }
    std::fs::write(&path, &second).unwrap();
    reloader.reload().unwrap();

    let mut served_count = 0;
    for task in load {
        for status in task.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
            served_count += 1;
        }
    }
    assert_eq!(served_count, 1000);
    assert!(before.stats().requests > 0 && after.stats().requests > 0);
    assert_eq!(before.stats().requests + after.stats().requests, 1000);

    let story = stream.await.unwrap();
    story.assert_event_stream();
    assert_eq!(story.data().last(), Some(&"[DONE]"), "{}", story.body);
    assert!(!story.body.contains("error"), "{}", story.body);
    assert_eq!(story.header("x-understudy-provider"), "long");
    // After the reload the route is gone.
    assert_eq!(ask(&served, "story").await.status, StatusCode::NOT_FOUND);
    let served = Arc::try_unwrap(served).ok().unwrap();
    served.stop_with([long, before, after]).await;
}

/// Reads `lines` until one holds `needle`, or panics at the limit.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    tokio::time::timeout(support::LIMIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the gateway is running");
            if line.contains(needle) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with `{needle}`"))
}

#[tokio::test]
async fn the_binary_reloads_on_sighup() {
    use tokio::io::AsyncBufReadExt;

    let one = mock(WireFormat::OpenAi, "one").await;
    let path = file("sighup", "");
    let text = format!("{HEAD}{}{}", provider("one", &one), route("chat", "one"));
    std::fs::write(&path, &text).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("--config")
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KEY", "sk-test")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_line(&mut lines, "understudy gateway listening").await;

    std::fs::write(
        &path,
        text.replace("model = \"chat\"", "model = \"renamed\""),
    )
    .unwrap();
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let line = wait_for_line(&mut lines, "config_reload").await;
    assert!(line.contains("configuration reloaded"), "{line}");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"renamed","messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap();
    let response = tokio::time::timeout(support::LIMIT, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    child.kill().await.unwrap();
    one.shutdown().await;
}

/// A gateway with `[auth]`: `keys` (name, variable, rpm) and an admin key.
fn with_auth(base: &str, keys: &[(&str, &str, u32)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(name, var, rpm)| {
            format!("{{ name = \"{name}\", key_env = \"{var}\", routes = [\"*\"], rpm = {rpm} }}")
        })
        .collect();
    format!(
        "{base}\n[auth]\nkeys = [ {} ]\nadmin_key_env = \"ADMIN\"\n",
        keys.join(", ")
    )
}

#[allow(clippy::unnecessary_wraps)] // a `lookup`: `None` would be "not set"
fn secret(var: &str) -> Option<String> {
    Some(format!("sk-{}", var.to_ascii_lowercase()))
}

async fn ask_as(served: &Served, key: &str) -> support::Reply {
    let body = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    let bearer = format!("Bearer {key}");
    served
        .send(
            Method::POST,
            "/v1/chat/completions",
            &[("authorization", &bearer)],
            body,
        )
        .await
}

#[tokio::test]
async fn admin_reload_swaps_caller_keys_and_keeps_their_rate() {
    let one = mock(WireFormat::OpenAi, "one").await;
    let path = file("admin", "");
    let base = format!("{HEAD}{}{}", provider("one", &one), route("chat", "one"));
    let first = with_auth(&base, &[("alice", "ALICE", 2), ("bob", "BOB", 100)]);
    std::fs::write(&path, &first).unwrap();
    let config = Config::from_file(&path).unwrap();
    let gateway = Gateway::new(&config, secret).unwrap();
    gateway.reloader().watch_file(path.clone(), secret);
    let served = Served::serve(gateway).await;

    // Alice spends her two requests of the minute.
    for _ in 0..2 {
        assert_eq!(ask_as(&served, "sk-alice").await.status, StatusCode::OK);
    }
    assert_eq!(
        ask_as(&served, "sk-alice").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Only the admin key may reload.
    let reload = |key: &'static str| {
        let served = &served;
        async move {
            let bearer = format!("Bearer {key}");
            served
                .send(
                    Method::POST,
                    "/admin/reload",
                    &[("authorization", &bearer)],
                    "",
                )
                .await
        }
    };
    let second = with_auth(&base, &[("alice", "ALICE", 2), ("carol", "CAROL", 100)]);
    std::fs::write(&path, &second).unwrap();
    assert_eq!(reload("sk-alice").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ask_as(&served, "sk-bob").await.status,
        StatusCode::OK,
        "a refused reload changed nothing"
    );
    let reloaded = reload("sk-admin").await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.body);
    assert_eq!(reloaded.json()["result"], "ok");

    // Bob's key is gone, Carol's works, Alice is still over her minute.
    assert_eq!(
        ask_as(&served, "sk-bob").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ask_as(&served, "sk-carol").await.status, StatusCode::OK);
    assert_eq!(
        ask_as(&served, "sk-alice").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A bad file: 422 naming the key; the keys stay.
    std::fs::write(&path, second.replace("admin_key_env", "admin_key_evn")).unwrap();
    let refused = reload("sk-admin").await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(refused.body.contains("admin_key_evn"), "{}", refused.body);
    assert!(!refused.body.contains("sk-"), "{}", refused.body);
    assert_eq!(ask_as(&served, "sk-carol").await.status, StatusCode::OK);
    served.stop_with([one]).await;
}

#[tokio::test]
async fn admin_reload_is_not_served_without_auth() {
    let one = mock(WireFormat::OpenAi, "one").await;
    let path = file("noadmin", "");
    let (served, _reloader) = serve(
        &path,
        &format!("{HEAD}{}{}", provider("one", &one), route("chat", "one")),
    )
    .await;
    let reply = served.send(Method::POST, "/admin/reload", &[], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    served.stop_with([one]).await;
}

#[tokio::test]
async fn telemetry_changes_wait_for_a_restart_and_are_named() {
    let one = mock(WireFormat::OpenAi, "one").await;
    let path = file("telemetry", "");
    let text = format!("{HEAD}{}{}", provider("one", &one), route("chat", "one"));
    let (served, reloader) = serve(&path, &text).await;
    std::fs::write(
        &path,
        format!("{text}\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n"),
    )
    .unwrap();
    let reloaded = reloader.reload().unwrap();
    assert_eq!(reloaded.restart_needed, ["telemetry"]);
    assert_eq!(ask(&served, "chat").await.status, StatusCode::OK);
    served.stop_with([one]).await;
}
