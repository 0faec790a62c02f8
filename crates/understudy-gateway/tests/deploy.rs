//! What the repository ships for operators stays true to the code: the
//! Grafana dashboard (`deploy/grafana-dashboard.json`) queries only metrics
//! the gateway describes, and the Prometheus alert rules pass
//! `promtool check rules`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Keeps the name and kind of every metric described to it.
#[derive(Default)]
struct Described(Mutex<BTreeMap<String, Kind>>);

impl Described {
    fn add(&self, key: &KeyName, kind: Kind) {
        self.0.lock().unwrap().insert(key.as_str().to_owned(), kind);
    }
}

impl Recorder for Described {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(&key, Kind::Counter);
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(&key, Kind::Gauge);
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(&key, Kind::Histogram);
    }
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Every metric the gateway describes to its exporter, by name.
fn described() -> BTreeMap<String, Kind> {
    let recorder = Described::default();
    metrics::with_local_recorder(&recorder, || {
        understudy_observe::names::describe_metrics();
        understudy_shared_health::names::describe_metrics();
    });
    recorder.0.into_inner().unwrap()
}

/// Every `understudy_…` name in a query.
fn metric_names(expr: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("understudy_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            into.push(panel);
            walk(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    walk(&dashboard["panels"], &mut all);
    all
}

/// What is wrong with the queries of `dashboard`: a metric the gateway
/// does not describe, or a histogram queried without a series suffix. Also
/// gives the base names used.
fn check_queries(
    dashboard: &Value,
    described: &BTreeMap<String, Kind>,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut used = Vec::new();
    for panel in panels(dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        if panel["datasource"]["uid"] != "${DS_PROMETHEUS}" {
            problems.push(format!("{title}: its datasource is not ${{DS_PROMETHEUS}}"));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no query"));
        }
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            let names = metric_names(expr);
            if names.is_empty() {
                problems.push(format!("{title}: no metric in `{expr}`"));
            }
            for name in names {
                let (base, suffixed) = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix)
                            .filter(|base| described.get(*base) == Some(&Kind::Histogram))
                    })
                    .map_or((name, false), |base| (base, true));
                match described.get(base) {
                    None => problems.push(format!(
                        "{title}: `{name}` is no metric the gateway describes"
                    )),
                    Some(Kind::Histogram) if !suffixed => problems.push(format!(
                        "{title}: the histogram `{name}` is queried without _bucket, _count or _sum"
                    )),
                    Some(_) => used.push(base.to_owned()),
                }
            }
        }
    }
    (problems, used)
}

fn dashboard() -> Value {
    let path = repository().join("deploy/grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_dashboard_queries_only_metrics_the_gateway_describes() {
    let dashboard = dashboard();
    let described = described();
    assert!(described.contains_key("understudy_requests_total"));

    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");

    let (problems, used) = check_queries(&dashboard, &described);
    assert!(problems.is_empty(), "{problems:#?}");
    // The panels the dashboard promises.
    for name in [
        "understudy_requests_total",
        "understudy_fallbacks_total",
        "understudy_provider_state",
        "understudy_time_to_first_content_seconds",
        "understudy_request_duration_seconds",
        "understudy_attempts_total",
        "understudy_config_reloads_total",
    ] {
        assert!(used.iter().any(|u| u == name), "no panel shows {name}");
    }

    // The provider state timeline names each gauge value.
    let timeline = panels(&dashboard)
        .into_iter()
        .find(|p| p["type"] == "state-timeline")
        .expect("a state timeline");
    let mapped = &timeline["fieldConfig"]["defaults"]["mappings"][0]["options"];
    for (value, text) in [
        ("0", "healthy"),
        ("1", "cooling down"),
        ("2", "probing"),
        ("3", "ejected"),
    ] {
        assert_eq!(mapped[value]["text"], text, "{timeline}");
    }
}

#[test]
fn a_query_of_an_undescribed_metric_or_a_bare_histogram_is_caught() {
    let mut dashboard = dashboard();
    let described = described();
    let query = panels(&dashboard)
        .into_iter()
        .position(|p| p["type"] != "row")
        .unwrap();
    dashboard["panels"][query]["targets"][0]["expr"] = Value::from(
        "histogram_quantile(0.5, sum by (le) (rate(understudy_made_up_seconds_bucket[5m]))) + understudy_request_duration_seconds",
    );
    let (problems, _) = check_queries(&dashboard, &described);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("`understudy_made_up_seconds_bucket` is no metric"));
    assert!(
        problems[1].contains("histogram `understudy_request_duration_seconds` is queried without")
    );
}

#[test]
fn the_alert_rules_pass_promtool() {
    let rules = repository().join("crates/understudy-observe/deploy/prometheus-alerts.yml");
    assert!(rules.is_file(), "{}", rules.display());
    let required = std::env::var_os("UNDERSTUDY_REQUIRE_PROMTOOL").is_some();
    let output = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !required,
                "promtool is not on PATH, and UNDERSTUDY_REQUIRE_PROMTOOL says this check needs it"
            );
            // Straight to stderr: the notice shows even when the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: promtool is not on PATH; the alert rules were not checked (apt-get install prometheus)"
            );
            return;
        }
        Err(error) => panic!("promtool could not run: {error}"),
    };
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
