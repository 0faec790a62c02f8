//! The server: the accept loop, connections, and the handle to it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::{MockConfig, WireFormat};
use crate::fault::{Fault, FaultPlan};
use crate::plan::{ActivePlan, Refusal, Target};
use crate::service;
use crate::stats::{Counters, MockStats};
use crate::wire::Wire;

/// A request the mock received, as [`MockProvider::last_request`] returns
/// it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The headers, as received (secrets included: this is a test tool).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the service and the accept loop share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) wire: Wire,
    pub(crate) counters: Arc<Counters>,
    seed: u64,
    has_faults: AtomicBool,
    plan: RwLock<Arc<ActivePlan>>,
    /// Bumped on every plan change.
    plan_changed: watch::Sender<u64>,
    last_request: Mutex<Option<RecordedRequest>>,
    http: http1::Builder,
}

impl Shared {
    fn active(&self) -> Arc<ActivePlan> {
        match self.plan.read() {
            Ok(plan) => Arc::clone(&plan),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The fault for one request or connection, if any rule matches.
    pub(crate) fn pick(&self, target: Target) -> Option<Fault> {
        if !self.has_faults.load(Relaxed) {
            return None;
        }
        self.active().pick(target, Instant::now())
    }

    pub(crate) fn faults(&self) -> FaultPlan {
        self.active().plan().clone()
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        tracing::info!(mock = %self.wire.name_header().to_str().unwrap_or("mock"), plan = %plan, "fault plan set");
        let active = Arc::new(ActivePlan::new(plan, self.seed, Instant::now()));
        let empty = active.is_empty();
        match self.plan.write() {
            Ok(mut plan) => *plan = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
        self.has_faults.store(!empty, Relaxed);
        self.plan_changed.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn last_request(&self) -> Option<RecordedRequest> {
        match self.last_request.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let old = match self.last_request.lock() {
            Ok(mut last) => last.replace(request),
            Err(poisoned) => poisoned.into_inner().replace(request),
        };
        drop(old);
    }
}

/// A running mock provider: a real HTTP server on a loopback port.
///
/// Dropping it stops the server and closes every connection, as
/// [`shutdown`](Self::shutdown) does without waiting.
///
/// ```
/// use understudy_mock::{Fault, MockConfig, MockProvider};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mock = MockProvider::start(MockConfig::new().name("primary")).await?;
/// assert!(mock.base_url().starts_with("http://127.0.0.1:"));
/// assert!(mock.base_url().ends_with("/v1"));
///
/// mock.set_fault(Fault::Status(503));
/// assert_eq!(mock.faults().to_string(), "status:503");
/// mock.clear_faults();
/// assert_eq!(mock.stats().requests, 0);
/// mock.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// Binds `config.listen` and starts serving. Must be called inside a
    /// tokio runtime: the server runs on spawned tasks.
    #[allow(clippy::unused_async)] // async so that starting can await in the future without an API change
    pub async fn start(config: MockConfig) -> io::Result<Self> {
        let listener = bind(config.listen)?;
        let addr = listener.local_addr()?;
        let mut http = http1::Builder::new();
        http.keep_alive(true).header_read_timeout(None);
        let now = Instant::now();
        let has_faults = !config.faults.is_empty();
        let shared = Arc::new(Shared {
            wire: match &config.text {
                Some(text) => {
                    Wire::with_text(config.format, &config.name, config.stream_chunks, text)
                }
                None => Wire::new(config.format, &config.name, config.stream_chunks),
            },
            counters: Arc::new(Counters::default()),
            seed: config.seed,
            has_faults: AtomicBool::new(has_faults),
            plan: RwLock::new(Arc::new(ActivePlan::new(config.faults, config.seed, now))),
            plan_changed: watch::Sender::new(0),
            last_request: Mutex::new(None),
            http,
        });
        let (shutdown, stop) = oneshot::channel();
        let task = tokio::spawn(accept_loop(Arc::clone(&shared), listener, addr, stop));
        tracing::info!(%addr, name = %config.name, format = %config.format, "mock provider listening");
        Ok(Self {
            shared,
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the mock listens on.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL providers are configured with: `http://127.0.0.1:PORT/v1`
    /// for the OpenAI and Anthropic formats; for Azure OpenAI, Gemini and
    /// Bedrock, whose clients take the endpoint's root and add the
    /// versioned path themselves, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        match self.format() {
            WireFormat::OpenAi | WireFormat::Anthropic => format!("http://{}/v1", self.addr),
            WireFormat::Azure | WireFormat::Gemini | WireFormat::Bedrock => {
                format!("http://{}", self.addr)
            }
        }
    }

    /// The wire format the mock speaks.
    pub fn format(&self) -> WireFormat {
        self.shared.wire.format()
    }

    /// Replaces the fault plan. Counts and durations start afresh, and the
    /// probability draws restart from the seed.
    ///
    /// A plan with a `refuse` rule closes every open connection (each after
    /// the answer it is sending), so that clients have to connect again.
    pub fn set_fault(&self, plan: impl Into<FaultPlan>) {
        self.shared.set_faults(plan.into());
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.set_faults(FaultPlan::none());
    }

    /// The plan in force, as it was set.
    pub fn faults(&self) -> FaultPlan {
        self.shared.faults()
    }

    /// The counters now.
    pub fn stats(&self) -> MockStats {
        self.shared.counters.snapshot(self.shared.wire.format())
    }

    /// The last chat or embeddings request received, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.last_request()
    }

    /// Stops accepting, closes every connection (answers in progress are
    /// cut), and waits until they are closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections while no `refuse` rule closes the listener; closes
/// it while one does and binds the same address again afterwards.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    addr: SocketAddr,
    mut stop: oneshot::Receiver<()>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    let mut changes = shared.plan_changed.subscribe();
    loop {
        let refusal = shared.active().refusal(Instant::now());
        if let Some(until) = refusal {
            if listener.take().is_some() {
                tracing::info!(%addr, "refusing connections: listener closed");
            }
            let expiry = async {
                match until {
                    Refusal::Until(until) => tokio::time::sleep_until(until).await,
                    Refusal::UntilChanged => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                changed = changes.changed() => if changed.is_err() { break },
                () = expiry => {}
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
            continue;
        }
        let current = match &listener {
            Some(current) => current,
            None => match bind(addr) {
                Ok(bound) => {
                    tracing::info!(%addr, "accepting connections again");
                    listener.insert(bound)
                }
                Err(error) => {
                    tracing::warn!(%addr, %error, "could not listen again; retrying");
                    tokio::select! {
                        _ = &mut stop => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            _ = &mut stop => break,
            changed = changes.changed() => if changed.is_err() { break },
            accepted = current.accept() => match accepted {
                Ok((stream, _)) => accept(&shared, &mut connections, stream),
                Err(error) => {
                    // Out of descriptors or similar: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

fn accept(shared: &Arc<Shared>, connections: &mut JoinSet<()>, stream: TcpStream) {
    let counters = &shared.counters;
    counters.connections_accepted.fetch_add(1, Relaxed);
    if shared.pick(Target::Connection) == Some(Fault::Refuse) {
        counters.connections_refused.fetch_add(1, Relaxed);
        counters.faulted.fetch_add(1, Relaxed);
        // A zero linger turns the close into a reset.
        let _ = stream.set_zero_linger();
        return;
    }
    let _ = stream.set_nodelay(true);
    connections.spawn(serve_connection(Arc::clone(shared), stream));
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _open = OpenConnection::new(&shared.counters);
    let kill = Arc::new(Notify::new());
    let service = {
        let shared = Arc::clone(&shared);
        let kill = Arc::clone(&kill);
        service_fn(move |request| service::handle(Arc::clone(&shared), Arc::clone(&kill), request))
    };
    let connection = shared.http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut changes = shared.plan_changed.subscribe();
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            // A `reset` fault: drop the connection with no answer.
            () = kill.notified() => break,
            changed = changes.changed(), if !closing => {
                if changed.is_err() || shared.active().has_refuse() {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    fn new(counters: &Arc<Counters>) -> Self {
        counters.open_connections.fetch_add(1, Relaxed);
        Self(Arc::clone(counters))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Relaxed);
    }
}
