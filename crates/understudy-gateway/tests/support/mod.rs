//! Serving a gateway in-process for the tests, on a port of its own, and
//! talking to it over loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;
use understudy_mock::{FaultRule, MockConfig, MockProvider, WireFormat};

/// No exchange with a gateway should take anywhere near this long; it only
/// turns a hang into a failure.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A gateway serving on loopback until [`Served::stop`], and a client for
/// it.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Builds the gateway `toml` describes, with keys from `lookup`, and
    /// serves it.
    pub(crate) async fn start(toml: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let config = Config::from_toml(toml).unwrap();
        Self::serve(Gateway::new(&config, lookup).unwrap()).await
    }

    /// Serves `gateway`.
    pub(crate) async fn serve(gateway: Gateway) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends `request` as it is and gives back the response, its body not
    /// yet read.
    pub(crate) async fn request(&self, request: Request<Full<Bytes>>) -> Response<Incoming> {
        tokio::time::timeout(LIMIT, self.client.request(request))
            .await
            .expect("the gateway answered in time")
            .unwrap()
    }

    /// Sends a JSON `body` with `method` to `path`, with `headers` added,
    /// and reads the whole answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        tokio::time::timeout(LIMIT, async {
            let response = self.client.request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8(body.to_vec()).unwrap(),
            }
        })
        .await
        .expect("the gateway answered in time")
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

    /// Shuts the gateway down, then the `mocks` behind it.
    pub(crate) async fn stop_with(self, mocks: impl IntoIterator<Item = MockProvider>) {
        self.stop(LIMIT).await;
        for mock in mocks {
            mock.shutdown().await;
        }
    }
}

/// A whole answer from the gateway.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// The header `name`, or `""` without it.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Checks that the answer is an event stream.
    pub(crate) fn assert_event_stream(&self) {
        assert_eq!(
            self.header("content-type"),
            "text/event-stream",
            "{}",
            self.body
        );
    }

    /// What follows `data: ` on each line of an event stream, in order.
    pub(crate) fn data(&self) -> Vec<&str> {
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .collect()
    }
}

/// A mock provider speaking `format`, named `name`.
pub(crate) async fn mock(format: WireFormat, name: &str) -> MockProvider {
    MockProvider::start(MockConfig::new().format(format).name(name))
        .await
        .unwrap()
}

/// The fault rule `spec` describes.
pub(crate) fn fault(spec: &str) -> FaultRule {
    spec.parse().unwrap()
}

/// A primary and a backup mock behind the route `chat`, no retries.
pub(crate) fn primary_and_backup(primary: &MockProvider, backup: &MockProvider) -> String {
    format!(
        r#"
[retry]
max_retries = 0

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"

[[routes]]
model = "chat"
targets = [
  {{ provider = "primary", model = "big-model" }},
  {{ provider = "backup", model = "small-model" }},
]
"#,
        primary.base_url(),
        backup.base_url()
    )
}
