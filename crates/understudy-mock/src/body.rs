//! The response body: whole, or a paced list of pieces that may be cut.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::stats::Counters;

/// The error a cut body ends with; hyper then aborts the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("response cut short by a drop-after fault")]
pub(crate) struct Cut;

/// The body of every response the mock sends.
#[derive(Debug)]
pub(crate) struct MockBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Pieces(Box<Pieces>),
}

/// Pieces sent one after another, maybe apart in time, maybe cut.
#[derive(Debug)]
pub(crate) struct Pieces {
    items: VecDeque<Bytes>,
    first_delay: Option<Duration>,
    every_delay: Option<Duration>,
    cut_after: Option<usize>,
    /// A wait before the piece at this index.
    stall: Option<(usize, Duration)>,
    sent: usize,
    sleep: Option<Pin<Box<Sleep>>>,
    waited: bool,
    /// Has the body yielded once before its cut, so that the server flushes
    /// what was sent (the head at least) before it aborts?
    yielded_before_cut: bool,
    stream: Option<StreamGauge>,
}

impl Pieces {
    pub(crate) fn new(items: impl Into<VecDeque<Bytes>>) -> Self {
        Self {
            items: items.into(),
            first_delay: None,
            every_delay: None,
            cut_after: None,
            stall: None,
            sent: 0,
            sleep: None,
            waited: false,
            yielded_before_cut: false,
            stream: None,
        }
    }

    /// Waits this long before the first piece.
    pub(crate) fn first_delay(mut self, delay: Duration) -> Self {
        self.first_delay = Some(delay);
        self
    }

    /// Waits this long before every piece.
    pub(crate) fn every_delay(mut self, delay: Duration) -> Self {
        self.every_delay = Some(delay);
        self
    }

    /// Ends with an error after this many pieces.
    pub(crate) fn cut_after(mut self, pieces: usize) -> Self {
        self.cut_after = Some(pieces);
        self
    }

    /// Waits this long before the piece at `index` (counted from 0).
    pub(crate) fn stall_before(mut self, index: usize, delay: Duration) -> Self {
        self.stall = Some((index, delay));
        self
    }

    /// Counts as a stream in progress while the body lives.
    pub(crate) fn counted_in(mut self, counters: &Arc<Counters>) -> Self {
        self.stream = Some(StreamGauge::new(counters));
        self
    }
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
        }
    }

    pub(crate) fn pieces(pieces: Pieces) -> Self {
        Self {
            inner: Inner::Pieces(Box::new(pieces)),
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let pieces = match &mut self.get_mut().inner {
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Pieces(pieces) => pieces,
        };
        loop {
            if let Some(sleep) = &mut pieces.sleep {
                ready!(sleep.as_mut().poll(cx));
                pieces.sleep = None;
                pieces.waited = true;
            }
            if pieces.cut_after == Some(pieces.sent) {
                if !pieces.yielded_before_cut {
                    pieces.yielded_before_cut = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                pieces.items.clear();
                pieces.stream = None;
                return Poll::Ready(Some(Err(Cut)));
            }
            if pieces.items.is_empty() {
                pieces.stream = None;
                return Poll::Ready(None);
            }
            if !pieces.waited {
                let delay = match pieces.stall {
                    Some((index, delay)) if index == pieces.sent => Some(delay),
                    _ if pieces.sent == 0 => pieces.first_delay.or(pieces.every_delay),
                    _ => pieces.every_delay,
                };
                if let Some(delay) = delay.filter(|d| !d.is_zero()) {
                    pieces.sleep = Some(Box::pin(tokio::time::sleep(delay)));
                    continue;
                }
            }
            pieces.waited = false;
            pieces.sent += 1;
            return Poll::Ready(pieces.items.pop_front().map(|b| Ok(Frame::data(b))));
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Pieces(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Pieces(_) => SizeHint::default(),
        }
    }
}

/// One stream in progress, for as long as it lives.
#[derive(Debug)]
pub(crate) struct StreamGauge(Arc<Counters>);

impl StreamGauge {
    fn new(counters: &Arc<Counters>) -> Self {
        counters
            .streams_in_progress
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(Arc::clone(counters))
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0
            .streams_in_progress
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
