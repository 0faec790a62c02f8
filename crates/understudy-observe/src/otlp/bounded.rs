//! The bound on spans waiting for export, and the count of the ones lost:
//! [`Bounded`] admits a finished span only while fewer than the queue's
//! size wait (queued or in the batch being exported), and [`Counted`]
//! tells it when a batch leaves for the collector; a span refused, or in a
//! batch the collector did not take, is counted in
//! `understudy_otel_spans_dropped_total`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::counter;
use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

use crate::TARGET;
use crate::names::OTEL_SPANS_DROPPED_TOTAL;

/// Spans handed to the batch processor and not yet taken by the exporter.
#[derive(Clone, Debug, Default)]
pub(super) struct Waiting(Arc<AtomicUsize>);

fn dropped(reason: &'static str, spans: usize) {
    counter!(OTEL_SPANS_DROPPED_TOTAL, "reason" => reason)
        .increment(u64::try_from(spans).unwrap_or(u64::MAX));
}

/// A batch processor that drops (and counts) spans past `max` waiting.
pub(super) struct Bounded {
    inner: BatchSpanProcessor,
    waiting: Waiting,
    max: usize,
}

impl Bounded {
    pub(super) fn new(inner: BatchSpanProcessor, waiting: Waiting, max: usize) -> Self {
        Self {
            inner,
            waiting,
            max,
        }
    }
}

impl fmt::Debug for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .waiting
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max).then_some(waiting.saturating_add(1))
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            dropped("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// An exporter that releases the spans of each batch it takes from the
/// count of waiting ones, and counts the spans of a failed export. The
/// first failure of an outage is logged (WARN `trace_export_failed`, never
/// the error's text, which may hold the endpoint), and the first success
/// after it (INFO `trace_export_restored`).
#[derive(Debug)]
pub(super) struct Counted<E> {
    inner: E,
    waiting: Waiting,
    failing: AtomicBool,
}

impl<E> Counted<E> {
    pub(super) fn new(inner: E, waiting: Waiting) -> Self {
        Self {
            inner,
            waiting,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let _ = self
            .waiting
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                Some(waiting.saturating_sub(spans))
            });
        let result = self.inner.export(batch).await;
        if result.is_err() {
            dropped("export_failed", spans);
            if !self.failing.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    target: TARGET,
                    event = "trace_export_failed",
                    spans,
                    "the trace export failed; spans are dropped until the collector takes them",
                );
            }
        } else if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(
                target: TARGET,
                event = "trace_export_restored",
                "the trace export works again",
            );
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
