//! The serving threads: one single-threaded tokio runtime per worker, each
//! in its own [lane](understudy_core::lane).
//!
//! The accept loop hands every new connection to the worker serving the
//! fewest; the connection, its requests and the upstream connections those
//! requests use (each lane has its own client pool) then all run on that one
//! thread. Nothing moves between threads per request: no work stealing, no
//! cross-thread wake-ups, which on a busy machine cost as much CPU as the
//! proxying itself and set the tail latency.
//!
//! The threads log to the subscriber that was the default where
//! [`Workers::start`] was called (the global one in the binary; a test's
//! scoped one in tests).
//!
//! Dropping [`Workers`] stops the threads; each drops its runtime (and any
//! connection still on it) on its own thread.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use understudy_core::lane;

/// The serving threads.
#[derive(Debug)]
pub(crate) struct Workers {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections this worker serves now.
    connections: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `count` threads (at least one), in lanes 1 to `count`: lane 0
    /// stays with whatever runs outside them (probes, reloads, the accept
    /// loop).
    pub(crate) fn start(count: usize) -> io::Result<Self> {
        let stop = CancellationToken::new();
        let logging = tracing::dispatcher::get_default(Clone::clone);
        let mut workers = Vec::with_capacity(count.max(1));
        for index in 1..=count.max(1) {
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            let stopped = stop.clone();
            let logging = logging.clone();
            std::thread::Builder::new()
                .name(format!("understudy-worker-{index}"))
                .spawn(move || {
                    lane::enter(index);
                    let _logging = tracing::dispatcher::set_default(&logging);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    if sender.send(Ok(runtime.handle().clone())).is_ok() {
                        runtime.block_on(stopped.cancelled());
                    }
                })?;
            let handle = receiver
                .recv()
                .map_err(|_| io::Error::other("a worker thread ended before it started"))??;
            workers.push(Worker {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Self { workers, stop })
    }

    /// How many threads serve.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Runs `connection` on the worker serving the fewest connections.
    pub(crate) fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|worker| worker.connections.load(Ordering::Relaxed))
        else {
            return;
        };
        let count = Arc::clone(&worker.connections);
        count.fetch_add(1, Ordering::Relaxed);
        let guard = Release(count);
        worker.handle.spawn(async move {
            let _guard = guard;
            connection.await;
        });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Counts a connection off its worker when it ends (or is dropped).
struct Release(Arc<AtomicUsize>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Workers;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use understudy_core::lane;

    #[tokio::test]
    async fn connections_spread_over_the_workers_each_in_its_own_lane() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let (release, held) = tokio::sync::watch::channel(false);
        let mut done = Vec::new();
        for _ in 0..4 {
            let seen = Arc::clone(&seen);
            let mut held = held.clone();
            let (finished, finish) = tokio::sync::oneshot::channel();
            workers.spawn(async move {
                seen.lock()
                    .unwrap()
                    .insert((lane::current(), std::thread::current().id()));
                // Hold the connection open so the next one goes elsewhere.
                let _ = held.wait_for(|released| *released).await;
                let _ = finished.send(());
            });
            done.push(finish);
        }
        release.send(true).unwrap();
        for finish in done {
            finish.await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        let lanes: HashSet<usize> = seen.iter().map(|(lane, _)| *lane).collect();
        assert_eq!(lanes, HashSet::from([1, 2]), "{seen:?}");
        assert_eq!(seen.len(), 2, "one thread per lane: {seen:?}");
        assert_eq!(lane::current(), 0);
    }

    #[tokio::test]
    async fn dropping_the_workers_stops_what_they_run() {
        let workers = Workers::start(1).unwrap();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<()>(1);
        workers.spawn(async move {
            let _sender = sender;
            std::future::pending::<()>().await;
        });
        drop(workers);
        // The task (and the sender it holds) is dropped with its runtime.
        assert!(receiver.recv().await.is_none());
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_workers_log_where_their_starter_logs() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = understudy_observe::subscriber(
            understudy_observe::LogFormat::Json,
            "info",
            move || sink.clone(),
        )
        .unwrap();
        let _scoped = tracing::subscriber::set_default(subscriber);
        let workers = Workers::start(1).unwrap();
        let (done, finished) = tokio::sync::oneshot::channel();
        workers.spawn(async move {
            tracing::warn!(event = "from_a_worker", "logged on a worker thread");
            let _ = done.send(());
        });
        finished.await.unwrap();
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("from_a_worker"), "{text}");
    }
}
