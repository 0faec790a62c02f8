//! Serving a gateway in-process for the tests, on a port of its own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;

/// A gateway serving on loopback until [`Served::stop`].
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Builds the gateway `toml` describes, with keys from `lookup`, and
    /// serves it.
    pub(crate) async fn start(toml: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let config = Config::from_toml(toml).unwrap();
        let gateway = Gateway::new(&config, lookup).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks the gateway to shut down, without waiting for it.
    pub(crate) fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the gateway down and waits, at most `limit`, until it has.
    pub(crate) async fn stop(mut self, limit: Duration) {
        self.signal_stop();
        let task = self.task.take().unwrap();
        tokio::time::timeout(limit, task)
            .await
            .expect("the gateway stopped in time")
            .unwrap()
            .unwrap();
    }
}
