//! The floor under the gateway's cost: a reverse proxy made of the same HTTP
//! parts (hyper's HTTP/1 server, hyper-util's pooled client, one
//! single-threaded tokio runtime) and nothing else: no routing, no layers, no
//! body buffering, no telemetry. `benches/load.sh` measures it beside nginx
//! and the gateway, so the share of the cost that is the HTTP stack itself is
//! in the same table as the rest.
//!
//! Usage: `floor_proxy LISTEN UPSTREAM` (both `host:port`); every request is
//! sent on to `http://UPSTREAM` with its path, method, headers and body.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Failure = Box<dyn std::error::Error + Send + Sync>;
/// The upstream's body, or an empty one when the upstream failed.
type Answer = Either<Incoming, Empty<Bytes>>;

fn main() -> Result<(), Failure> {
    let mut arguments = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (arguments.next(), arguments.next()) else {
        return Err("usage: floor_proxy LISTEN UPSTREAM".into());
    };
    let listen: SocketAddr = listen.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: String) -> Result<(), Failure> {
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
