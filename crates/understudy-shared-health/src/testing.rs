//! A real `redis-server` for tests, here and in crates that share health
//! through it (the gateway's): started on a free loopback port as a child
//! process, without persistence, killed when dropped. Behind the `testing`
//! feature.
//!
//! Where the binary is missing, [`RedisServer::start`] prints
//! `SKIPPED: redis-server not installed` and returns `None`, unless
//! `UNDERSTUDY_REQUIRE_REDIS` is set (as CI does), when it fails instead.
//! The binary is `$REDIS_SERVER`, else `redis-server` on the `PATH`, else
//! Debian's `/usr/bin/redis-server`.
// A fixture: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::arithmetic_side_effects
)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// How long a server may take to answer its first `PING`.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A `redis-server` child process on a loopback port.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    binary: String,
    port: u16,
    tls: Option<Tls>,
    args: Vec<String>,
}

/// The TLS side of a server: its port, and the files of a test CA and of
/// the certificate it signed for 127.0.0.1 and localhost.
#[derive(Debug)]
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
///
/// Where `UNDERSTUDY_REQUIRE_REDIS` is set (CI sets it, having installed the
/// server), a missing server fails the test instead: nothing skips silently.
fn skipped() {
    assert!(
        std::env::var_os("UNDERSTUDY_REQUIRE_REDIS").is_none(),
        "redis-server is not installed, and UNDERSTUDY_REQUIRE_REDIS says the tests need it"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: redis-server not installed (apt-get install redis-server)"
    );
}
