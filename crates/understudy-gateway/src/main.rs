//! The `understudy` binary: with no arguments, the embedded demo; with
//! `--config FILE`, the gateway that file describes.
#![allow(clippy::print_stdout)] // a command-line program talks on stdout

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
#[cfg(feature = "otlp")]
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;
use understudy_gateway::{demo, reload, serve};
use understudy_observe::LogFormat;
#[cfg(not(feature = "otlp"))]
use understudy_observe::init_tracing;

/// mimalloc: per-thread free lists suit a server whose requests allocate
/// and free many small objects on one thread; see docs/benchmarks.md for
/// what it saves against the system allocator. The `system-allocator`
/// feature keeps the system's, for heap profilers that hook `malloc`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-compatible LLM gateway that fails over between providers.
///
/// Without arguments it runs a demo: two mock providers on loopback (a
/// primary that fails part of its requests, a healthy backup) behind the
/// gateway on 127.0.0.1:8080. No API key, file or network needed.
#[derive(Debug, Parser)]
#[command(name = "understudy", version)]
struct Cli {
    /// Serve the gateway this TOML file describes.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen here instead of `server.listen` (or the demo's 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Log lines as human-readable text or one JSON object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Validate the config file and exit: 0 when valid, 1 with the bad key
    /// named otherwise.
    #[arg(long, requires = "config")]
    check: bool,
    /// With `--check`: also print each route's effective settings (its
    /// targets, timeouts, retry and fallback rules, and where each came
    /// from).
    #[arg(long, requires = "check")]
    explain: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check {
        return check(
            cli.config
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new("")),
            cli.explain,
        );
    }
    // The file is read before logging starts: `[telemetry]` says whether
    // the spans are exported too.
    let config = match cli.config.as_deref().map(Config::from_file).transpose() {
        Ok(config) => config,
        Err(error) => {
            let path = cli.config.as_deref().unwrap_or_else(|| Path::new(""));
            eprintln!("understudy: {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let traces = match start_logging(cli.log_format, config.as_ref()) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("understudy: could not set up logging: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Connections are served on `[server] workers` threads of their own
    // (see `serve`); this runtime accepts, probes and reloads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("understudy: could not start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match (&cli.config, config) {
            (Some(path), Some(config)) => run(path, config, cli.listen).await,
            _ => run_demo(cli.listen).await,
        }
    });
    drop(runtime);
    stop_traces(traces);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("understudy: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Validates the file and builds everything a start would build (clients,
/// target stacks, probes, alert sinks), with a stand-in for each key that
/// is not set here, so a file that passes would start. Nothing it prints
/// repeats a value from the file.
fn check(path: &std::path::Path, explain: bool) -> ExitCode {
    let config = match Config::from_file(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let unset: Vec<&str> = config
        .secret_variables()
        .into_iter()
        .filter(|var| std::env::var(var).map_or(true, |v| v.is_empty()))
        .collect();
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("could not start the runtime: {error}"))
        .and_then(|runtime| {
            runtime.block_on(async {
                Gateway::new(&config, |var| {
                    std::env::var(var)
                        .ok()
                        .filter(|v| !v.is_empty())
                        // One per variable: two caller keys may not be equal.
                        .or_else(|| Some(format!("unset-key-stand-in-{var}")))
                })
                .map(drop)
                .map_err(|error| error.to_string())
            })
        });
    if let Err(error) = built {
        eprintln!("{}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    println!("{}: valid", path.display());
    for route in &config.routes {
        let targets: Vec<String> = route.targets.iter().map(ToString::to_string).collect();
        println!("model `{}`: {}", route.model, targets.join(", then "));
    }
    if explain {
        print!("{}", config.explain());
    }
    print!("{}", config.telemetry.explain());
    for gap in config.operation_gaps() {
        println!("note: {gap}");
    }
    if !unset.is_empty() {
        println!(
            "note: not set in this environment (needed at start): {}",
            unset.join(", ")
        );
    }
    ExitCode::SUCCESS
}

/// The time the trace export has, at exit, to send the spans still
/// waiting.
#[cfg(feature = "otlp")]
const TRACE_FLUSH: Duration = Duration::from_secs(5);

#[cfg(feature = "otlp")]
type Traces = Option<understudy_observe::OtlpGuard>;
#[cfg(not(feature = "otlp"))]
type Traces = Option<std::convert::Infallible>;

/// Installs the log output and, with `[telemetry] otlp_endpoint`, the
/// trace export beside it.
#[cfg(feature = "otlp")]
fn start_logging(
    format: LogFormat,
    config: Option<&Config>,
) -> Result<Traces, understudy_core::BoxError> {
    let otlp = config.and_then(|config| config.telemetry.otlp());
    understudy_observe::init_tracing_with(format, otlp.as_ref())
}

#[cfg(not(feature = "otlp"))]
fn start_logging(
    format: LogFormat,
    config: Option<&Config>,
) -> Result<Traces, understudy_core::BoxError> {
    if config.is_some_and(|config| config.telemetry.otlp_endpoint.is_some()) {
        return Err("`[telemetry] otlp_endpoint` needs the `otlp` feature".into());
    }
    init_tracing(format).map(|()| None)
}

/// Sends the spans still waiting, within [`TRACE_FLUSH`].
#[cfg(feature = "otlp")]
fn stop_traces(traces: Traces) {
    if let Some(guard) = traces
        && !guard.shutdown(TRACE_FLUSH)
    {
        eprintln!("understudy: the trace export did not finish within {TRACE_FLUSH:?}");
    }
}

#[cfg(not(feature = "otlp"))]
fn stop_traces(traces: Traces) {
    if let Some(never) = traces {
        match never {}
    }
}

async fn run(path: &Path, mut config: Config, listen: Option<SocketAddr>) -> Result<(), String> {
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let gateway = Gateway::new(&config, |var| std::env::var(var).ok())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SIGHUP reads the file again; `[server]` (with `--listen`) stays as
    // started.
    let reloader = gateway.reloader();
    reloader.watch_file(path, |var| std::env::var(var).ok());
    let _hangups = reload::reload_on_hangup(reloader);
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("could not listen on {}: {e}", config.server.listen))?;
    tracing::info!(listen = %config.server.listen, routes = config.routes.len(), "understudy gateway listening");
    gateway
        .serve(listener, serve::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn run_demo(listen: Option<SocketAddr>) -> Result<(), String> {
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let demo = demo::start(listen).await.map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("could not listen on {listen}: {e} (pass --listen ADDR)"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("could not read the listening address: {e}"))?;
    let primary = demo.primary.base_url();
    let backup = demo.backup.base_url();
    let server = tokio::spawn(demo.gateway.serve(listener, serve::shutdown_signal()));
    println!(
        "\nunderstudy demo: gateway on http://{addr}\n\
         \x20 primary mock  {primary}  fails its first request, then 3 in 10, with 503\n\
         \x20 backup mock   {backup}  healthy\n\
         \x20 route `chat`  primary/demo-large, then backup/demo-small\n"
    );
    match demo::ask(addr).await {
        Ok(answer) => println!(
            "First request: {} from `{}` after {} attempts: {:?}\n\
             (the primary answered 503, the same request went to the backup; see the `fallback` log line)\n",
            answer.status, answer.provider, answer.attempts, answer.content
        ),
        Err(error) => println!("First request failed: {error}\n"),
    }
    println!(
        "Send your own (three in ten fall back):\n\n\
         \x20 curl -si http://{addr}/v1/chat/completions -H 'content-type: application/json' \\\n\
         \x20   -d '{{\"model\":\"chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n\n\
         The x-understudy-provider header says who answered; the log shows each `fallback`.\n\
         Also: GET http://{addr}/health, /metrics, /v1/models. Ctrl-C to stop.\n"
    );
    match server.await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(error) => Err(format!("the server task failed: {error}")),
    }
}
