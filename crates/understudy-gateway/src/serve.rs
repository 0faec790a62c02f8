//! Serving the app: hyper-util's server with our own accept loop, so that
//! every limit a caller could otherwise exhaust has a bound.
//!
//! - Connections are served by [`ServeLimits::workers`] threads, each with
//!   its own single-threaded runtime (see `workers.rs`); the accept loop
//!   runs where [`serve`] is awaited and hands each connection to the
//!   least busy worker.
//! - `TCP_NODELAY` on every connection (a response written as head then
//!   body must not wait for the caller's delayed ACK).
//! - At most `max_connections` connections; the next one gets a 503 and is
//!   closed, and a failing `accept` (out of file descriptors) backs off
//!   instead of spinning.
//! - Each socket is a [`ConnIo`]: a request head must arrive within the
//!   header-read timeout of its first byte, and an idle keep-alive
//!   connection closes after the keep-alive timeout.
//! - Graceful shutdown: stop accepting, let requests in flight (streams
//!   included) finish for up to the drain time; event streams still running
//!   then end with an SSE error event ([`DrainBody`]) rather than a cut.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pin_project_lite::pin_project;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;
use understudy_core::{OpenAiError, Operation};

use crate::coalesce::CoalesceBody;
use crate::conn::{ConnIo, ConnLimits, InFlight, RequestTracker};
use crate::drain::DrainBody;
use crate::workers::Workers;
use understudy_core::HoldBody;

/// What [`serve`] bounds.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Per-connection idle bounds.
    pub conn: ConnLimits,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long requests in flight may run on at shutdown.
    pub drain: Duration,
    /// Threads serving connections (at least one).
    pub workers: usize,
}

/// Refusals (503 then close) written at once, beyond which a connection
/// over the limit is closed without a word.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take to write.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait after `accept` failed (typically: out of file
/// descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// After the drain ran out: how long streams get to send their error event.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// The answer to a connection over the limit: a 503 `overloaded` in the
/// OpenAI shape, then the connection closes.
fn refusal() -> Bytes {
    let body = OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the gateway is at its connection limit; retry shortly",
    )
    .with_code("overloaded")
    .to_json();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Bytes::from(answer)
}

/// Serves `app` on `listener` until `shutdown` completes, then drains; see
/// the module docs.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let workers = Workers::start(limits.workers)?;
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let refusal = refusal();
    let graceful = GracefulShutdown::new();
    let cut = CancellationToken::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(%error, "accepting a connection failed; backing off");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse(stream, &refusals, refusal.clone());
            continue;
        };
        // The socket leaves this runtime's I/O driver here and joins its
        // worker's: registered where it was accepted, each of its readiness
        // events would wake this thread first and the worker second.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "could not hand a connection to a worker");
                continue;
            }
        };
        let app = app.clone();
        let cut = cut.clone();
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let conn = limits.conn;
        workers.spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "a worker could not take a connection");
                    return;
                }
            };
            let tracker = Arc::new(RequestTracker::default());
            let io = TokioIo::new(ConnIo::new(stream, tracker.clone(), conn));
            let service = ConnService { app, tracker, cut };
            let connection = watcher.watch(
                builder
                    .serve_connection_with_upgrades(io, service)
                    .into_owned(),
            );
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        drain_ms = limits.drain.as_millis(),
        "shutting down: draining requests in flight"
    );
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!("drain timeout passed: ending the streams still open with an error event");
            cut.cancel();
            if tokio::time::timeout(CUT_GRACE, &mut drained).await.is_err() {
                tracing::warn!("closing the connections still open");
            }
        }
    }
    Ok(())
}

/// Answers a connection over the limit with a 503 and closes it, without
/// letting refusals pile up.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>, answer: Bytes) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await
        })
        .await;
        drop(permit);
    });
}

/// One connection's service: the app, with each response marked in flight
/// until its body ends, and event streams ended cleanly at the drain.
#[derive(Clone, Debug)]
struct ConnService {
    app: Router,
    tracker: Arc<RequestTracker>,
    cut: CancellationToken,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.tracker.start();
        // `Router::poll_ready` is always ready; each call routes on its own.
        let mut app = self.app.clone();
        ConnFuture {
            inner: app.call(request),
            in_flight: Some(in_flight),
            cut: self.cut.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`ConnService`].
    struct ConnFuture {
        #[pin]
        inner: axum::routing::future::RouteFuture<Infallible>,
        in_flight: Option<InFlight>,
        cut: CancellationToken,
    }
}

impl Future for ConnFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let Some(in_flight) = this.in_flight.take() else {
            return Poll::Ready(Ok(response));
        };
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        let cut = this.cut.clone();
        let operation = Operation::of(response.extensions());
        Poll::Ready(Ok(response.map(|body| {
            if streaming {
                Body::new(CoalesceBody::new(HoldBody::new(
                    DrainBody::new(body, cut, operation),
                    in_flight,
                )))
            } else {
                Body::new(HoldBody::new(body, in_flight))
            }
        })))
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_is_well_formed() {
        let refusal = super::refusal();
        let text = std::str::from_utf8(&refusal).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "{body}"
        );
    }

    /// Reads one `ok` response off `stream`.
    async fn exchange(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: gateway\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 1024];
        while !seen.ends_with(b"\r\n\r\nok") {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// A connection accepted on one thread and served by a worker is the
    /// worker's alone: its requests are answered while the accepting thread
    /// is stuck. (Registered with the accepting runtime's I/O driver, each
    /// readiness event needed that thread first.)
    #[test]
    fn an_accepted_connection_does_not_depend_on_the_accepting_thread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepting = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = super::ServeLimits {
            conn: crate::conn::ConnLimits {
                keep_alive: std::time::Duration::from_mins(1),
                header_read: std::time::Duration::from_mins(1),
            },
            max_connections: 16,
            drain: std::time::Duration::from_secs(1),
            workers: 1,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stuck, unstick) = std::sync::mpsc::channel::<()>();
        let (is_stuck, now_stuck) = std::sync::mpsc::channel::<()>();
        let handle = accepting.handle().clone();
        let server = std::thread::spawn(move || {
            accepting.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                super::serve(listener, app, async move { drop(stopped.await) }, limits)
                    .await
                    .unwrap();
            });
        });
        let test = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        test.block_on(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            assert!(exchange(&mut stream).await.starts_with("HTTP/1.1 200"));
            // Block the accepting thread in a task of its runtime.
            handle.spawn(async move {
                is_stuck.send(()).unwrap();
                let _ = unstick.recv();
            });
            now_stuck.recv().unwrap();
            let answer =
                tokio::time::timeout(std::time::Duration::from_secs(10), exchange(&mut stream))
                    .await
                    .expect("the second request waited on the accepting thread");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        });
        stuck.send(()).unwrap();
        stop.send(()).unwrap();
        server.join().unwrap();
    }
}
