//! `understudy-mock`: a fault-injecting mock LLM provider on the command line.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use understudy_mock::{FaultRule, MockConfig, MockProvider, WireFormat};

/// A mock LLM provider that fails on demand, in one of five wire formats:
///   openai     POST /v1/chat/completions            GET /v1/models
///   anthropic  POST /v1/messages                    GET /v1/models
///   azure      POST /openai/deployments/{deployment}/chat/completions?api-version=V
///                                                   GET /openai/models?api-version=V
///   gemini     POST /v1beta/models/{model}:generateContent
///              POST /v1beta/models/{model}:streamGenerateContent?alt=sse
///                                                   GET /v1beta/models
///   bedrock    POST /model/{modelId}/converse
///              POST /model/{modelId}/converse-stream (AWS event-stream frames)
///                                                   GET /foundation-models
///              (requests need an AWS4-HMAC-SHA256 authorization header and x-amz-date;
///              the signature is not checked)
///
/// Embeddings (vectors made from the mock's name and the input; 8 values unless
/// `dimensions`/`outputDimensionality` says; OpenAI's `encoding_format: base64` too):
///   openai     POST /v1/embeddings
///   azure      POST /openai/deployments/{deployment}/embeddings?api-version=V
///   gemini     POST /v1beta/models/{model}:batchEmbedContents
///              POST /v1beta/models/{model}:embedContent
///   anthropic and bedrock have none (404)
///
/// Faults (`--fault SPEC`, repeatable; the first rule that matches a chat or
/// embeddings request applies; on embeddings, content-filter is a 400):
///   none | status:<code> | rate-limit:<secs> | refuse | reset | hang |
///   delay:<ms> | first-chunk-delay:<ms> | drop-after:<n> | drip:<ms> |
///   garbage | error-event | content-filter
/// each optionally followed by a mode:
///   *N (the next N requests) | @P (probability P, seeded) | ~DURATION (for
///   DURATION after start, e.g. ~500ms, ~2s); none means always.
///
/// Examples: --fault status:503*3   --fault reset@0.3   --fault refuse~2s
///
/// Control at run time: POST /__mock/faults with a JSON plan
/// ({"rules":[{"fault":"status:503","times":3}]} or ["status:503*3"]),
/// DELETE /__mock/faults, GET /__mock/stats, GET /__mock/last-request (the
/// last chat or embeddings request: method, path and JSON body).
#[derive(Debug, Parser)]
#[command(name = "understudy-mock", version, verbatim_doc_comment)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// The wire format: openai, anthropic, azure, gemini or bedrock.
    #[arg(long, default_value = "openai")]
    format: WireFormat,
    /// The name in the answers ("Hello from NAME.") and the x-mock-name header.
    #[arg(long, default_value = "mock")]
    name: String,
    /// The seed of the probability draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many content chunks a streamed answer has.
    #[arg(long, default_value_t = 8)]
    stream_chunks: usize,
    /// The answer's text, in place of "Hello from NAME.".
    #[arg(long)]
    text: Option<String>,
    /// A fault rule; repeat for a plan, or separate rules with commas.
    #[arg(long = "fault", value_name = "SPEC", value_delimiter = ',')]
    faults: Vec<FaultRule>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let args = Args::parse();
    let config = MockConfig::new()
        .listen(args.listen)
        .format(args.format)
        .name(args.name)
        .seed(args.seed)
        .stream_chunks(args.stream_chunks)
        .faults(args.faults);
    let config = match args.text {
        Some(text) => config.text(text),
        None => config,
    };
    let mock = match MockProvider::start(config).await {
        Ok(mock) => mock,
        Err(error) => {
            eprintln!("understudy-mock: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{}", mock.base_url());
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("understudy-mock: cannot wait for Ctrl-C: {error}");
    }
    mock.shutdown().await;
    ExitCode::SUCCESS
}
