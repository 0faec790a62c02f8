//! The HTTP floor without a connection pool: a reverse proxy made of
//! hyper's HTTP/1 server and client connections alone, where each caller's
//! connection owns one upstream connection and one task drives both (no
//! pool, no task or channel hop per upstream connection, one
//! single-threaded tokio runtime).
//!
//! It is not a design the gateway can take as it is: a provider connection
//! per caller connection is never shared between callers, and a request
//! could not fall back to another host. `benches/load.sh` measures it beside
//! `examples/floor_proxy` (hyper-util's pooled client) to show what the pool
//! and its task per connection cost; see docs/benchmarks.md.
//!
//! Usage: `floor_pinned LISTEN UPSTREAM` (both `host:port`); every request
//! is sent on to `UPSTREAM` with its path, method, headers and body.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let mut arguments = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (arguments.next(), arguments.next()) else {
        return Err("usage: floor_pinned LISTEN UPSTREAM".into());
    };
    let listen: SocketAddr = listen.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: String) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
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
