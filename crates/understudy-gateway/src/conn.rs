//! [`ConnIo`]: the socket of one accepted connection, closed when the
//! caller is too slow to send a request head or leaves the connection idle.
//!
//! Two clocks, one timer:
//! - **keep-alive**: no request in flight and nothing received since the
//!   last request or response byte: closed after `keep_alive`;
//! - **header read**: the first bytes of a request head arrived while no
//!   request was in flight: the head must be complete (the request
//!   dispatched) within `header_read` of them, or the connection closes
//!   (the slow-loris defence).
//!
//! While a request is in flight neither clock runs: the request deadline,
//! the body read timeout and the providers' timeouts bound that time.
//! [`RequestTracker`] tells the socket when requests start and end.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use understudy_core::time::saturating_add as after;

/// The two idle bounds of a connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// An idle keep-alive connection is closed after this long.
    pub keep_alive: Duration,
    /// A request head must be complete this long after its first byte.
    pub header_read: Duration,
}

/// Shared between a connection's socket and its service: which requests
/// started and how many are in flight.
#[derive(Debug, Default)]
pub struct RequestTracker {
    /// Requests started plus requests ended on this connection so far.
    events: AtomicU64,
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    /// The socket's reader, waiting for the last request to end.
    waiter: Mutex<Option<Waker>>,
}

impl RequestTracker {
    /// Marks a request dispatched; the guard ends it when dropped (when its
    /// response body ends or is dropped).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    fn wait(&self, waker: &Waker) {
        let mut waiter = self.waiter.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *waiter {
            Some(current) if current.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }
}

/// A request in flight; see [`RequestTracker::start`].
pub struct InFlight(Arc<RequestTracker>);

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.events.fetch_add(1, Ordering::Relaxed);
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiter = self
                .0
                .waiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waiter {
                waker.wake();
            }
        }
    }
}

/// A connection's socket with the keep-alive and header-read clocks; see
/// the module docs.
pub struct ConnIo<T> {
    io: T,
    tracker: Arc<RequestTracker>,
    limits: ConnLimits,
    timer: Pin<Box<Sleep>>,
    /// What `timer` is set to.
    deadline: Instant,
    /// The last time bytes moved or a request started.
    last_activity: Instant,
    /// When the first byte of a request head arrived, while none was in
    /// flight.
    head_started: Option<Instant>,
    /// `tracker.events()` when last looked at.
    seen_events: u64,
}

impl<T> fmt::Debug for ConnIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnIo")
            .field("limits", &self.limits)
            .field("head_started", &self.head_started)
            .finish_non_exhaustive()
    }
}

impl<T> ConnIo<T> {
    /// Wraps an accepted socket.
    pub fn new(io: T, tracker: Arc<RequestTracker>, limits: ConnLimits) -> Self {
        let now = Instant::now();
        // A new connection owes a request head at once.
        let deadline = after(now, limits.header_read);
        Self {
            io,
            tracker,
            limits,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
            last_activity: now,
            head_started: Some(now),
            seen_events: 0,
        }
    }

    /// Notes requests started or ended since last time: a dispatched
    /// request ends the head clock, and both are activity. The clock is
    /// read (`now`) only when something changed and no request is left in
    /// flight (until then no clock runs, and the last request's end will
    /// be noted): this runs on every read that finds nothing.
    fn catch_up(&mut self, now: impl FnOnce() -> Instant) {
        let events = self.tracker.events();
        if events != self.seen_events {
            self.seen_events = events;
            self.head_started = None;
            if self.tracker.in_flight() == 0 {
                self.last_activity = now();
            }
        }
    }

    /// Bytes written with no request in flight are activity: the
    /// keep-alive clock counts from the end of the last response. While a
    /// request is in flight no clock runs, and its end is noted by
    /// [`catch_up`](Self::catch_up).
    fn note_written(&mut self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result
            && *n > 0
            && self.tracker.in_flight() == 0
        {
            self.last_activity = Instant::now();
        }
    }

    /// Polls the idle clocks; `Ready` means the connection must close.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.catch_up(Instant::now);
        if self.tracker.in_flight() > 0 {
            self.tracker.wait(cx.waker());
            // The last request may have ended between the two loads.
            if self.tracker.in_flight() > 0 {
                return Poll::Pending;
            }
        }
        let (deadline, what) = match self.head_started {
            Some(started) => (after(started, self.limits.header_read), "request head"),
            None => (
                after(self.last_activity, self.limits.keep_alive),
                "next request",
            ),
        };
        // The timer is moved earlier at once, and later only when it goes
        // off: every request moves the keep-alive deadline later, and
        // re-arming the timer each time would cost every request a timer
        // update.
        if deadline < self.deadline {
            self.deadline = deadline;
            self.timer.as_mut().reset(deadline);
        }
        loop {
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if deadline > self.deadline => {
                    self.deadline = deadline;
                    self.timer.as_mut().reset(deadline);
                }
                Poll::Ready(()) => {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the connection timed out waiting for the {what}"),
                    ));
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    if this.tracker.in_flight() == 0 {
                        let now = Instant::now();
                        this.catch_up(|| now);
                        this.last_activity = now;
                        if this.head_started.is_none() {
                            this.head_started = Some(now);
                        }
                    } else {
                        // A request's body: no clock runs until it ends.
                        this.catch_up(Instant::now);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.poll_expired(cx) {
                Poll::Ready(error) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note_written(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note_written(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        keep_alive: Duration::from_mins(1),
        header_read: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn a_head_that_never_completes_times_out() {
        let (mut client, server) = duplex(64);
        let tracker = Arc::new(RequestTracker::default());
        let mut io = ConnIo::new(server, tracker, LIMITS);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 16);
        let started = Instant::now();
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_stop_the_clocks_and_idle_ones_use_keep_alive() {
        let (mut client, server) = duplex(64);
        let tracker = Arc::new(RequestTracker::default());
        let mut io = ConnIo::new(server, tracker.clone(), LIMITS);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 18);
        let request = tracker.start();
        // A request in flight for longer than both clocks is not cut.
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let started = Instant::now();
            let result = io.read(&mut buf).await;
            (result.map_err(|e| e.kind()), started.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!read.is_finished());
        drop(request);
        let (result, waited) = read.await.unwrap();
        assert_eq!(result, Err(io::ErrorKind::TimedOut));
        // Ended 100 s in; then 60 s of keep-alive.
        assert_eq!(waited, Duration::from_secs(160));
    }

    #[tokio::test(start_paused = true)]
    async fn each_response_gives_the_connection_a_full_keep_alive() {
        let (mut client, server) = duplex(64);
        let tracker = Arc::new(RequestTracker::default());
        let mut io = ConnIo::new(server, tracker.clone(), LIMITS);
        let started = Instant::now();
        let mut buf = [0u8; 64];
        for at in [0, 30, 70] {
            tokio::time::sleep_until(started + Duration::from_secs(at)).await;
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert_eq!(io.read(&mut buf).await.unwrap(), 18);
            let request = tracker.start();
            io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            drop(request);
            // Idle until the next request: the clock must not go off at
            // a deadline an earlier response set.
            let next = tokio::time::timeout(Duration::from_secs(30), io.read(&mut buf)).await;
            assert!(next.is_err(), "closed {at} s in, too soon");
        }
        // The last response left 70 s in: 60 s of keep-alive after it.
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(130));
    }
}
