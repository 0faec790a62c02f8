//! Test helpers: a tracing layer that captures events and closed spans with
//! their fields, a shared log buffer, and metric snapshots.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, Once};

use metrics_util::debugging::{DebugValue, Snapshotter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// One captured event or closed span.
#[derive(Clone, Debug)]
pub struct Captured {
    pub span: bool,
    pub name: String,
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    pub fn all(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }

    /// Events whose `event` field is `name`.
    pub fn events(&self, name: &str) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|c| !c.span && c.field("event") == Some(name))
            .collect()
    }

    /// Closed spans named `name`.
    pub fn spans(&self, name: &str) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|c| c.span && c.name == name)
            .collect()
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// A buffer a `fmt` layer writes into.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<(Capture, Buffer)>> = const { RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// Routes records to the capture of the thread they happen on.
#[derive(Clone, Copy)]
struct Route;

fn current() -> Option<(Capture, Buffer)> {
    CURRENT.with(|current| current.borrow().clone())
}

impl<S> tracing_subscriber::Layer<S> for Route
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if let Some((capture, _)) = current() {
            let mut fields = Fields::default();
            event.record(&mut fields);
            capture.0.lock().unwrap().push(Captured {
                span: false,
                name: event.metadata().name().to_owned(),
                level: *event.metadata().level(),
                fields: fields.0,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some((capture, _)) = current() {
            let span = ctx.span(&id).unwrap();
            let fields = span
                .extensions()
                .get::<Fields>()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            capture.0.lock().unwrap().push(Captured {
                span: true,
                name: span.name().to_owned(),
                level: *span.metadata().level(),
                fields,
            });
        }
    }
}

/// Writes JSON lines into the buffer of the thread they happen on.
#[derive(Clone, Copy)]
struct ThreadBuffer;

impl io::Write for ThreadBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((_, buffer)) = current() {
            buffer.0.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadBuffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// One global subscriber for the whole test binary: thread-local default
/// subscribers race on tracing's callsite interest cache when tests run in
/// parallel, a global one does not. Records go to the capture of the
/// thread they happen on (tests run on a current-thread runtime).
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let json = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(ThreadBuffer);
        tracing_subscriber::registry()
            .with(Route)
            .with(json)
            .try_init()
            .unwrap();
    });
}

/// Captures everything (TRACE and up) on this thread until the guard drops.
pub fn capture() -> (Capture, Guard) {
    let (capture, _, guard) = capture_with_json();
    (capture, guard)
}

/// Captures structured records and JSON log lines (with span fields) on
/// this thread until the guard drops.
pub fn capture_with_json() -> (Capture, Buffer, Guard) {
    install();
    let capture = Capture::default();
    let buffer = Buffer::default();
    CURRENT.with(|current| *current.borrow_mut() = Some((capture.clone(), buffer.clone())));
    (capture, buffer, Guard(()))
}

/// One metric in a snapshot.
#[derive(Debug)]
pub struct Metric {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: DebugValue,
}

pub fn metrics(snapshotter: &Snapshotter) -> Vec<Metric> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| Metric {
            name: key.key().name().to_owned(),
            labels: key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
            value,
        })
        .collect()
}

/// The counter `name` with exactly `labels`, if registered.
pub fn counter(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    find(metrics, name, labels).map(|m| match m.value {
        DebugValue::Counter(value) => value,
        ref other => panic!("{name} is not a counter: {other:?}"),
    })
}

/// The number of samples of the histogram `name` with exactly `labels`.
pub fn histogram_count(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> usize {
    find(metrics, name, labels).map_or(0, |m| match &m.value {
        DebugValue::Histogram(values) => values.len(),
        other => panic!("{name} is not a histogram: {other:?}"),
    })
}

/// The gauge `name` with exactly `labels`.
pub fn gauge(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    find(metrics, name, labels).map(|m| match m.value {
        DebugValue::Gauge(value) => value.into_inner(),
        ref other => panic!("{name} is not a gauge: {other:?}"),
    })
}

fn find<'m>(metrics: &'m [Metric], name: &str, labels: &[(&str, &str)]) -> Option<&'m Metric> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    metrics.iter().find(|m| m.name == name && m.labels == want)
}
