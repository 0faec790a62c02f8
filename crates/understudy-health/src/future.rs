//! The response future of [`Health`](crate::Health): records the attempt's
//! outcome and latency, or fails fast.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use understudy_core::{BoxError, Classify, SharedClassifier};

use crate::registry::HealthRegistry;
use crate::state::{Entry, TrialGuard};

/// What the future records once the inner service answers.
pub(crate) struct Record {
    pub(crate) registry: HealthRegistry,
    pub(crate) entry: Arc<Entry>,
    /// The layer's classifier, which decides what the outcome was.
    pub(crate) classifier: SharedClassifier,
    pub(crate) start: Instant,
    /// Held until the outcome is recorded; dropped with the future if the
    /// caller goes away, which frees the trial slot.
    pub(crate) _trial: Option<TrialGuard>,
}

pin_project! {
    /// The response future of [`Health`](crate::Health).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(crate) state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<F> {
        Called {
            #[pin]
            future: F,
            record: Option<Record>,
        },
        Refused {
            error: Option<BoxError>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, record } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                if let Some(record) = record.take() {
                    let classifier = &record.classifier;
                    let outcome = match &result {
                        Ok(response) => classifier.classify_response(response),
                        Err(error) => classifier.classify_error(&**error),
                    };
                    let now = Instant::now();
                    record.registry.record_entry_at(
                        &record.entry,
                        outcome,
                        Some(now.saturating_duration_since(record.start)),
                        now,
                    );
                }
                Poll::Ready(result)
            }
            StateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "health future polled after completion".into()))),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
