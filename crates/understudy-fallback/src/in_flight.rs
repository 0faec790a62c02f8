//! Requests in flight at one member of a balanced tier: counted from
//! dispatch until the response body ends or is dropped, so a stream counts
//! for as long as it lasts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use understudy_core::{HoldBody, ResponseBody};

/// One request in flight at a member: counted while it lives.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more request at `counter` until the guard is dropped.
    pub(crate) fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }

    /// Carries the guard into `body`: the request stays counted until the
    /// body ends, fails or is dropped.
    pub(crate) fn hold(self, body: ResponseBody) -> ResponseBody {
        ResponseBody::new(HoldBody::new(body, self))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
