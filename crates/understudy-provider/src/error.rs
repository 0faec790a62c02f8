//! The errors of the provider services.

use understudy_core::{BoxError, ClassifiedError, FailureKind, Outcome};

use crate::dialect::Operation;

/// Why a provider service could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is not an absolute `http://` or `https://` URL. The
    /// message does not repeat the URL: it may carry a credential.
    #[error("invalid base URL: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key holds bytes a header cannot carry.
    #[error("the API key is not a valid header value")]
    InvalidApiKey,
    /// An extra header's name or value is not valid.
    #[error("invalid extra header `{name}`")]
    InvalidHeader {
        /// The header's name as given.
        name: String,
    },
    /// A setting the provider's kind requires is missing or invalid
    /// (`api_version` for Azure, `region` for Bedrock, …).
    #[error("{setting}: {reason}")]
    InvalidSetting {
        /// The setting, by its configuration key.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The dialect has no endpoint for an operation the service needs.
    #[error("the `{dialect}` dialect has no endpoint for {operation:?}")]
    UnsupportedOperation {
        /// The dialect's name.
        dialect: String,
        /// The operation.
        operation: Operation,
    },
}

/// What went wrong in one call of a provider service.
///
/// Upstream failures reach the caller wrapped in a [`ClassifiedError`]
/// whose source is one of these, so the layers above classify them without
/// parsing messages; the caller's own mistakes become a 400 answer instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The caller's request cannot be sent (not JSON, not an object, a field
    /// of the wrong type).
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, in words fit for the caller.
        message: String,
    },
    /// The request could not be sent, or no response head came back.
    #[error("upstream request failed")]
    Upstream(#[source] hyper_util::client::legacy::Error),
    /// The response body failed while it was read.
    #[error("upstream response body failed")]
    Body(#[source] hyper::Error),
    /// The provider answered 2xx with a body that is not what its API
    /// documents.
    #[error("invalid upstream response: {message}")]
    InvalidResponse {
        /// What was wrong with it.
        message: String,
    },
    /// The provider's stream carried an error event.
    #[error("upstream stream error ({kind}): {message}")]
    StreamError {
        /// The provider's error type (`overloaded_error`, …).
        kind: String,
        /// The provider's message.
        message: String,
    },
    /// The provider's stream ended before its final event.
    #[error("upstream stream ended before its final event")]
    StreamCut,
    /// The request could not be signed with the gateway's credentials
    /// ([`Dialect::sign`](crate::dialect::Dialect::sign)). The message never
    /// holds a secret.
    #[error("the request could not be signed: {message}")]
    Signing {
        /// What went wrong.
        message: String,
    },
}

impl ProviderError {
    /// The caller's request cannot be sent: `message` says what is wrong,
    /// naming the field (`` `messages` must be an array ``). The caller gets
    /// it in a 400.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
        }
    }

    /// The provider answered 2xx with a body its API does not document:
    /// `message` says what was wrong.
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Self::InvalidResponse {
            message: message.into(),
        }
    }

    /// The request could not be signed: `message` says why, without
    /// quoting any secret.
    pub fn signing(message: impl Into<String>) -> Self {
        Self::Signing {
            message: message.into(),
        }
    }

    /// This error wrapped with the outcome it stands for.
    pub(crate) fn classified(self, outcome: Outcome) -> ClassifiedError {
        ClassifiedError::new(outcome).with_source(self)
    }
}

/// Classifies a failed upstream request: connect errors (refused,
/// unreachable, TLS handshake) are [`FailureKind::Connect`], a connect
/// timeout is [`FailureKind::Timeout`], anything else after the connection
/// was made is [`FailureKind::Transport`].
pub(crate) fn classify_send_error(error: hyper_util::client::legacy::Error) -> BoxError {
    let kind = if error.is_connect() {
        if timed_out(&error) {
            FailureKind::Timeout
        } else {
            FailureKind::Connect
        }
    } else {
        FailureKind::Transport
    };
    ProviderError::Upstream(error)
        .classified(Outcome::Failure(kind))
        .into()
}

fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Wraps a response-body error of a 2xx answer: the stream broke.
pub(crate) fn body_error(error: hyper::Error) -> BoxError {
    ProviderError::Body(error)
        .classified(Outcome::Failure(FailureKind::StreamBroken))
        .into()
}
