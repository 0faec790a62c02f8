//! The floor under the gateway's cost: a reverse proxy made of the same HTTP
//! parts (hyper's HTTP/1 server, hyper-util's pooled client, one
//! single-threaded tokio runtime) and nothing else: no routing, no layers, no
//! body buffering, no telemetry. `benches/load.sh` measures it beside nginx
//! and the gateway, so the share of the cost that is the HTTP stack itself is
//! in the same table as the rest.
//!
//! With `--no-pool`, hyper's HTTP/1 client connections are used without
//! hyper-util's pool: each caller's connection owns one upstream connection
//! and one task drives both (no task or channel hop per upstream
//! connection). A gateway cannot forward that way (a provider connection is
//! never shared between callers, and a request could not move to another
//! host); it shows what the pool costs. See docs/benchmarks.md.
//!
//! Usage: `floor_proxy LISTEN UPSTREAM [--no-pool]` (both `host:port`); every
//! request is sent on to `UPSTREAM` with its path, method, headers and body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Failure = Box<dyn std::error::Error + Send + Sync>;
/// The upstream's body, or an empty one when the upstream failed.
type Answer = Either<Incoming, Empty<Bytes>>;

fn main() -> Result<(), Failure> {
    let mut arguments = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (arguments.next(), arguments.next()) else {
        return Err("usage: floor_proxy LISTEN UPSTREAM [--no-pool]".into());
    };
    let pooled = match arguments.next().as_deref() {
        None => true,
        Some("--no-pool") => false,
        Some(other) => return Err(format!("unknown option {other}").into()),
    };
    let listen: SocketAddr = listen.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if pooled {
        runtime.block_on(serve_pooled(listen, upstream))
    } else {
        runtime.block_on(serve_unpooled(listen, upstream))
    }
}

async fn serve_pooled(listen: SocketAddr, upstream: String) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move { forward(&client, &upstream, request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
    request: Request<Incoming>,
) -> Result<Response<Answer>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return Ok(bad_gateway());
    };
    parts.uri = uri;
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response.map(Answer::Left)),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> Response<Answer> {
    let mut response = Response::new(Answer::Right(Empty::new()));
    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
    response
}

async fn serve_unpooled(listen: SocketAddr, upstream: String) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(up) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let Ok((sender, client)) =
                hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(up)).await
            else {
                return;
            };
            // HTTP/1 serves one request at a time per connection: the lock
            // is never contended, it only gives the service shared access.
            let sender: Arc<Mutex<SendRequest<Incoming>>> = Arc::new(Mutex::new(sender));
            let service = service_fn(move |request| {
                let sender = sender.clone();
                async move {
                    let mut sender = sender.lock().await;
                    sender.ready().await?;
                    sender.send_request(request).await
                }
            });
            let server = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // One task polls both connections; whichever closes ends both.
            tokio::pin!(server, client);
            tokio::select! {
                _ = &mut server => {}
                _ = &mut client => {}
            }
        });
    }
}
