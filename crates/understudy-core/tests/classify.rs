//! The default classifier over responses shaped like the providers' own.
#![allow(clippy::unwrap_used)] // test fixtures: a panic is a failed assertion

use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use understudy_core::{
    ClassifiedError, Classify, ClientErrorKind, FailureKind, LlmClassifier, MAX_RETRY_AFTER,
    Outcome, Unavailable, UnavailableKind,
};

const OPENAI_CONTEXT: &str = r#"{
  "error": {
    "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130571 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded"
  }
}"#;
const OPENAI_BAD_PARAM: &str = r#"{"error":{"message":"Invalid value for 'temperature': must be between 0 and 2.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#;
const OPENAI_BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
const OPENAI_NO_MODEL: &str = r#"{"error":{"message":"The model `gpt-5-ultra` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
const OPENAI_RATE_LIMIT: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): Limit 200000, Used 199000, Requested 2000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
const OPENAI_QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
const OPENAI_SERVER: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
const AZURE_RATE_LIMIT: &str = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}"#;
const AZURE_FILTER: &str = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#;
const ANTHROPIC_OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
const ANTHROPIC_RATE_LIMIT: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
const ANTHROPIC_TOO_LONG: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
const ANTHROPIC_API_ERROR: &str =
    r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#;
const ANTHROPIC_AUTH: &str =
    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
const VLLM_CONTEXT: &str = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
const VLLM_CONTEXT_ENVELOPE: &str = r#"{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}}"#;
const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
const ERROR_IN_A_200: &str = r#"{"error":{"message":"upstream provider error","code":502}}"#;

/// A row: name, status, headers, body, expected outcome.
type Row = (
    &'static str,
    u16,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
    Outcome,
);

fn rejected(status: u16) -> Outcome {
    Outcome::ClientError(ClientErrorKind::Rejected(
        StatusCode::from_u16(status).unwrap(),
    ))
}

/// A rejected provider key: the provider's failure, not the caller's.
fn unauthorized(status: u16) -> Outcome {
    Outcome::Failure(FailureKind::Unauthorized(
        StatusCode::from_u16(status).unwrap(),
    ))
}

fn limited(retry_after: Option<Duration>) -> Outcome {
    Outcome::Failure(FailureKind::RateLimited { retry_after })
}

fn classify(status: u16, headers: &[(&str, &str)], body: Option<&str>) -> Outcome {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    LlmClassifier::new().classify_parts(
        StatusCode::from_u16(status).unwrap(),
        &map,
        body.map(str::as_bytes),
    )
}

#[test]
fn real_provider_responses() {
    let secs = Duration::from_secs;
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("openai success", 200, vec![], Some(COMPLETION), Outcome::Success),
        ("openai success, body unread", 200, vec![], None, Outcome::Success),
        ("openai context length", 400, vec![], Some(OPENAI_CONTEXT),
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)),
        ("openai bad parameter", 400, vec![], Some(OPENAI_BAD_PARAM), rejected(400)),
        ("openai bad key", 401, vec![], Some(OPENAI_BAD_KEY), unauthorized(401)),
        ("forbidden", 403, vec![], None, unauthorized(403)),
        ("openai unknown model", 404, vec![], Some(OPENAI_NO_MODEL), rejected(404)),
        ("too large", 413, vec![], None, rejected(413)),
        ("unprocessable", 422, vec![], None, rejected(422)),
        ("request timeout", 408, vec![], None, Outcome::Failure(FailureKind::Timeout)),
        ("openai 429, tokens spent", 429, vec![
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "1.5s"),
        ], Some(OPENAI_RATE_LIMIT), limited(Some(Duration::from_millis(1500)))),
        ("openai 429 with retry-after", 429, vec![("retry-after", "20")], Some(OPENAI_RATE_LIMIT),
            limited(Some(secs(20)))),
        ("openai 429, quota, no wait given", 429, vec![], Some(OPENAI_QUOTA), limited(None)),
        ("azure 429 retry-after-ms", 429, vec![("retry-after-ms", "5813"), ("retry-after", "6")],
            Some(AZURE_RATE_LIMIT), limited(Some(Duration::from_millis(5813)))),
        ("azure content filter", 400, vec![], Some(AZURE_FILTER),
            Outcome::ClientError(ClientErrorKind::ContentFiltered)),
        ("anthropic overloaded", 529, vec![], Some(ANTHROPIC_OVERLOADED),
            Outcome::Failure(FailureKind::Overloaded)),
        ("anthropic 429", 429, vec![("retry-after", "7")], Some(ANTHROPIC_RATE_LIMIT),
            limited(Some(secs(7)))),
        ("anthropic prompt too long", 400, vec![], Some(ANTHROPIC_TOO_LONG),
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)),
        ("anthropic api error", 500, vec![], Some(ANTHROPIC_API_ERROR),
            Outcome::Failure(FailureKind::Server(StatusCode::INTERNAL_SERVER_ERROR))),
        ("anthropic bad key", 401, vec![], Some(ANTHROPIC_AUTH), unauthorized(401)),
        ("overloaded body on a 500", 500, vec![], Some(ANTHROPIC_OVERLOADED),
            Outcome::Failure(FailureKind::Overloaded)),
        ("vllm context length, bare object", 400, vec![], Some(VLLM_CONTEXT),
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)),
        ("vllm context length, envelope", 400, vec![], Some(VLLM_CONTEXT_ENVELOPE),
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)),
        ("openai server error", 500, vec![], Some(OPENAI_SERVER),
            Outcome::Failure(FailureKind::Server(StatusCode::INTERNAL_SERVER_ERROR))),
        ("bad gateway html", 502, vec![], Some("<html>502 Bad Gateway</html>"),
            Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY))),
        ("service unavailable", 503, vec![], None, Outcome::Failure(FailureKind::Overloaded)),
        ("gateway timeout", 504, vec![], None,
            Outcome::Failure(FailureKind::Server(StatusCode::GATEWAY_TIMEOUT))),
        ("a 200 holding only an error", 200, vec![], Some(ERROR_IN_A_200),
            Outcome::Failure(FailureKind::StreamBroken)),
        ("a redirect", 302, vec![], None, Outcome::Failure(FailureKind::Server(StatusCode::FOUND))),
        ("429, a wait past any clock", 429, vec![("retry-after", "10000000000000000000")], None,
            limited(Some(MAX_RETRY_AFTER))),
        ("429, a reset past any clock", 429, vec![("x-ratelimit-reset-requests", "99999999999h")],
            None, limited(Some(MAX_RETRY_AFTER))),
    ];
    for (name, status, headers, body, want) in table {
        assert_eq!(classify(status, &headers, body), want, "{name}");
    }
}

#[test]
fn a_rejected_key_fails_over_and_counts_but_is_not_retried() {
    for status in [401, 403] {
        let outcome = classify(status, &[], Some(OPENAI_BAD_KEY));
        assert_eq!(outcome, unauthorized(status));
        assert!(outcome.is_provider_failure());
        assert!(outcome.counts_against_health());
        assert!(outcome.is_failover());
        assert!(!outcome.is_retryable());
        assert_eq!(outcome.kind().as_str(), "unauthorized");
        assert_eq!(outcome.status(), StatusCode::from_u16(status).ok());
    }
}

#[test]
fn response_classification_trusts_an_attached_outcome() {
    let classifier = LlmClassifier::new();
    let plain = Response::builder().status(400).body(()).unwrap();
    assert_eq!(classifier.classify_response(&plain), rejected(400));

    let mut read = Response::builder().status(400).body(()).unwrap();
    read.extensions_mut()
        .insert(Outcome::ClientError(ClientErrorKind::ContextLengthExceeded));
    assert_eq!(
        classifier.classify_response(&read),
        Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
    );
}

#[derive(Debug, thiserror::Error)]
#[error("request failed")]
struct Wrapper(#[source] Box<dyn std::error::Error + Send + Sync>);

#[tokio::test(start_paused = true)]
async fn errors_are_classified_through_their_chain() {
    let classifier = LlmClassifier::new();
    let classify = |error: &(dyn std::error::Error + 'static)| classifier.classify_error(error);

    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(classify(&refused), Outcome::Failure(FailureKind::Connect));

    let wrapped = Wrapper(Box::new(Wrapper(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )))));
    assert_eq!(classify(&wrapped), Outcome::Failure(FailureKind::Connect));

    let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
    assert_eq!(classify(&timed_out), Outcome::Failure(FailureKind::Timeout));

    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert_eq!(classify(&reset), Outcome::Failure(FailureKind::Transport));

    let elapsed = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(classify(&elapsed), Outcome::Failure(FailureKind::Timeout));
    assert_eq!(
        classify(&Wrapper(Box::new(tower::timeout::error::Elapsed::new()))),
        Outcome::Failure(FailureKind::Timeout)
    );

    let unavailable =
        Unavailable::new("openai", UnavailableKind::Ejected, "5 consecutive failures");
    assert_eq!(
        classify(&Wrapper(Box::new(unavailable))),
        Outcome::Unavailable
    );

    // An explicit classification wins over what lies beneath it.
    let explicit = ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken))
        .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(
        classify(&Wrapper(Box::new(explicit))),
        Outcome::Failure(FailureKind::StreamBroken)
    );

    assert_eq!(
        classify(&Wrapper("something else".into())),
        Outcome::Failure(FailureKind::Transport)
    );
}

#[test]
fn results_are_classified_on_either_side() {
    let classifier = LlmClassifier::new();
    let ok: Result<Response<()>, std::io::Error> = Ok(Response::new(()));
    assert_eq!(classifier.classify_result(&ok), Outcome::Success);
    let err: Result<Response<()>, std::io::Error> =
        Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(
        classifier.classify_result(&err),
        Outcome::Failure(FailureKind::Connect)
    );
}

/// The classification drives a plain `tower::retry::Policy` too: the shape
/// the retry, health and fallback layers build on.
mod usable_for_retries {
    use std::future::{Ready, ready};

    use http::{Request, Response};
    use tower::retry::Policy;
    use understudy_core::{BoxError, Classify, LlmClassifier, ReplayBody};

    #[derive(Clone)]
    struct RetryOnce(bool);

    impl<B> Policy<Request<ReplayBody>, Response<B>, BoxError> for RetryOnce {
        type Future = Ready<()>;

        fn retry(
            &mut self,
            _request: &mut Request<ReplayBody>,
            result: &mut Result<Response<B>, BoxError>,
        ) -> Option<Self::Future> {
            let outcome = match result {
                Ok(response) => LlmClassifier::new().classify_response(response),
                Err(error) => LlmClassifier::new().classify_error(&**error),
            };
            (outcome.is_retryable() && !std::mem::replace(&mut self.0, true)).then(|| ready(()))
        }

        fn clone_request(&mut self, request: &Request<ReplayBody>) -> Option<Request<ReplayBody>> {
            let mut clone = Request::new(request.body().clone());
            *clone.headers_mut() = request.headers().clone();
            Some(clone)
        }
    }

    #[test]
    fn retries_a_503_once() {
        let mut policy = RetryOnce(false);
        let mut request = Request::new(ReplayBody::from("{}"));
        let mut failed: Result<Response<()>, BoxError> =
            Ok(Response::builder().status(503).body(()).unwrap());
        assert!(policy.retry(&mut request, &mut failed).is_some());
        assert!(policy.retry(&mut request, &mut failed).is_none());
        let mut bad: Result<Response<()>, BoxError> =
            Ok(Response::builder().status(400).body(()).unwrap());
        assert!(RetryOnce(false).retry(&mut request, &mut bad).is_none());
        let clone =
            Policy::<_, Response<()>, BoxError>::clone_request(&mut policy, &request).unwrap();
        assert_eq!(
            clone.body().bytes().as_ptr(),
            request.body().bytes().as_ptr()
        );
    }
}
