//! A real `redis-server` for the tests: started on a free loopback port as a
//! child process, without persistence, killed when dropped. Where the binary
//! is missing, [`RedisServer::start`] prints `SKIPPED: redis-server not
//! installed` and returns `None` (CI installs it, so it never skips there).
//!
//! Waiting is done by polling a condition against a deadline
//! ([`eventually`]), never by sleeping for a fixed time.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a panic is a failed test

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use understudy_health::{HealthConfig, HealthRegistry};
use understudy_shared_health::{SharedHealth, SharedHealthConfig};

/// How long a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A `redis-server` child process on a loopback port.
pub struct RedisServer {
    child: Option<Child>,
    binary: String,
    port: u16,
    tls: Option<Tls>,
    args: Vec<String>,
}

/// The TLS side of a server: its port, and the files of a test CA and of
/// the certificate it signed for 127.0.0.1 and localhost.
struct Tls {
    port: u16,
    dir: PathBuf,
    ca_pem: String,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`; `None`
    /// (with a notice) when `redis-server` is not installed.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// Starts one with more `redis-server` arguments (`--requirepass`).
    pub async fn start_with(args: &[&str]) -> Option<Self> {
        let Some(binary) = find_binary() else {
            skipped();
            return None;
        };
        let port = free_port();
        let mut server = Self {
            child: None,
            binary,
            port,
            tls: None,
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
        };
        server.launch().await;
        Some(server)
    }

    /// Starts one that also speaks TLS on a second port, with a certificate
    /// signed by a test CA ([`ca_pem`](Self::ca_pem)); `None` as
    /// [`start`](Self::start).
    pub async fn start_tls() -> Option<Self> {
        let Some(binary) = find_binary() else {
            skipped();
            return None;
        };
        let port = free_port();
        let tls_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "understudy-redis-tls-{}-{tls_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = test_pki();
        std::fs::write(dir.join("ca.pem"), &pki.ca).unwrap();
        std::fs::write(dir.join("server.pem"), &pki.cert).unwrap();
        std::fs::write(dir.join("server.key"), &pki.key).unwrap();
        let mut server = Self {
            child: None,
            binary,
            port,
            tls: Some(Tls {
                port: tls_port,
                dir,
                ca_pem: pki.ca,
            }),
            args: Vec::new(),
        };
        server.launch().await;
        Some(server)
    }

    /// `rediss://127.0.0.1:{tls port}`, for a server from
    /// [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        let port = self.tls.as_ref().expect("a TLS server").port;
        format!("rediss://127.0.0.1:{port}")
    }

    /// The test CA's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.tls.as_ref().expect("a TLS server").ca_pem
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain client, for what the test itself reads and writes.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    /// Kills the server and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let mut command = Command::new(&self.binary);
        if let Some(tls) = &self.tls {
            let file = |name: &str| tls.dir.join(name).to_string_lossy().into_owned();
            command
                .args(["--tls-port", &tls.port.to_string()])
                .args(["--tls-cert-file", &file("server.pem")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while !ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}

/// PEM texts.
struct TestPki {
    ca: String,
    cert: String,
    key: String,
}

/// A test CA, and a certificate it signed for 127.0.0.1 and localhost.
fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Understudy test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    TestPki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The `redis-server` binary: `$REDIS_SERVER`, else on the `PATH`, else
/// Debian's path.
fn find_binary() -> Option<String> {
    let candidates = std::env::var("REDIS_SERVER").ok().into_iter().chain([
        "redis-server".to_owned(),
        "/usr/bin/redis-server".to_owned(),
    ]);
    for candidate in candidates {
        let found = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return Some(candidate);
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    // `+PONG`, or `-NOAUTH` from a server that wants a password: either
    // way, it answers.
    let mut answer = [0_u8; 5];
    stream.read_exact(&mut answer).is_ok() && (&answer == b"+PONG" || &answer == b"-NOAU")
}

/// Says the test is skipped, on the process's stderr, past the test
/// harness's capture, so the skip is seen.
fn skipped() {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: redis-server not installed (apt-get install redis-server)"
    );
}

/// Polls `condition` every millisecond until it holds, and returns how long
/// that took; fails the test after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The health settings of the tests' replicas: ejected after three
/// failures in a row, for `ejection`.
pub fn registry(ejection: Duration) -> HealthRegistry {
    HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(3)
            .base_ejection(ejection)
            .build()
            .unwrap(),
    )
}

/// The sharer settings of the tests: a command limit roomier than the
/// default, so a loaded CI machine does not turn into store failures, and
/// quick reconnection.
pub fn sharing(redis: &RedisServer, replica: &str, prefix: &str) -> SharedHealthConfig {
    SharedHealthConfig::new(redis.url())
        .replica(replica)
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(250))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(300))
}

/// A registry shared through `redis` as `replica`, connected.
pub async fn replica(
    redis: &RedisServer,
    replica: &str,
    prefix: &str,
    ejection: Duration,
) -> (HealthRegistry, SharedHealth) {
    let registry = registry(ejection);
    let shared =
        understudy_shared_health::spawn(registry.clone(), sharing(redis, replica, prefix)).unwrap();
    eventually("the replica to connect", || shared.is_connected()).await;
    (registry, shared)
}
