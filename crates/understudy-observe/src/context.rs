//! The request a log event belongs to: `request_id`, `route`, `model` and
//! `key`, kept beside the `llm.request` span (which is at DEBUG, so usually
//! not built) while the request's future is polled, so the WARN and ERROR
//! events logged below it carry them as their own fields.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use tracing::Span;
use understudy_core::Operation;

use crate::request::semconv_operation;

/// One request's log fields. `route`, `model` and `key` are learnt once,
/// by the layers that read them ([`record_route`], [`record_model`],
/// [`record_key`]).
#[derive(Debug)]
pub(crate) struct RequestFields {
    pub(crate) request_id: Option<Box<str>>,
    pub(crate) route: OnceLock<Box<str>>,
    pub(crate) model: OnceLock<Box<str>>,
    pub(crate) key: OnceLock<Box<str>>,
    pub(crate) operation: Operation,
    /// The request's span (disabled unless a subscriber wants it).
    pub(crate) span: Span,
}

thread_local! {
    static CURRENT: Cell<Option<Arc<RequestFields>>> = const { Cell::new(None) };
}

impl RequestFields {
    pub(crate) fn new(
        request_id: Option<&str>,
        route: Option<&str>,
        operation: Operation,
        span: Span,
    ) -> Arc<Self> {
        let fields = Self {
            request_id: request_id.map(Box::from),
            route: OnceLock::new(),
            model: OnceLock::new(),
            key: OnceLock::new(),
            operation,
            span,
        };
        if let Some(route) = route {
            let _ = fields.route.set(Box::from(route));
        }
        Arc::new(fields)
    }

    /// Makes these the current request's fields on this thread until the
    /// guard drops (the previous ones are restored then).
    pub(crate) fn enter(self: &Arc<Self>) -> Entered {
        let previous = CURRENT.with(|current| current.replace(Some(Arc::clone(self))));
        Entered(previous)
    }
}

/// Restores the request fields that were current before.
pub(crate) struct Entered(Option<Arc<RequestFields>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| current.set(previous));
    }
}

/// The current request's fields, for a log event: each `None` when there
/// is no current request or it is not known yet.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Current<'a>(Option<&'a RequestFields>);

impl<'a> Current<'a> {
    pub(crate) fn request_id(self) -> Option<&'a str> {
        self.0.and_then(|fields| fields.request_id.as_deref())
    }

    pub(crate) fn route(self) -> Option<&'a str> {
        self.0
            .and_then(|fields| fields.route.get().map(|route| &**route))
    }

    pub(crate) fn model(self) -> Option<&'a str> {
        self.0
            .and_then(|fields| fields.model.get().map(|model| &**model))
    }

    pub(crate) fn key(self) -> Option<&'a str> {
        self.0.and_then(|fields| fields.key.get().map(|key| &**key))
    }

    /// The request's span, if there is a current request.
    pub(crate) fn span(self) -> Option<&'a Span> {
        self.0.map(|fields| &fields.span)
    }
}

/// Runs `f` with the current request's fields.
pub(crate) fn with_current<R>(f: impl FnOnce(Current<'_>) -> R) -> R {
    let fields = CURRENT.with(|current| {
        let fields = current.take();
        let copy = fields.clone();
        current.set(fields);
        copy
    });
    f(Current(fields.as_deref()))
}

/// Keeps `value` in the current request's `slot` and records it as
/// `field` on its span (on the current span when there is no current
/// request); `then` records more on the span when it is built.
fn learn(
    value: &str,
    field: &'static str,
    slot: impl Fn(&RequestFields) -> &OnceLock<Box<str>>,
    then: impl FnOnce(&RequestFields, &str),
) {
    let recorded = with_current(|current| {
        let fields = current.0?;
        let _ = slot(fields).set(Box::from(value));
        fields.span.record(field, value);
        if !fields.span.is_disabled() {
            then(fields, value);
        }
        Some(())
    });
    if recorded.is_none() {
        Span::current().record(field, value);
    }
}

/// Records the requested model on the current request: its `llm.request`
/// span's `model` field (and, for the trace export, `gen_ai.request.model`
/// and the exported name `{operation} {model}`) and the `model` of the
/// WARN and ERROR events logged while it is served. Call it from a layer
/// inside [`ObserveLayer`](crate::ObserveLayer) (the gateway's router
/// does).
///
/// # Example
///
/// ```
/// understudy_observe::record_model("gpt-4o-mini"); // no current request: nothing
/// ```
pub fn record_model(model: &str) {
    learn(
        model,
        "model",
        |fields| &fields.model,
        |fields, model| {
            let span = &fields.span;
            span.record("gen_ai.request.model", model);
            let name = format!("{} {model}", semconv_operation(fields.operation));
            // Exported spans are named `{operation} {model}`; the span may
            // have started already, so it is renamed too.
            #[cfg(feature = "otlp")]
            crate::otlp::rename(span, name.clone());
            span.record("otel.name", name);
        },
    );
}

/// Records the caller key's name (never the key) on the current request,
/// like [`record_model`].
///
/// # Example
///
/// ```
/// understudy_observe::record_key("search-team");
/// ```
pub fn record_key(name: &str) {
    learn(name, "key", |fields| &fields.key, |_, _| {});
}

/// Records the route on the current request for the WARN and ERROR events
/// logged while it is served (the `llm.request` span reads its `route`
/// from the request or response extensions).
///
/// # Example
///
/// ```
/// understudy_observe::record_route("chat");
/// ```
pub fn record_route(route: &str) {
    with_current(|current| {
        if let Some(fields) = current.0 {
            let _ = fields.route.set(Box::from(route));
        }
    });
}
